"""Speed of tracking and of the whole movie-to-crops step on the default synthetic movie.

Baselines, measured in the same run: a greedy nearest-neighbour linker
(scipy KD-tree, frame to frame) for btrack, and reading the movie once plus a
Gaussian blur and Otsu threshold per frame for the whole pipeline.
Run: python benchmarks/bench_track.py [--repeats N]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from _timing import median_seconds  # benchmarks/_timing.py (run from the repo root)
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.filters import threshold_otsu

from napari_cellstate.core.config import CropConfig, SimulationConfig
from napari_cellstate.core.pipeline import track_and_crop
from napari_cellstate.core.simulate import simulate_movie
from napari_cellstate.core.track import track_objects
from napari_cellstate.core.track_metrics import score_tracking


def nearest_neighbour_links(objects) -> int:
    links = 0
    frames = [f[["y", "x"]].to_numpy() for _, f in objects.groupby("t")]
    for before, after in itertools.pairwise(frames):
        distance, _ = cKDTree(before).query(after, distance_upper_bound=45)
        links += int(np.isfinite(distance).sum())
    return links


def blur_and_threshold(movie) -> None:
    for frame in movie:
        smooth = ndimage.gaussian_filter(frame.astype(np.float32), 1.5)
        _ = smooth > threshold_otsu(smooth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sample = simulate_movie(SimulationConfig())
    objects = sample.objects[["t", "y", "x"]]
    n = len(objects)

    track_s = median_seconds(lambda: track_objects(objects, sample.config.shape_yx), args.repeats)
    link_s = median_seconds(lambda: nearest_neighbour_links(objects), args.repeats)
    pipeline_s = median_seconds(lambda: track_and_crop(sample.movie, pixel_size_um=0.33, crops=CropConfig()), 3)
    base_s = median_seconds(lambda: blur_and_threshold(sample.movie), 3)

    result = track_and_crop(sample.movie, pixel_size_um=0.33, crops=CropConfig())
    truth = sample.objects.assign(object_id=sample.objects["track_id"])
    scores = score_tracking(truth, sample.labels, result.objects, result.labels)

    print(f"default synthetic movie: {sample.movie.shape}, {n} cell-frames; medians")
    print(f"{'what':46s} {'time':>8s} {'baseline':>9s} {'ratio':>6s}")
    print(
        f"{'btrack on true centroids':46s} {track_s:7.2f}s {link_s:8.3f}s {track_s / link_s:5.0f}x"
        f"   ({n / track_s:,.0f} objects/s)"
    )
    print(
        f"{'segment + measure + track + crop (whole movie)':46s} {pipeline_s:7.2f}s {base_s:8.3f}s "
        f"{pipeline_s / base_s:5.0f}x   ({sample.movie.shape[0] / pipeline_s:.1f} frames/s)"
    )
    print("tracking vs ground truth: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))


if __name__ == "__main__":
    main()
