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
TRACKS_LAYER = "cellstate tracks"
CROP_LAYER = "cellstate selected crop"


def _placement(pixel_size_um: float) -> dict:
    """Scale (frames, um, um) and axis names shared by every layer over a (T, Y, X) movie.

    No units are set: napari ignores them (with a warning) when the user's own
    movie layer has none.
    """
    return {"scale": (1.0, pixel_size_um, pixel_size_um), "axis_labels": ("t", "y", "x")}


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
    labels: np.ndarray,
    objects: pd.DataFrame,
    pixel_size_um: float,
    name: str = LABELS_LAYER,
    id_column: str = "object_id",
) -> LayerDataTuple:
    """Labels layer whose features are the objects table (label id in ``index``).

    ``id_column`` names the column holding each object's value in ``labels``
    (``track_id`` for the simulator's ground truth).
    """
    features = objects.drop_duplicates(id_column).assign(index=lambda f: f[id_column]).reset_index(drop=True)
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


def label_colours(labels: pd.Series) -> np.ndarray:
    """RGBA per cell: the state's colour, white for user classes, grey when unlabelled."""
    names = labels.astype(str)
    return transform_color([STATE_COLOURS.get(n, "#ffffff") if n else "#7f7f7f" for n in names])


def cells_layer(
    objects: pd.DataFrame, pixel_size_um: float, name: str = CELLS_LAYER, colour_by: str = "label"
) -> LayerDataTuple:
    """Points layer: a ring per cell per frame coloured by ``colour_by``; the table is its features."""
    colours = label_colours(objects[colour_by])
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


def tracks_layer(objects: pd.DataFrame, graph: dict[int, list[int]], pixel_size_um: float) -> LayerDataTuple:
    """Tracks layer (divisions in ``graph``) with the objects table as per-point features."""
    tracked = objects[objects["track_id"] > 0].sort_values(["track_id", "t"]).reset_index(drop=True)
    data = tracked[["track_id", "t", "y", "x"]].to_numpy(float)
    kwargs = {
        "name": TRACKS_LAYER,
        **_placement(pixel_size_um),
        "features": tracked,
        "graph": {int(k): [int(p) for p in v] for k, v in graph.items()},
        "tail_length": 10,
        "tail_width": 2,
    }
    return (data, kwargs, "tracks")


def crop_layer(crop: np.ndarray, title: str, pixel_size_um: float, movie_width_px: int) -> LayerDataTuple:
    """A single crop, shown at the movie's scale just right of the movie."""
    kwargs = {
        "name": CROP_LAYER,
        "colormap": "gray",
        "scale": (pixel_size_um, pixel_size_um),
        "translate": (0.0, (movie_width_px + 8) * pixel_size_um),
        "metadata": {"title": title},
    }
    return (crop, kwargs, "image")


def colour_cells_by_class(
    layer,
    table: pd.DataFrame,
    class_column: str,
    *,
    columns: tuple[str, ...] = (),
    key: str = "object_id",
    alpha: float = 0.45,
) -> None:
    """Copy a class column (and ``columns``) of ``table`` into a cells layer's features and fill each point by class.

    Used to show predictions (e.g. a head's ``head_class``) on the time-lapse while the ring keeps the colour of
    the user's label, so a prediction and a label can be compared at a glance. Rows are matched on ``key``;
    cells absent from ``table`` keep a transparent face.

    Parameters
    ----------
    layer : napari.layers.Points
        The cells layer; its features must hold ``key``.
    table : DataFrame
        One row per cell with ``key`` and ``class_column`` (state names, coloured by ``STATE_COLOURS``).
    class_column : str
        The column to colour by.
    columns : tuple of str, default=()
        Further columns to copy (e.g. the score).
    key : str, default="object_id"
        Column identifying a cell in both tables.
    alpha : float, default=0.45
        Opacity of the fill, low enough to see the nucleus through it.
    """
    if key not in layer.features.columns:
        raise ValueError(f"The layer '{layer.name}' has no '{key}' feature to match cells by.")
    copied = [class_column, *columns]
    features = layer.features.drop(columns=[c for c in copied if c in layer.features.columns])
    features = features.merge(table[[key, *copied]].drop_duplicates(key), on=key, how="left")
    classes = features[class_column].astype("string").fillna("")
    colours = label_colours(classes)
    colours[:, 3] = np.where(classes.to_numpy() == "", 0.0, alpha)
    layer.features = features
    layer.face_color = colours
