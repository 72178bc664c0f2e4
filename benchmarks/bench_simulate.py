"""Speed and realism of the synthetic data: the default movie and the crop generator.

Speed: each figure is the median of several runs, printed next to a baseline measured
in the same run on the same machine: drawing the same number of Gaussian
noise pixels and casting them to uint16 (the least any image generator must
do). Realism: the central nucleus of ``generate_crops(600, seed=3)`` measured as the
real crops were (METHOD-NOTES.md, "What real crops look like, in numbers"), printed
against the real medians [10th-90th percentile].
Run: python benchmarks/bench_simulate.py [--repeats N] [--realism-only]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _timing import median_seconds  # benchmarks/_timing.py (run from the repo root)

from napari_cellstate.core.config import SimulationConfig
from napari_cellstate.core.simulate import generate_crops, simulate_movie
from napari_cellstate.core.simulate.realism import REAL_CROP_STATISTICS, crop_statistics


def _summary(values, column: str) -> str:
    low, mid, high = np.nanpercentile(values, [10, 50, 90])
    digits = 0 if column in ("area", "objects") else 1 if abs(mid) >= 5 else 2
    return f"{mid:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def realism_table(n: int = 600, seed: int = 3) -> str:
    """Synthetic against real crop statistics, one row pair per class (markdown)."""
    batch = generate_crops(n, seed=seed)
    stats = crop_statistics(batch.images)
    columns = list(REAL_CROP_STATISTICS["interphase"])
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label, state in enumerate(REAL_CROP_STATISTICS):
        real = REAL_CROP_STATISTICS[state]
        lines.append(f"| real {state} | " + " | ".join(f"{m:g} [{lo:g}-{hi:g}]" for m, lo, hi in real.values()) + " |")
        mine = stats[batch.labels == label]
        cells = [_summary(mine[column], column) for column in columns]
        lines.append(f"| synthetic {state} ({len(mine)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def noise_baseline(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    np.clip(rng.standard_normal(shape, dtype=np.float32) * 10 + 100, 0, 65535).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--crops", type=int, default=4000)
    parser.add_argument("--realism-only", action="store_true", help="print the realism table only")
    args = parser.parse_args()

    print("central nucleus of generate_crops(600, seed=3) against real crops: median [10th-90th percentile]")
    print(realism_table())
    if args.realism_only:
        return

    cfg = SimulationConfig()
    generate_crops(64)  # warm caches and imports
    movie_s = median_seconds(lambda: simulate_movie(cfg), max(3, args.repeats // 2))
    movie_base = median_seconds(lambda: noise_baseline((cfg.n_frames, *cfg.shape_yx)), args.repeats)
    crops_s = median_seconds(lambda: generate_crops(args.crops, seed=1), args.repeats)
    crops_base = median_seconds(lambda: noise_baseline((args.crops, 64, 64)), args.repeats)

    print(f"machine: {os.cpu_count()} cores; medians of {args.repeats} runs")
    print(f"{'what':42s} {'time':>10s} {'baseline':>10s} {'ratio':>7s}")
    movie_label = "default movie (60 x 512 x 512, ~80 cells)"
    print(f"{movie_label:42s} {movie_s:9.2f}s {movie_base:9.3f}s {movie_s / movie_base:6.0f}x")
    rate = args.crops / crops_s
    print(
        f"{f'crop generator ({args.crops} crops)':42s} {crops_s:9.2f}s {crops_base:9.3f}s {crops_s / crops_base:6.0f}x"
    )
    print(f"crop generator: {rate:,.0f} crops/s (target >= 2,000 crops/s on 2 cores)")
    print(f"default movie: {movie_s:.1f} s (target < 30 s on 2 cores)")


if __name__ == "__main__":
    main()
