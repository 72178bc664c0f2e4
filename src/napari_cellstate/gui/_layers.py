"""The one place where core results become napari layer data tuples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.types import LayerDataTuple
from napari.utils.colormaps.standardize_color import transform_color

from ..core.states import STATE_COLOURS

if TYPE_CHECKING:  # pandas loads with the first table, in a worker, not with the panel
    import pandas as pd

MOVIE_LAYER = "cellstate movie"
LABELS_LAYER = "cellstate labels"
CELLS_LAYER = "cellstate cells"
TRACKS_LAYER = "cellstate tracks"
CROP_LAYER = "cellstate selected crop"


def _placement(pixel_size_um: float) -> dict:
    """Scale (frames, um, um) and axis names shared by every layer over a (T, Y, X) movie.

    No units are set: napari ignores them (with a warning) when the user's own
    movie layer has none. Layer data tuples are made in workers, so the unit registry napari builds for the first
    layer of a session (a second or more) is built here, off the GUI thread.
    """
    import pint

    pint.get_application_registry().pixel  # noqa: B018 (built on first use)
    return {"scale": (1.0, pixel_size_um, pixel_size_um), "axis_labels": ("t", "y", "x")}


def movie_layer(movie: np.ndarray, pixel_size_um: float, name: str = MOVIE_LAYER) -> LayerDataTuple:
    """Image layer of a (T, Y, X) movie in micrometres."""
    from ..core.preview import display_range

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
    prepare_labels_colouring(labels.dtype)
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


def prepare_labels_colouring(dtype) -> None:
    """Have napari compile (numba) the code colouring a Labels layer of ``dtype``, here: call it in a worker.

    napari compiles it when it first draws labels wider than 16 bits, a second or more on the GUI thread; the
    layer data tuples are made in workers, so the first Labels layer appears without that pause.
    """
    if np.dtype(dtype).itemsize <= 2:
        return
    try:
        from napari.utils.colormaps import label_colormap
        from napari.utils.colormaps.colormap import _cast_labels_data_to_texture_dtype_auto
    except ImportError:  # another napari: it compiles when it draws
        return
    _cast_labels_data_to_texture_dtype_auto(np.arange(4, dtype=dtype).reshape(2, 2), label_colormap())


def label_colours(labels: pd.Series) -> np.ndarray:
    """RGBA per cell: the state's colour, white for user classes, grey when unlabelled."""
    names = labels.astype(str)
    return transform_color([STATE_COLOURS.get(n, "#ffffff") if n else "#7f7f7f" for n in names])


def fill_colours(classes: pd.Series, alpha: float = 0.45) -> np.ndarray:
    """RGBA fill per cell: the class's colour at ``alpha``, transparent where there is no class."""
    classes = classes.astype("string").fillna("")
    colours = label_colours(classes)
    colours[:, 3] = np.where(classes.to_numpy() == "", 0.0, alpha)
    return colours


def cells_layer(
    objects: pd.DataFrame,
    pixel_size_um: float,
    name: str = CELLS_LAYER,
    colour_by: str = "label",
    fill_by: str | None = None,
) -> LayerDataTuple:
    """Points layer: a ring per cell per frame coloured by ``colour_by``, filled by ``fill_by`` (e.g. a head's class).

    The table is the layer's features.
    """
    if colour_by not in objects:
        objects = objects.assign(**{colour_by: ""})
    colours = label_colours(objects[colour_by].fillna(""))
    data = objects[["t", "y", "x"]].to_numpy(float)
    kwargs = {
        "name": name,
        **_placement(pixel_size_um),
        "features": objects.reset_index(drop=True),
        "face_color": "transparent" if fill_by is None else fill_colours(objects[fill_by]),
        "border_color": colours,
        "border_width": 0.08,
        "border_width_is_relative": True,
        "size": 38,
        "out_of_slice_display": False,
    }
    return (data, kwargs, "points")


def update_layer(layer, data, kwargs: dict) -> None:
    """Give an existing layer new data and settings (a layer data tuple's): no layer removed, none added.

    Removing a napari layer runs a full garbage collection (seconds in a process holding torch and the tables),
    so the project's layers are updated in place when they are shown again.
    """
    layer.data = data
    for key, value in kwargs.items():
        if key not in ("name", "axis_labels"):
            setattr(layer, key, value)


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
    layer.features = features
    layer.face_color = fill_colours(features[class_column], alpha)


LEGEND = "ring: your label · fill: the head's prediction — magenta metaphase, blue interphase, grey unlabelled"
CANVAS_LEGEND = "ring: label · fill: prediction (magenta metaphase, blue interphase)"
GAP_PX = 16  # screen-free margin between images laid side by side, in the movie's pixels
#: Grid labels are text of a fixed world size (it zooms with the images it labels): a character's height, in grid
#: cells, and a character's width per unit of napari's scaled text size (measured on napari 0.9's vispy text).
LABEL_SIZE_CELLS = 0.22
CHAR_WIDTH_PER_SIZE = 0.9


def is_cells_layer(layer) -> bool:
    """A Points layer of cells: one point per cell per frame, identified by an ``object_id`` feature."""
    from napari.layers import Points

    return isinstance(layer, Points) and "object_id" in layer.features.columns


def cells_layer_names(viewer) -> list[str]:
    """Names of the viewer's cells layers, the Track & crop layer first."""
    names = [layer.name for layer in viewer.layers if is_cells_layer(layer)]
    return sorted(names, key=lambda name: name != CELLS_LAYER)


def right_of_everything(viewer, exclude: tuple[str, ...] = ()) -> float:
    """The world column just right of every visible layer but ``exclude``, plus a gap: where a new image goes.

    Text labels count to where their text ends (``metadata["text_right"]``, see :func:`grid_labels_layer`), not to
    their anchor points.
    """
    right, pixel = 0.0, 1.0
    for layer in viewer.layers:
        if layer.name in exclude or not layer.visible:
            continue
        right = max(right, float(layer.extent.world[1][-1]), float(layer.metadata.get("text_right", 0.0)))
        pixel = min(pixel, float(layer.scale[-1])) if right else float(layer.scale[-1])
    return right + GAP_PX * pixel if right else 0.0


def show_beside(viewer, image: np.ndarray, name: str, pixel_size_um: float, row: float = 0.0, **kwargs):
    """Show a 2-D image right of what the viewer already holds (updated in place if ``name`` exists).

    The layer that was active stays active, so keys and clicks keep going to the cells.
    """
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = image
        return layer
    active = viewer.layers.selection.active
    translate = (row, right_of_everything(viewer, exclude=(name,)))
    layer = viewer.add_image(
        image, name=name, scale=(pixel_size_um, pixel_size_um), translate=translate, colormap="gray", **kwargs
    )
    if active is not None:
        viewer.layers.selection.active = active
    return layer


def grid_labels_layer(image_layer, rows: list[str], columns: list[str], cell_px: int, name: str) -> LayerDataTuple:
    """Text labels for a grid image: row names right of each row, column values above each column.

    Points of size 0 carry the text, placed in the image layer's world coordinates. The text has a fixed world
    size (a fraction of a grid cell, zooming with the grid), so where it ends is known: the layer's
    ``metadata["text_right"]``, which :func:`right_of_everything` keeps clear of the next image.
    """
    import pandas as pd

    scale = np.asarray(image_layer.scale[-2:], float)
    origin = np.asarray(image_layer.translate[-2:], float)
    cell = cell_px * scale
    size = LABEL_SIZE_CELLS * float(cell[-1])
    char = CHAR_WIDTH_PER_SIZE * size
    left = origin[1] + len(columns) * cell[1] + 0.25 * cell[1]  # where the row names start
    points, text = [], []
    for r, label in enumerate(rows):  # centred on the point: the point sits half the name's width right of ``left``
        points.append((origin[0] + (r + 0.5) * cell[0], left + 0.5 * char * len(label)))
        text.append(label)
    for c, label in enumerate(columns):
        points.append((origin[0] - 0.25 * cell[0], origin[1] + (c + 0.5) * cell[1]))
        text.append(label)
    kwargs = {
        "name": name,
        "features": pd.DataFrame({"text": text}),
        "text": {"string": "{text}", "color": "white", "size": size, "scaling": True, "anchor": "center"},
        "size": 0,
        "face_color": "transparent",
        "border_color": "transparent",  # no dot at the text's centre
        "border_width": 0,
        "metadata": {"text_right": left + char * max((len(label) for label in rows), default=0)},
    }
    return (np.asarray(points), kwargs, "points")


def set_legend(viewer, text: str = CANVAS_LEGEND) -> None:
    """One legend for the cell classes, in the corner of the canvas."""
    overlay = viewer.canvas.overlays["text"]
    overlay.text = text
    overlay.font_size = 8
    overlay.position = "top_left"
    overlay.visible = True
