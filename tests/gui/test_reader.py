"""A project folder read back as layers, cells' labels and predictions written back, the project remembered."""

import shutil

import numpy as np
import pytest

from napari_cellstate.core.labelling import LabelStore
from napari_cellstate.core.project import load_crop_dataset
from napari_cellstate.gui._layers import CELLS_LAYER, LABELS_LAYER, TRACKS_LAYER
from napari_cellstate.gui._project import ProjectState, settings_path
from napari_cellstate.gui._reader import get_project_reader, project_layers, write_cells

pytestmark = pytest.mark.gui


@pytest.fixture
def project(labelled_project, tmp_path):
    return shutil.copytree(labelled_project, tmp_path / "project")


def test_a_project_reads_back_as_layers_with_every_feature(project, tmp_path):
    assert get_project_reader(str(project)) is not None
    assert get_project_reader(str(tmp_path)) is None  # not a project: another reader's turn
    layers = {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in project_layers(project)}
    assert {LABELS_LAYER, TRACKS_LAYER, CELLS_LAYER} <= set(layers)
    _, cells, kind = layers[CELLS_LAYER]
    assert kind == "points"
    features = cells["features"]
    assert {"object_id", "label", "z0", "z31"} <= set(features.columns)
    labels = LabelStore(project / "labels.csv")
    assert (features["label"].to_numpy() == labels.labels_for(features).to_numpy()).all()
    assert (features["label"] != "").sum() > 100


def test_the_writer_saves_labels_and_predictions_into_the_project(project):
    (data, kwargs, _) = next(layer for layer in project_layers(project) if layer[1]["name"] == CELLS_LAYER)
    features = kwargs["features"].copy()
    features.loc[features.index[:5], "label"] = "my class"
    features["head_score"] = np.linspace(-1, 1, len(features))
    features["head_class"] = np.where(features["head_score"] >= 0, "metaphase", "interphase")
    features["sparse_score"] = -features["head_score"]  # one scheme's own predictions, kept beside the latest
    features["sparse_class"] = np.where(features["sparse_score"] >= 0, "metaphase", "interphase")
    written = write_cells(str(project), data, {"features": features})
    assert written
    assert LabelStore(project / "labels.csv").counts()["my class"] == 5
    objects = load_crop_dataset(project).objects
    assert (objects["head_class"].astype(str).to_numpy() == features["head_class"].to_numpy()).all()
    assert (objects["sparse_class"].astype(str).to_numpy() == features["sparse_class"].to_numpy()).all()
    with pytest.raises(ValueError, match="not a napari-cellstate project"):
        write_cells(str(project.parent), data, {"features": features})


def test_the_chosen_project_is_remembered(tmp_path):
    state = ProjectState()
    state.path = tmp_path / "mine"
    assert settings_path().is_relative_to(tmp_path)  # tests never touch the user's settings
    assert ProjectState().path == str(tmp_path / "mine")
    state.path = ""
    with pytest.raises(ValueError, match="Project"):
        state.require()


def test_each_schemes_predictions_come_back(project):
    """Two heads applied one after the other: reopening the project shows both schemes' classes, not only the last."""
    import torch

    from napari_cellstate.core.config import HeadConfig
    from napari_cellstate.core.heads import MLPHead
    from napari_cellstate.core.progress import run_to_completion
    from napari_cellstate.gui._apply import iter_apply_and_keep

    torch.manual_seed(0)
    applied = {}
    for scheme, sign in (("dense", 1.0), ("sparse", -1.0)):
        head = MLPHead(HeadConfig(n_inputs=32, hidden=(4,)))
        with torch.no_grad():  # opposite signs: the two schemes disagree on every cell
            head.layers[-1].weight.mul_(0.0)
            head.layers[-1].bias.fill_(sign)
        applied[scheme] = run_to_completion(iter_apply_and_keep(project, head, scheme=scheme, card={"scheme": scheme}))

    layers = {kwargs["name"]: kwargs for _, kwargs, _ in project_layers(project)}
    features = layers[CELLS_LAYER]["features"]
    assert set(features["dense_class"].astype(str)) == {"metaphase"}
    assert set(features["sparse_class"].astype(str)) == {"interphase"}
    assert (features["head_class"].astype(str) == "interphase").all()  # the fill: the last head applied
    np.testing.assert_allclose(features["dense_score"], 1.0)
