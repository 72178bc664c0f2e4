"""How close the synthetic crops are to real ones: the central nucleus measured as real crops were measured.

docs/method.md ("Real and synthetic crops in numbers") gives medians and 10th-90th percentiles of real H2B crops;
:func:`crop_statistics` measures any crops the same way, so the generator can be checked against them
(``benchmarks/bench_simulate.py`` prints the comparison; a test keeps the generator's medians in the real ranges).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..crop_morphology import foreground_masks

__all__ = ["REAL_CROP_STATISTICS", "crop_statistics"]

#: Real 64x64 H2B crops of MDCK cells at the paper's scale, expert-labelled (not in the repo): median, 10th and
#: 90th percentile of each column, copied from docs/method.md ("Real and synthetic crops in numbers").
REAL_CROP_STATISTICS = {
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
