"""Speed of single-cell crop extraction on the default synthetic movie.

Extracts a 64 x 64 crop around every nucleus of the built-in sample (60 x 512 x
512, about 5,100 objects from its ground truth) and prints crops per second.
Each figure is the median of several runs, printed next to a baseline measured
in the same run on the same machine: copying the same number of bytes as the
crops (a float32 array of N x 64 x 64 values, np.copyto), the least any crop
extractor must do. Run: python benchmarks/bench_crops.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _timing import median_seconds  # benchmarks/_timing.py (run from the repo root)

from napari_cellstate.core.config import CropConfig, SimulationConfig
from napari_cellstate.core.crops import extract_crops
from napari_cellstate.core.objects import validate_objects
from napari_cellstate.core.simulate import simulate_movie


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    cfg = SimulationConfig()
    sample = simulate_movie(cfg)
    objects = validate_objects(sample.objects.assign(object_id=sample.objects.track_id))
    n = len(objects)
    source = np.ones((n, 64, 64), dtype=np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)  # touch the pages once

    runs = {
        "raw crops (no standardisation)": CropConfig(standardise=False),
        "standardised + clipped (default)": CropConfig(),
        "default + mask_neighbours": CropConfig(mask_neighbours=True),
        "default + rescale 0.33 -> 0.66 um/px": CropConfig(pixel_size_um=0.66),
    }
    print(f"machine: {os.cpu_count()} cores; {n} crops of 64 x 64 px; medians of {args.repeats} runs")
    print(f"baseline: np.copyto of {source.nbytes / 1e6:.0f} MB (float32, {n} x 64 x 64)")
    print(f"{'what':38s} {'time':>9s} {'baseline':>9s} {'ratio':>7s} {'crops/s':>10s}")
    for label, crop_cfg in runs.items():

        def run(crop_cfg=crop_cfg):
            extract_crops(sample.movie, objects, crop_cfg, labels=sample.labels, pixel_size_um=cfg.pixel_size_um)

        run()  # warm up
        seconds = median_seconds(run, args.repeats)
        baseline = median_seconds(lambda: np.copyto(target, source), args.repeats)
        print(f"{label:38s} {seconds:8.3f}s {baseline:8.4f}s {seconds / baseline:6.1f}x {n / seconds:10,.0f}")


if __name__ == "__main__":
    main()
