"""The whole mission through the CellState panel in a real viewer; then the project comes back from its folder.

Sample → project → labels → latents → a sparse head's classes on every cell → an attacked cell's perturbation map.
"""

import numpy as np
import pandas as pd
import pytest

from napari_cellstate.core.config import SimulationConfig
from napari_cellstate.gui._layers import CELLS_LAYER, LABELS_LAYER, TRACKS_LAYER
from napari_cellstate.gui._panel import CellStatePanel
from napari_cellstate.gui._tour import run_mission

pytestmark = [pytest.mark.gui, pytest.mark.slow]

SMALL = SimulationConfig(shape_yx=(256, 256), n_frames=24, n_cells=20, n_divisions=6, seed=3)


def test_the_whole_mission_through_the_panel_then_the_project_comes_back(make_napari_viewer, qtbot, tmp_path):
    folder = tmp_path / "project"
    viewer = make_napari_viewer()
    panel = run_mission(viewer, folder, sample=SMALL)

    cells = viewer.layers[CELLS_LAYER]
    assert panel.step("label").cells.value == CELLS_LAYER  # never the sample's true states: they have no cell ids
    assert viewer.layers.selection.active is cells  # new image layers never steal the cells layer
    assert not viewer.layers["true states"].visible  # one ring per cell
    classes = cells.features["head_class"].astype(str)
    truth = cells.features["label"].astype(str)
    two_states = truth.isin(["interphase", "metaphase"]).to_numpy()
    assert (classes[two_states] == truth[two_states]).mean() > 0.9, pd.crosstab(classes, truth)
    assert set(classes) == {"interphase", "metaphase"}
    assert (cells.face_color[classes.to_numpy() == "metaphase", 3] > 0).all()
    attack_layers = [layer for layer in viewer.layers if layer.name.startswith("attack: ")]
    assert len(attack_layers) == 1
    assert list((folder / "attacks").glob("*/attack.json"))
    assert list((folder / "heads").glob("scheme3_sparse_seed0.safetensors")), "heads are saved without a click"
    panel.close()

    again = make_napari_viewer()
    assert again.open(str(folder), plugin="napari-cellstate") == []  # at once: the panel reads it in a worker
    (reopened,) = again.window._qt_window.findChildren(CellStatePanel)
    qtbot.waitUntil(lambda: reopened.jobs.worker is None, timeout=120_000)
    assert reopened.jobs.last_error is None, reopened.jobs.status.text()
    names = {layer.name for layer in again.layers}
    assert {"synthetic H2B", LABELS_LAYER, TRACKS_LAYER, CELLS_LAYER} <= names
    restored = again.layers[CELLS_LAYER].features
    assert {"label", "head_class", "head_score", "sparse_class", "sparse_score", "z0", "z31"} <= set(restored.columns)
    assert (restored["label"].astype(str).to_numpy() == truth.to_numpy()).all()
    assert (restored["head_class"].astype(str).to_numpy() == classes.to_numpy()).all()
    assert [layer.name for layer in again.layers if layer.name.startswith("attack: ")] == [attack_layers[0].name]
    np.testing.assert_allclose(again.layers[attack_layers[0].name].data, attack_layers[0].data)
    from napari_cellstate.gui._project import project_state

    assert project_state(again).path == str(folder)  # the panel opens on the project
