"""The objects table: one row per cell per frame, defined here once.

Every later step (tracking, crops, labels, latents, predictions) reads and adds
columns to this table. Lengths are in pixels, ``orientation`` in radians as in
``skimage.measure.regionprops``; ``label`` is a state name or "" when the cell
is unlabelled.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

__all__ = [
    "MEASUREMENTS",
    "OBJECT_COLUMNS",
    "latent_column_names",
    "latent_name",
    "latent_name_list",
    "logvar_name",
    "measure_frame",
    "validate_objects",
]

#: Column name -> dtype of the objects table, in order.
OBJECT_COLUMNS: dict[str, str] = {
    "object_id": "int64",  # the object's id in the segmentation stack (unique across frames)
    "track_id": "int64",  # 0 = not tracked
    "parent_track_id": "int64",  # 0 = no parent
    "t": "int64",
    "y": "float64",
    "x": "float64",
    "area": "float64",
    "axis_major_length": "float64",
    "axis_minor_length": "float64",
    "eccentricity": "float64",
    "orientation": "float64",
    "intensity_mean": "float64",
    "label": "string",
}


#: What is measured on every segmented object (``regionprops`` names).
MEASUREMENTS = (
    "area",
    "axis_major_length",
    "axis_minor_length",
    "eccentricity",
    "orientation",
    "intensity_mean",
)


def validate_objects(table: pd.DataFrame) -> pd.DataFrame:
    """Return ``table`` with the standard columns in order and dtypes; extra columns are kept.

    Raises
    ------
    ValueError
        Naming the missing columns.
    """
    required = {"t", "y", "x"}
    missing = sorted(required - set(table.columns))
    if missing:
        raise ValueError(f"The objects table lacks columns {missing}; it needs at least t, y and x.")
    table = table.copy()
    defaults = {"object_id": np.arange(1, len(table) + 1), "label": ""}
    for name, dtype in OBJECT_COLUMNS.items():
        if name not in table.columns:
            table[name] = defaults.get(name, 0 if dtype == "int64" else np.nan)
        if dtype != "float64":  # unknown measurements stay NaN; ids default to 0, labels to ""
            table[name] = table[name].fillna("" if dtype == "string" else 0)
        table[name] = table[name].astype(dtype)
    extra = [c for c in table.columns if c not in OBJECT_COLUMNS]
    return table[[*OBJECT_COLUMNS, *extra]]


def measure_frame(labels: np.ndarray, frame: np.ndarray, t: int) -> pd.DataFrame:
    """Measure every labelled object of one frame.

    Parameters
    ----------
    labels : ndarray of shape (Y, X), dtype int
        Segmentation; 0 is background, ids are the ``object_id``.
    frame : ndarray of shape (Y, X)
        Intensities.
    t : int
        Frame index.
    """
    props = pd.DataFrame(
        regionprops_table(
            np.asarray(labels),
            intensity_image=np.asarray(frame),
            properties=("label", "centroid", *MEASUREMENTS),
        )
    ).rename(columns={"label": "object_id", "centroid-0": "y", "centroid-1": "x"})
    props["t"] = t
    return validate_objects(props)


# Latent columns (added by encoding as a column group): named here, found here, never built elsewhere.
_LATENT_COLUMN = re.compile(r"z(\d+)")


def latent_name(index: int) -> str:
    """The column name of latent ``index``'s mean: ``z{index}``.

    >>> latent_name(17)
    'z17'
    """
    return f"z{int(index)}"


def latent_name_list(n: int) -> list[str]:
    """The names of ``n`` latents, in order."""
    return [latent_name(j) for j in range(n)]


def logvar_name(index: int) -> str:
    """The column name of latent ``index``'s log-variance: ``z{index}_logvar``."""
    return f"{latent_name(index)}_logvar"


def latent_column_names(table: pd.DataFrame) -> list[str]:
    """The latent-mean columns of a table, in latent order (``z0, z1, ..., z10``, not text order).

    >>> latent_column_names(pd.DataFrame(columns=["area", "z10", "z2", "z2_logvar"]))
    ['z2', 'z10']
    """
    found = [(int(m.group(1)), c) for c in table.columns if isinstance(c, str) and (m := _LATENT_COLUMN.fullmatch(c))]
    return [c for _, c in sorted(found)]
