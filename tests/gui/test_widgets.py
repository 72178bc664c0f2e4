import numpy as np
import pytest
from app_model.types import KeyBinding

from napari_cellstate.core.project import load_crop_dataset
from napari_cellstate.gui._layers import CELLS_LAYER, CROP_LAYER, LABELS_LAYER, TRACKS_LAYER
from napari_cellstate.gui._widgets.label_cells import LabelCellsWidget
from napari_cellstate.gui._widgets.track_crop import TrackCropWidget

pytestmark = pytest.mark.gui


def _run(widget, qtbot):
    widget.run()
    qtbot.waitUntil(lambda: widget.panel.worker is None, timeout=120_000)


@pytest.mark.slow
def test_track_crop_widget_adds_layers_with_features(make_napari_viewer, qtbot, small_sample, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(small_sample.movie, name="movie", scale=(1, 0.33, 0.33))
    widget = TrackCropWidget(viewer)
    assert widget.pixel_size_um.value == pytest.approx(0.33)
    widget.project.value = str(tmp_path / "project")
    _run(widget, qtbot)
    assert widget.panel.last_error is None, widget.panel.status.text()

    cells = viewer.layers[CELLS_LAYER]
    assert {"object_id", "track_id", "t", "y", "x", "area", "label"} <= set(cells.features.columns)
    assert len(cells.data) == len(widget.result.objects)
    tracks = viewer.layers[TRACKS_LAYER]
    assert tracks.graph, "divisions appear in the Tracks layer graph"
    assert np.asarray(viewer.layers[LABELS_LAYER].data).max() == widget.result.objects["object_id"].max()
    assert len(load_crop_dataset(tmp_path / "project")) == len(widget.result.objects)

    cells.selected_data = {5}
    qtbot.waitUntil(lambda: not widget.crop_reader.busy, timeout=30_000)  # read off the GUI thread
    np.testing.assert_array_equal(viewer.layers[CROP_LAYER].data, load_crop_dataset(tmp_path / "project").crops[5])


def test_track_crop_widget_explains_bad_input(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8), name="rgb", rgb=True)
    widget = TrackCropWidget(viewer)
    widget.project.value = str(tmp_path / "project")
    _run(widget, qtbot)
    assert "RGB" in widget.panel.status.text()
    assert CELLS_LAYER not in viewer.layers
    assert not (tmp_path / "project").exists()


def test_track_crop_can_be_cancelled(make_napari_viewer, qtbot, default_sample, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(default_sample.movie, name="movie")
    widget = TrackCropWidget(viewer)
    widget.project.value = str(tmp_path / "project")
    widget.run()
    widget.panel.cancel()
    qtbot.waitUntil(lambda: widget.panel.worker is None, timeout=60_000)
    assert widget.panel.status.text() == "cancelled"
    assert CELLS_LAYER not in viewer.layers
    project = tmp_path / "project"
    qtbot.waitUntil(lambda: not project.exists(), timeout=10_000)  # the new project is gone, with its half run


@pytest.fixture
def labelling(make_napari_viewer, small_sample, tmp_path):
    """A viewer with the small sample's cells and a Label cells widget on them."""
    viewer = make_napari_viewer()
    objects = small_sample.objects.assign(object_id=range(1, len(small_sample.objects) + 1))
    viewer.add_points(objects[["t", "y", "x"]].to_numpy(), features=objects, name="cells")
    viewer.add_points(objects[["t", "y", "x"]].to_numpy(), features=small_sample.objects, name="true states")
    widget = LabelCellsWidget(viewer)
    widget.project.value = str(tmp_path / "project")
    assert widget.cells.choices == ("cells",)  # a Points layer without cell ids is never offered
    widget.cells.value = "cells"
    widget.open_store()
    return viewer, widget, objects


def test_labelling_by_click_and_key_is_saved_and_undoable(labelling, tmp_path):
    viewer, widget, objects = labelling

    first = objects.iloc[0]
    widget.classes.setCurrentRow(1)  # metaphase
    assert widget.label_at((first["t"], first["y"] + 2, first["x"] - 2)) == 1
    layer = viewer.layers["cells"]
    assert layer.features["label"].iloc[0] == "metaphase"
    np.testing.assert_allclose(layer.border_color[0][:3], [0xE7 / 255, 0x29 / 255, 0x8A / 255], atol=0.01)

    layer.selected_data = {1, 2}
    assert KeyBinding.from_str("i") not in layer.keymap  # napari's own keys are left alone
    layer.keymap[KeyBinding.from_str("Alt-I")](layer)
    assert widget.store.counts() == {"interphase": 2, "metaphase": 1}

    widget.undo()
    assert widget.store.counts() == {"metaphase": 1}

    assert widget.labels_file.text().endswith(str(tmp_path / "project" / "labels.csv"))
    reopened = LabelCellsWidget(viewer)  # the project is shared by the viewer's widgets
    reopened.cells.value = "cells"
    reopened.open_store()
    assert reopened.store.counts() == {"metaphase": 1}


def test_propagate_and_ground_truth_import(labelling, small_sample, tmp_path):
    from napari_cellstate.core.io import save_simulation

    viewer, widget, objects = labelling

    track = objects["track_id"].value_counts().index[0]
    index = int(np.flatnonzero((objects["track_id"] == track).to_numpy())[0])
    viewer.layers["cells"].selected_data = {index}
    widget.label_selected("interphase")
    widget.t_from.value, widget.t_to.value = 0, 5
    assert widget.propagate_selected() == len(objects[(objects["track_id"] == track) & (objects["t"] <= 5)])

    mine = int(np.flatnonzero((objects["state"] == "interphase").to_numpy())[0])
    viewer.layers["cells"].selected_data = {mine}
    widget.label_selected("my class")
    written = save_simulation(small_sample, tmp_path / "sim")
    asked = []
    widget.import_truth(str(written["ground_truth"]), confirm=lambda n: asked.append(n) or False)
    assert asked
    assert asked[0] >= 1
    assert widget.store.labels_for(objects.iloc[[mine]]).iloc[0] == "my class"  # kept: the user said no
    assert widget.import_truth("true states", confirm=lambda n: True) == len(objects)  # from the sample's layer
    assert widget.store.counts() == objects["state"].astype(str).value_counts().sort_index().to_dict()
