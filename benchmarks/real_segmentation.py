"""Detection F1 of the default segmentation on real nuclei, beside Otsu + connected components.

References (hand-checked nucleus centres, see tests/data/real/README.md):
* HT29 Hoechst field (512 x 512, nuclei about 11 px): ``tests/data/real/ht29_reference_nuclei.csv``.
* Drosophila H2B-GFP movie (63 frames, nuclei about 27 px): every 5th frame of
  ``tests/data/real/drosophila_reference_tracks.csv`` (frames 0, 5, ..., 60).

The product is given only the nucleus diameter (``config_for_nucleus_diameter``); both thresholds (Otsu, local)
are scored. The baseline, in the same run: Gaussian smoothing (sigma 1 px), one Otsu threshold, connected
components of at least a tenth of a nucleus. A detection matches a reference centre within half a nucleus
diameter (Hungarian); centres within half a diameter of the image edge are left out on both sides.

Run: python benchmarks/real_segmentation.py   (needs /work/shared/data/real for the full movie)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import regionprops

from napari_cellstate.core.segment import config_for_nucleus_diameter, point_detection_scores, segment_frame

REAL = Path("/work/shared/data/real")
REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "real"
DIAMETERS_PX = {"ht29": 11.0, "drosophila": 27.0}


def otsu_components(frame: np.ndarray, diameter_px: float) -> np.ndarray:
    """The baseline: smoothing, one Otsu level, connected components over a tenth of a nucleus's area."""
    smoothed = ndi.gaussian_filter(frame.astype(np.float32), 1.0)
    labels, _ = ndi.label(smoothed > threshold_otsu(smoothed))
    areas = np.bincount(labels.ravel())
    small = areas < 0.1 * np.pi * diameter_px**2 / 4
    small[0] = False
    labels[small[labels]] = 0
    return labels


def centres(labels: np.ndarray) -> np.ndarray:
    return np.array([r.centroid for r in regionprops(labels)]).reshape(-1, 2)


def images() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Each image set as (frame, reference centres) pairs."""
    ht29 = tifffile.imread(REAL / "ht29_hoechst.tif")
    sets = {"ht29": [(ht29, pd.read_csv(REFERENCE / "ht29_reference_nuclei.csv")[["y", "x"]].to_numpy())]}
    movie = tifffile.imread(REAL / "drosophila_histone_gfp_63t.tif")
    tracks = pd.read_csv(REFERENCE / "drosophila_reference_tracks.csv")
    sets["drosophila"] = [(movie[t], tracks.loc[tracks["t"] == t, ["y", "x"]].to_numpy()) for t in range(0, 63, 5)]
    return sets


def main() -> int:
    if not REAL.is_dir():
        print(f"skipped: {REAL} is absent")
        return 0
    methods = {
        "baseline: Otsu + components": otsu_components,
        "default (Otsu), diameter only": lambda f, d: segment_frame(f, config_for_nucleus_diameter(d)),
        "default (local), diameter only": lambda f, d: segment_frame(
            f, config_for_nucleus_diameter(d, threshold="local")
        ),
    }
    print(f"{'image':11s} {'method':32s} {'F1':>6s} {'prec':>6s} {'recall':>6s} {'ref':>5s}")
    for name, pairs in images().items():
        d = DIAMETERS_PX[name]
        for method, segment in methods.items():
            tp = fp = fn = 0.0
            for frame, reference in pairs:
                s = point_detection_scores(reference, centres(segment(frame, d)), d / 2, frame.shape, d / 2)
                tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
            f1 = 2 * tp / (2 * tp + fp + fn)
            print(f"{name:11s} {method:32s} {f1:6.3f} {tp / (tp + fp):6.3f} {tp / (tp + fn):6.3f} {tp + fn:5.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
