"""Speed of nuclei segmentation on the built-in synthetic movie.

The figure is the median of several runs, printed next to a baseline measured
in the same run on the same machine: Gaussian smoothing and one global Otsu
threshold of the same frames (the least any threshold-based segmentation must
do). Run: python benchmarks/bench_segment.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _timing import median_seconds  # benchmarks/_timing.py (run from the repo root)
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from napari_cellstate.core.config import SegmentationConfig, SimulationConfig, ThresholdMethod
from napari_cellstate.core.segment import detection_scores, segment_movie
from napari_cellstate.core.simulate import simulate_movie


def smooth_and_otsu(movie: np.ndarray, sigma_px: float) -> np.ndarray:
    """The baseline: Gaussian smoothing and a global Otsu threshold, frame by frame."""
    masks = np.empty(movie.shape, bool)
    for t in range(len(movie)):
        smoothed = ndi.gaussian_filter(movie[t].astype(np.float32), sigma_px, mode="nearest")
        masks[t] = smoothed > threshold_otsu(smoothed)
    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    sample = simulate_movie(SimulationConfig())
    movie = sample.movie
    n_frames = movie.shape[0]
    otsu_cfg = SegmentationConfig()
    local_cfg = SegmentationConfig(threshold=ThresholdMethod.LOCAL)
    sigma_px = otsu_cfg.smoothing_um / otsu_cfg.pixel_size_um

    smooth_and_otsu(movie[:2], sigma_px)  # warm caches and imports
    base_s = median_seconds(lambda: smooth_and_otsu(movie, sigma_px), args.repeats)
    otsu_s = median_seconds(lambda: segment_movie(movie, otsu_cfg), args.repeats)
    local_s = median_seconds(lambda: segment_movie(movie, local_cfg), args.repeats)

    print(f"machine: {os.cpu_count()} cores; medians of {args.repeats} runs")
    print(f"movie: {n_frames} x {movie.shape[1]} x {movie.shape[2]} (default synthetic sample)")
    print(f"{'what':44s} {'frames/s':>9s} {'time':>8s} {'ratio':>7s}")
    print(f"{'baseline: Gaussian smoothing + Otsu':44s} {n_frames / base_s:9.1f} {base_s:7.2f}s {1:6.1f}x")
    for name, seconds in (("segment_movie, OTSU (default)", otsu_s), ("segment_movie, LOCAL", local_s)):
        print(f"{name:44s} {n_frames / seconds:9.1f} {seconds:7.2f}s {seconds / base_s:6.1f}x")
    for name, cfg in (("OTSU", otsu_cfg), ("LOCAL", local_cfg)):
        scores = detection_scores(sample.labels, segment_movie(movie, cfg))
        print(
            f"accuracy {name}: F1 {scores['f1']:.3f} (precision {scores['precision']:.3f}, "
            f"recall {scores['recall']:.3f}) at IoU >= 0.5; mean IoU {scores['iou_mean']:.3f}"
        )


if __name__ == "__main__":
    main()
