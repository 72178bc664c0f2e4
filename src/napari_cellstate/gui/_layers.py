"""The one place where core results become napari layer data tuples."""

from __future__ import annotations

import numpy as np
import pandas as pd
from napari.types import LayerDataTuple
from napari.utils.colormaps.standardize_color import transform_color

from ..core.preview import display_range
from ..core.states import STATE_COLOURS

MOVIE_LAYER = "cellstate movie"
LABELS_LAYER = "cellstate labels"
CELLS_LAYER = "cellstate cells"


def _placement(pixel_size_um: float) -> dict:
    """Scale, units and axis names shared by every layer over a (T, Y, X) movie."""
    return {"scale": (1.0, pixel_size_um, pixel_size_um), "units": ("s", "um", "um"), "axis_labels": ("t", "y", "x")}


def movie_layer(movie: np.ndarray, pixel_size_um: float, name: str = MOVIE_LAYER) -> LayerDataTuple:
    """Image layer of a (T, Y, X) movie in micrometres."""
    return (
        movie,
        {
            "name": name,
            **_placement(pixel_size_um),
            "colormap": "gray",
            "contrast_limits": display_range(movie[len(movie) // 2]),
        },
        "image",
    )


def labels_layer(
    labels: np.ndarray, objects: pd.DataFrame, pixel_size_um: float, name: str = LABELS_LAYER
) -> LayerDataTuple:
    """Labels layer whose features are the objects table (label id in ``index``)."""
    features = objects.drop_duplicates("track_id").assign(index=lambda f: f["track_id"]).reset_index(drop=True)
    return (
        labels,
        {
            "name": name,
            **_placement(pixel_size_um),
            "features": features,
            "opacity": 0.25,
        },
        "labels",
    )


def cells_layer(objects: pd.DataFrame, pixel_size_um: float, name: str = CELLS_LAYER) -> LayerDataTuple:
    """Points layer: a ring per cell per frame, coloured by its ``state``; the table is its features."""
    colours = transform_color([STATE_COLOURS.get(str(s), "#ffffff") for s in objects["state"]])
    data = objects[["t", "y", "x"]].to_numpy(float)
    kwargs = {
        "name": name,
        **_placement(pixel_size_um),
        "features": objects.reset_index(drop=True),
        "face_color": "transparent",
        "border_color": colours,
        "border_width": 0.08,
        "border_width_is_relative": True,
        "size": 38,
        "out_of_slice_display": False,
    }
    return (data, kwargs, "points")
