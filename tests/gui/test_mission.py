"""The whole mission through the CellState panel, in a real viewer: sample → project → labels → latents → a
sparse head's classes on every cell → an attacked cell's perturbation map; then the project comes back in a
fresh viewer from its folder alone."""

import numpy as np
import pandas as pd
import pytest

from napari_cellstate.core.config import SimulationConfig
from napari_cellstate.gui._layers import CELLS_LAYER, LABELS_LAYER, TRACKS_LAYER
from napari_cellstate.gui._panel import CellStatePanel

pytestmark = [pytest.mark.gui, pytest.mark.slow]

SMALL = SimulationConfig(shape_yx=(256, 256), n_frames=24, n_cells=20, n_divisions=6, seed=3)


def _wait(panel, qtbot, timeout_s: float = 180) -> None:
    qtbot.waitUntil(lambda: panel.worker is None, timeout=int(timeout_s * 1000))
    assert panel.last_error is None, panel.status.text()


def run_mission(viewer, qtbot, folder, epochs: int = 0, shoot=None):
    """Every step of the mission through the panel's actions; ``shoot(step)`` is called after each step."""
    shoot = shoot or (lambda _step: None)
    panel = CellStatePanel(viewer)
    viewer.window.add_dock_widget(panel, name="CellState")
    panel.open_sample(SMALL)
    _wait(panel.jobs, qtbot)
    shoot("sample")

    panel.project.value = folder
    track = panel.step("track")
    track.labels.value = "true nuclei"  # the simulator's nuclei: no segmentation, a fast test
    track.run()
    _wait(track.panel, qtbot)
    shoot("track")

    panel.show_step("label")
    label = panel.step("label")
    assert label.cells.value == CELLS_LAYER  # never the sample's true states: they have no cell ids
    assert label.import_truth("true states", confirm=lambda n: True) > 0
    shoot("label")

    panel.show_step("latents")
    latents = panel.step("latents")
    latents.encode()
    _wait(latents.panel, qtbot)
    viewer.layers[CELLS_LAYER].selected_data = {3}
    shoot("latents")

    panel.show_step("heads")
    heads = panel.step("heads")
    for scheme, box in heads.schemes.items():
        box.value = scheme.value == "sparse"
    heads.seeds.value = 1
    heads.epochs.setValue(epochs)
    heads.train()
    _wait(heads.panel, qtbot)
    qtbot.waitUntil(lambda: heads.figure_worker is None, timeout=60_000)
    heads.apply()
    _wait(heads.apply_panel, qtbot)
    shoot("heads")

    panel.show_step("attacks")
    attacks = panel.step("attacks")
    cells = viewer.layers[CELLS_LAYER]
    metaphase = np.flatnonzero(cells.features["head_class"].astype(str).to_numpy() == "metaphase")
    cells.selected_data = {int(metaphase[0])}
    viewer.dims.set_point(0, float(cells.data[metaphase[0], 0]))
    attacks.refresh()
    assert attacks.head.value.startswith("scheme3_sparse")
    attacks.run_attack()
    _wait(attacks.attack_panel, qtbot)
    shoot("attacks")
    return panel


def test_the_whole_mission_through_the_panel_then_the_project_comes_back(make_napari_viewer, qtbot, tmp_path):
    folder = tmp_path / "project"
    viewer = make_napari_viewer()
    panel = run_mission(viewer, qtbot, folder)

    cells = viewer.layers[CELLS_LAYER]
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
    assert (folder / "attacks").is_dir() and list((folder / "attacks").glob("*/attack.json"))
    assert list((folder / "heads").glob("scheme3_sparse_seed0.safetensors")), "heads are saved without a click"
    panel.close()

    again = make_napari_viewer()
    again.open(str(folder), plugin="napari-cellstate")
    names = {layer.name for layer in again.layers}
    assert {"synthetic H2B", LABELS_LAYER, TRACKS_LAYER, CELLS_LAYER} <= names
    restored = again.layers[CELLS_LAYER].features
    assert {"label", "head_class", "head_score", "z0", "z31"} <= set(restored.columns)
    assert (restored["label"].astype(str).to_numpy() == truth.to_numpy()).all()
    assert (restored["head_class"].astype(str).to_numpy() == classes.to_numpy()).all()
    assert [layer.name for layer in again.layers if layer.name.startswith("attack: ")] == [attack_layers[0].name]
    np.testing.assert_allclose(again.layers[attack_layers[0].name].data, attack_layers[0].data)
    from napari_cellstate.gui._project import project_state

    assert project_state(again).path == str(folder)  # the panel opens on the project
