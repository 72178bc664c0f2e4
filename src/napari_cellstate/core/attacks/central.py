"""Which latents describe the central cell, for the shortcut test (latent attacks with those latents frozen).

Latents get roles from their within-class correlations with measured quantities
(:func:`~napari_cellstate.core.heads.compare.latent_roles`): nucleus quantities (area, eccentricity,
orientation, brightness, ...) against neighbourhood quantities (neighbour count, nearest-neighbour distance).
Synthetic data carries its generating factors; a project's cells get their neighbourhood measured here from the
objects table (other cells of the same frame inside the crop window).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["central_latents", "neighbourhood_factors"]


def neighbourhood_factors(objects: pd.DataFrame, window_px: float) -> pd.DataFrame:
    """``neighbour_count`` (other cells inside the crop window) and ``nearest_neighbour_px`` per object.

    Parameters
    ----------
    objects : DataFrame
        With ``t``, ``y``, ``x`` (movie pixels).
    window_px : float
        Side of the crop window in movie pixels.

    Returns
    -------
    DataFrame
        Same index as ``objects``; ``nearest_neighbour_px`` is inf for a cell alone in its frame.

    Examples
    --------
    >>> cells = pd.DataFrame({"t": [0, 0, 0, 1], "y": [10.0, 20.0, 90.0, 10.0], "x": [10.0, 10.0, 10.0, 10.0]})
    >>> neighbourhood_factors(cells, 64)["neighbour_count"].tolist()
    [1, 1, 0, 0]
    """
    from scipy.spatial import cKDTree

    half = window_px / 2
    count = np.zeros(len(objects), dtype=np.int64)
    nearest = np.full(len(objects), np.inf)
    positions = objects[["y", "x"]].to_numpy(dtype=float)
    frames = objects["t"].to_numpy()
    for t in np.unique(frames):
        rows = np.flatnonzero(frames == t)
        tree = cKDTree(positions[rows])
        inside = tree.query_ball_point(positions[rows], r=half, p=np.inf)
        count[rows] = [len(found) - 1 for found in inside]
        if len(rows) > 1:
            distance, _ = tree.query(positions[rows], k=2)
            nearest[rows] = distance[:, 1]
    return pd.DataFrame({"neighbour_count": count, "nearest_neighbour_px": nearest}, index=objects.index)


def central_latents(latents: np.ndarray, factors: pd.DataFrame, classes: np.ndarray) -> list[int]:
    """Indices of the latents whose role is "nucleus" (the central cell's latents).

    Parameters
    ----------
    latents : ndarray of shape (N, D)
    factors : DataFrame
        N rows of nucleus quantities and at least one neighbourhood quantity.
    classes : ndarray of shape (N,)
        Class of each cell (labels or predictions): correlations are taken within each class.
    """
    from ..heads.compare import latent_roles
    from ..heads.data import HeadData

    n = len(latents)
    data = HeadData(
        labels=np.asarray(classes).astype(np.int8),
        split=np.full(n, "test"),
        groups=np.arange(n),
        latents=np.asarray(latents, dtype=np.float32),
        crops=None,
        input_names=[],
        source="the audited cells",
        factors=factors.reset_index(drop=True),
    )
    return [j for j, role in enumerate(latent_roles(data)) if role == "nucleus"]
