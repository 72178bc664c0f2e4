"""The central nucleus of a crop, found and measured on the crop itself.

Latents are named after measured morphology (:mod:`napari_cellstate.core.vae.naming`). A movie's segmentation
measures each nucleus in the movie's pixels, but imported crops have no segmentation, and rescaled crops show the
nucleus at another scale than the movie. Measuring every crop the same way — on the crop the β-TCVAE sees — gives
every dataset the same quantities in the same units (crop pixels, standardised intensity):

* the nucleus: Gaussian σ = 1, Otsu's threshold per crop, the connected object under the centre (or the one
  nearest to it), holes filled (dim chromatin inside is nucleus too);
* its ``area`` (px²), ``eccentricity``, ``orientation`` (radians, as ``skimage.measure.regionprops``),
  ``intensity_mean`` (mean standardised intensity inside the nucleus) and ``texture_contrast`` (standard
  deviation, inside the nucleus, of the crop minus its Gaussian σ = 2 blur: fine chromatin texture).

:func:`iter_measure_project` stores them as the objects table's column group ``"crop_morphology"`` (columns
``crop_area``, ``crop_eccentricity``, ...); the encode step runs it, so every encoded project can name its latents.
:func:`morphology_table` gives the quantities under their plain names for naming.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import numpy as np
import pandas as pd
from scipy import ndimage

from .progress import Progress

__all__ = [
    "CROP_MORPHOLOGY_GROUP",
    "CROP_QUANTITIES",
    "central_nucleus_masks",
    "foreground_masks",
    "iter_measure_project",
    "measure_crops",
    "morphology_table",
]

#: Quantities measured on every crop's central nucleus.
CROP_QUANTITIES = ("area", "eccentricity", "orientation", "intensity_mean", "texture_contrast")
#: Name of the objects table's column group holding them (as ``crop_<quantity>``).
CROP_MORPHOLOGY_GROUP = "crop_morphology"
_PREFIX = "crop_"


def foreground_masks(crops: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Every bright object of each crop: Gaussian(σ) then Otsu's threshold per crop, (N, S, S) bool."""
    from skimage.filters import threshold_otsu

    crops = np.asarray(crops, dtype=np.float32)
    smooth = ndimage.gaussian_filter(crops, sigma=(0, sigma, sigma))
    out = np.zeros(crops.shape, dtype=bool)
    for i, image in enumerate(smooth):
        if np.ptp(image) > 0:
            out[i] = image > threshold_otsu(image)
    return out


def central_nucleus_masks(crops: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """The nucleus under the centre of each crop, (N, S, S) bool.

    The connected foreground object (:func:`foreground_masks`) holding the centre pixel, or the object nearest
    to the centre when the centre is background, with its holes filled (dim chromatin inside is nucleus too);
    all False for a crop with no object.

    Examples
    --------
    >>> crops = np.zeros((1, 16, 16), np.float32)
    >>> crops[0, 6:10, 6:10] = 5; crops[0, 0:3, 0:3] = 5  # the centre cell and a neighbour
    >>> mask = central_nucleus_masks(crops)
    >>> int(mask.sum()), bool(mask[0, 8, 8]), bool(mask[0, 1, 1])
    (16, True, False)
    """
    fg = foreground_masks(crops, sigma)
    out = np.zeros_like(fg)
    centre = np.array(fg.shape[1:]) // 2
    for i, mask in enumerate(fg):
        labels, n = ndimage.label(mask)
        if n == 0:
            continue
        label = labels[tuple(centre)]
        if label == 0:
            rows, cols = np.nonzero(labels)
            nearest = np.argmin((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2)
            label = labels[rows[nearest], cols[nearest]]
        out[i] = ndimage.binary_fill_holes(labels == label)
    return out


def measure_crops(crops, *, batch_size: int = 512) -> pd.DataFrame:
    """Area, eccentricity, orientation, intensity and texture of each crop's central nucleus.

    Parameters
    ----------
    crops : array of shape (N, S, S)
        Standardised crops (numpy or zarr; read ``batch_size`` at a time).

    Returns
    -------
    DataFrame
        N rows, columns :data:`CROP_QUANTITIES`; NaN for a crop with no object.

    Examples
    --------
    >>> crops = np.zeros((2, 32, 32), np.float32)
    >>> crops[0, 12:20, 10:22] = 3  # a wide nucleus (12 x 8 px; the blurred edge counts too)
    >>> crops[1, 14:18, 14:18] = 3
    >>> table = measure_crops(crops)
    >>> table["area"].tolist(), bool(table.loc[0, "eccentricity"] > table.loc[1, "eccentricity"])
    ([120.0, 16.0], True)
    """
    from skimage.measure import regionprops

    parts = []
    for start in range(0, len(crops), batch_size):
        block = np.asarray(crops[start : start + batch_size], dtype=np.float32)
        masks = central_nucleus_masks(block)
        fine = block - ndimage.gaussian_filter(block, sigma=(0, 2, 2))
        rows = np.full((len(block), len(CROP_QUANTITIES)), np.nan)
        for i, mask in enumerate(masks):
            if not mask.any():
                continue
            region = regionprops(mask.astype(np.uint8))[0]
            inside = block[i][mask]
            rows[i] = (region.area, region.eccentricity, region.orientation, inside.mean(), fine[i][mask].std())
        parts.append(rows)
    values = np.concatenate(parts) if parts else np.zeros((0, len(CROP_QUANTITIES)))
    return pd.DataFrame(values, columns=list(CROP_QUANTITIES))


def iter_measure_project(
    project: os.PathLike | str, *, batch_size: int = 512
) -> Generator[Progress, None, pd.DataFrame]:
    """Measure every crop of a project and store the result as the ``"crop_morphology"`` column group.

    Returns the dataset's objects table with the new columns (``crop_area``, ``crop_eccentricity``, ...).
    """
    from .project import load_crop_dataset, set_object_columns

    dataset = load_crop_dataset(project)
    n = dataset.crops.shape[0]
    parts = []
    for start in range(0, n, batch_size):
        parts.append(measure_crops(dataset.crops[start : start + batch_size]))
        done = min(start + batch_size, n)
        yield Progress(done, n, f"measured {done}/{n} crops", stage="crop morphology")
    table = pd.concat(parts, ignore_index=True) if parts else measure_crops(np.zeros((0, 1, 1)))
    columns = table.add_prefix(_PREFIX)
    provenance = {"command": "measure crops", "method": "Gaussian σ=1, Otsu, central object, holes filled"}
    return set_object_columns(project, columns, group=CROP_MORPHOLOGY_GROUP, provenance=provenance).objects


def morphology_table(objects: pd.DataFrame) -> pd.DataFrame | None:
    """The crop-measured quantities of an objects table under their plain names (``area``, ...), or None.

    Latent names come from these, not from the movie's segmentation, so movie and imported crops are named alike.

    >>> objects = pd.DataFrame({"area": [500.0], "crop_area": [120.0], "crop_eccentricity": [0.5]})
    >>> morphology_table(objects).to_dict("records")
    [{'area': 120.0, 'eccentricity': 0.5}]
    """
    present = [q for q in CROP_QUANTITIES if _PREFIX + q in objects.columns]
    if not present:
        return None
    table = objects[[_PREFIX + q for q in present]].reset_index(drop=True)
    return table.rename(columns=lambda c: c[len(_PREFIX) :])
