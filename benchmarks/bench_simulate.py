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
import pandas as pd
from _timing import median_seconds  # benchmarks/_timing.py (run from the repo root)

from napari_cellstate.core.config import SimulationConfig
from napari_cellstate.core.crop_morphology import foreground_masks
from napari_cellstate.core.simulate import generate_crops, simulate_movie

#: Real 64x64 H2B crops of MDCK cells at the paper's scale, expert-labelled (not in the repo): median, 10th and
#: 90th percentile of each column, copied from docs/METHOD-NOTES.md ("What real crops look like, in numbers").
REAL = {
    "interphase": {
        "area": (769, 563, 1372),
        "major": (37, 31, 50),
        "minor": (27, 22, 39),
        "eccentricity": (0.67, 0.46, 0.82),
        "snr": (6.6, 5.7, 8.3),
        "texture": (0.27, 0.25, 0.30),
        "objects": (2, 1, 3),
    },
    "metaphase": {
        "area": (362, 339, 396),
        "major": (33, 31, 34),
        "minor": (14.8, 13.3, 16.0),
        "eccentricity": (0.89, 0.87, 0.92),
        "snr": (10.4, 9.6, 11.6),
        "texture": (0.34, 0.31, 0.38),
        "objects": (2, 1, 2),
    },
}


def crop_statistics(images: np.ndarray) -> pd.DataFrame:
    """The central nucleus of each crop, measured as the real crops were.

    Gaussian σ = 1 and Otsu's threshold per crop give the objects; the one under the centre (holes filled) is the
    nucleus; everything outside every object is background. SNR = (nucleus mean - background mean) / background
    std, texture = nucleus std / (nucleus mean - background mean), objects = connected objects in the crop; the
    intensities are the raw counts (both ratios are unchanged by any affine scaling of the crop).
    """
    from scipy import ndimage
    from skimage.measure import regionprops

    images = np.asarray(images, dtype=np.float32)
    foreground = foreground_masks(images)
    centre = images.shape[-1] // 2
    rows = []
    for image, mask in zip(images, foreground, strict=True):
        labels, n_objects = ndimage.label(mask)
        label = labels[centre, centre]
        if label == 0:
            rows.append({"objects": n_objects})
            continue
        nucleus = ndimage.binary_fill_holes(labels == label)
        props = regionprops(nucleus.astype(np.uint8))[0]
        background = image[~mask]
        signal = image[nucleus].mean() - background.mean()
        rows.append(
            {
                "area": props.area,
                "major": props.axis_major_length,
                "minor": props.axis_minor_length,
                "eccentricity": props.eccentricity,
                "snr": signal / background.std(),
                "texture": image[nucleus].std() / signal,
                "objects": n_objects,
            }
        )
    return pd.DataFrame(rows)


def _summary(values: pd.Series) -> str:
    low, mid, high = np.nanpercentile(values, [10, 50, 90])
    digits = 0 if abs(mid) >= 100 else 1 if abs(mid) >= 5 else 2
    return f"{mid:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def realism_table(n: int = 600, seed: int = 3) -> str:
    """Synthetic against real crop statistics, one row pair per class (markdown)."""
    batch = generate_crops(n, seed=seed)
    stats = crop_statistics(batch.images)
    columns = list(REAL["interphase"])
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label, state in enumerate(REAL):
        real = REAL[state]
        lines.append(f"| real {state} | " + " | ".join(f"{m:g} [{lo:g}-{hi:g}]" for m, lo, hi in real.values()) + " |")
        mine = stats[batch.labels == label]
        cells = [_summary(mine[column]) for column in columns]
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
