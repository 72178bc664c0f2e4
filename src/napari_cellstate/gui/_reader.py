"""A project folder comes back as layers (npe2 reader), and the cells' labels and predictions go back (writer).

Opening a project (drag the folder onto napari, File ▸ Open Folder, or the panel's Open button) gives: the movie
when the project recorded where it came from (a file, or the simulator's settings), the segmentation, the tracks,
the cells with every feature (labels, latents, each head's predictions) and the saved attack maps; the CellState
panel then opens on that project.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.types import LayerDataTuple

from ..core.progress import Progress
from ._layers import cells_layer, labels_layer, movie_layer, tracks_layer

if TYPE_CHECKING:  # tables load in the worker that reads the project
    import pandas as pd

__all__ = ["get_project_reader", "iter_project_layers", "project_layers", "write_cells"]

ATTACKS_FOLDER = "attacks"
MAX_ATTACK_LAYERS = 20


def _project_folder(path) -> Path | None:
    from ..core.project.folder import PROJECT_FILE

    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    folder = Path(path)
    if folder.name == PROJECT_FILE:
        folder = folder.parent
    return folder if (folder / PROJECT_FILE).is_file() else None


def get_project_reader(path):
    """npe2 reader: a function reading the project folder at ``path``, or None when it is not one."""
    return read_project if _project_folder(path) is not None else None


def read_project(path) -> list[LayerDataTuple]:
    """Open the CellState panel on the project; the panel reads its layers in a worker and adds them when ready.

    napari calls readers on its GUI thread, and reading a project (re-simulating its movie, say) takes seconds, so
    the reader returns at once with napari's "no layers here" value, ``[(None,)]``; the layers follow, drawn one
    at a time. Without a viewer (a script), the layers themselves are read and returned.
    """
    folder = _project_folder(path)
    panel = _open_panel_on(folder)
    if panel is None:
        return project_layers(folder)
    panel.open_project()
    return [(None,)]


def _open_panel_on(folder: Path):
    """The viewer's CellState panel, on ``folder``; None without a viewer."""
    import napari

    from ._project import project_state

    viewer = napari.current_viewer()
    if viewer is None:
        return None
    project_state(viewer).path = folder
    return viewer.window.add_plugin_dock_widget("napari-cellstate", "CellState")[1]


def project_layers(folder: os.PathLike | str) -> list[LayerDataTuple]:
    """Blocking :func:`iter_project_layers`."""
    from ..core.progress import run_to_completion

    return run_to_completion(iter_project_layers(folder))


def iter_project_layers(folder: os.PathLike | str) -> Generator[Progress, None, list[LayerDataTuple]]:
    """Read a project's layers: movie (when recorded), segmentation, tracks, cells, attack maps.

    Raises
    ------
    ProjectError
        The folder is not a project or has no cells yet.
    """
    import zarr

    from ..core.labelling import LabelStore
    from ..core.pipeline import read_movie_record
    from ..core.project import Project, load_crop_dataset

    project = Project.open(folder)
    yield Progress(0, 4, "reading the cells ...", stage="reading")
    dataset = load_crop_dataset(project)
    objects = dataset.objects.copy()
    if project.labels_path.exists():
        objects["label"] = LabelStore(project.labels_path).labels_for(objects).to_numpy()
    record = read_movie_record(project) or {}
    sources = dataset.metadata.get("sources") or [{}]
    px = float(record.get("pixel_size_um") or sources[0].get("pixel_size_um") or 1.0)
    layers = []
    yield Progress(1, 4, "reading the movie ...", stage="reading")
    movie = _movie(record)
    if movie is not None:
        layers.append(movie_layer(movie, px, name=record.get("name") or "movie"))
    if project.segmentation_path is not None and project.segmentation_path.exists():
        segmentation = zarr.open_array(str(project.segmentation_path), mode="r")
        layers.append(labels_layer(segmentation, objects, px))
    yield Progress(2, 4, "placing the tracks and cells ...", stage="reading")
    if "track_id" in objects and (objects["track_id"] > 0).any():
        layers.append(tracks_layer(objects, _division_graph(objects), px))
    layers.append(cells_layer(objects, px, fill_by="head_class" if "head_class" in objects else None))
    yield Progress(3, 4, "reading the attacks ...", stage="reading")
    layers += _attack_layers(project.path / ATTACKS_FOLDER)
    yield Progress(4, 4, f"read {len(objects)} cells from {project.path}", stage="reading")
    return layers


def _movie(record: dict):
    """The recorded movie: re-simulated from its settings, or read from its file (lazily for TIFF)."""
    if record.get("simulation"):
        from ..core.config import SimulationConfig
        from ..core.simulate import simulate_movie

        return simulate_movie(SimulationConfig(**record["simulation"])).movie
    path = Path(record["path"]) if record.get("path") else None
    if path is None or not path.exists():
        return None
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile
        import zarr

        return zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    import imageio.v3 as iio

    return iio.imread(path)


def _division_graph(objects: pd.DataFrame) -> dict[int, list[int]]:
    tracks = objects.drop_duplicates("track_id")
    parents = tracks[(tracks["parent_track_id"] > 0) & (tracks["parent_track_id"] != tracks["track_id"])]
    return {int(t): [int(p)] for t, p in zip(parents["track_id"], parents["parent_track_id"], strict=True)}


def _attack_layers(folder: Path) -> list[LayerDataTuple]:
    from ..core.attacks.results import SUMMARY_FILE, load_attack_result
    from ._attack_layers import perturbation_layer

    layers = []
    for result_folder in sorted(folder.glob(f"*/{SUMMARY_FILE}")) if folder.is_dir() else ():
        result, summary = load_attack_result(result_folder.parent)
        for row in range(min(len(result.cells), MAX_ATTACK_LAYERS)):
            layers.append(perturbation_layer(result, row, summary.get("geometry") or {}))
    return layers


def write_cells(path: str, data: np.ndarray, attributes: dict) -> list[str]:
    """npe2 writer: save a cells layer's labels and predictions back into the project folder ``path``.

    Labels go to ``labels.csv`` (each cell's ``label`` feature; "" removes a label), predictions (``head_score``,
    ``head_class``) to the live run's "predictions" column group, and each scheme's own (``sparse_score``,
    ``sparse_class``, ...) to its ``predictions_<scheme>`` group. The layer must be the project's cells (its
    features carry ``object_id``).
    """
    import pandas as pd

    from ..core.labelling import LabelStore
    from ..core.project import Project, load_crop_dataset, set_object_columns
    from ._apply import scheme_columns

    folder = _project_folder(path)
    if folder is None:
        raise ValueError(f"{path} is not a napari-cellstate project: save the cells layer into its project folder.")
    features = pd.DataFrame(attributes.get("features", {}))
    if "object_id" not in features:
        raise ValueError("This Points layer has no object_id feature: save the project's cells layer.")
    project = Project.open(folder)
    written = []
    if "label" in features:
        store = LabelStore(project.labels_path)
        for label, cells in features.fillna({"label": ""}).groupby(features["label"].fillna("").astype(str)):
            store.assign(cells, label)
        written.append(str(project.labels_path))
    schemes = [str(c).removesuffix("_class") for c in features if str(c).endswith("_class") and c != "head_class"]
    groups = {"predictions": ("head_score", "head_class")}
    groups.update({f"predictions_{scheme}": scheme_columns(scheme) for scheme in schemes})
    objects = None
    for group, (score, klass) in groups.items():
        if klass not in features or score not in features:
            continue
        objects = load_crop_dataset(project).objects[["object_id"]] if objects is None else objects
        predictions = objects.merge(features[["object_id", score, klass]], on="object_id", how="left")
        columns = predictions[[score, klass]].astype({klass: "string"}).reset_index(drop=True)
        set_object_columns(project, columns, group=group, provenance={"command": "napari writer"})
        written.append(str(project.run_path))
    return sorted(set(written))
