"""Attacks & audit widget: perturbation maps lie over their cells on the movie, centred on 0."""

import numpy as np
import pandas as pd
import pytest

from napari_cellstate.core.attacks.attack import AttackResult
from napari_cellstate.gui._layers import CELLS_LAYER, cells_layer
from napari_cellstate.gui._widgets.attack_audit import AttackAuditWidget, drawn_attack

pytestmark = pytest.mark.gui

PIXEL_UM = 0.33


def _result(size: int) -> AttackResult:
    """Two attacked cells; the perturbation of each is a dot at the crop's centre pixel plus a weaker ring."""
    cells = pd.DataFrame({"object_id": [7, 9], "t": [2, 5], "y": [60.4, 130.0], "x": [81.0, 99.6]})
    maps = np.zeros((2, size, size), np.float32)
    maps[:, size // 2, size // 2] = 0.5
    maps[:, 2, :] = -0.2
    crops = np.zeros((2, size, size), np.float32)
    return AttackResult(
        scheme=3,
        model_name="sparse_head",
        space="image",
        method="fgsm",
        frozen=[],
        cells=cells.assign(epsilon=0.5, score_before=[1.0, -2.0], score_after=[-0.5, -1.0], flipped=[True, False]),
        crops=crops,
        perturbation=maps,
        perturbed=crops + maps,
        reconstruction=crops,
    )


@pytest.mark.parametrize(("size", "window"), [(64, 64), (32, 64)])
def test_perturbation_layer_sits_on_the_cell(make_napari_viewer, size, window):
    viewer = make_napari_viewer()
    objects = pd.DataFrame({"object_id": [7, 9], "track_id": [1, 2], "t": [2, 5], "y": [60.4, 130.0],
                            "x": [81.0, 99.6], "label": ["", ""]})  # fmt: skip
    data, kwargs, _ = cells_layer(objects, PIXEL_UM)
    viewer.add_points(data, **kwargs)
    widget = AttackAuditWidget(viewer)
    result = _result(size)
    widget.show_attack(drawn_attack(result, {"size_px": size, "window_px": window, "source_pixel_size_um": PIXEL_UM}))

    for row, cell in result.cells.iterrows():
        layer = viewer.layers[f"attack: {result.title(row)}"]
        assert layer.data.shape == (1, size, size)
        centre_world = layer.data_to_world((0, size // 2, size // 2))
        assert centre_world[0] == cell["t"]  # shown at the cell's frame only
        step = window / size
        assert np.allclose(layer.scale[1:], step * PIXEL_UM)
        # the crop's centre pixel covers the cell's centroid (within half a crop pixel)
        assert np.all(
            np.abs(np.array(centre_world[1:]) - np.array([cell["y"], cell["x"]]) * PIXEL_UM) <= step * PIXEL_UM
        )
        low, high = layer.contrast_limits
        assert low == -high
        assert high == pytest.approx(0.5)
        assert layer.colormap.name == "bwr"
        middle = layer.colormap.map(np.array([0.5]))[0]
        assert np.allclose(middle[:3], 1.0, atol=0.02)  # 0 is white: unchanged pixels do not hide the movie
    assert viewer.layers[-1].name == CELLS_LAYER
    assert viewer.layers[CELLS_LAYER].visible
    assert widget.gallery.figure.axes  # the Figs 8-10 gallery was drawn
    assert widget.gallery.content.pixmap_full.width() > 100


def test_attack_without_a_head_or_cells_says_what_to_do(make_napari_viewer, qtbot, tmp_path):
    from napari_cellstate.core.config import HeadConfig
    from napari_cellstate.core.heads import MLPHead, save_head

    widget = AttackAuditWidget(make_napari_viewer())
    widget.project.value = tmp_path
    assert widget.run_attack() is None
    assert "saved head" in widget.attack_panel.status.text()
    save_head(tmp_path / "heads" / "toy", MLPHead(HeadConfig(n_inputs=4, hidden=(4,))), {"scheme": "dense"})
    widget.refresh()
    qtbot.waitUntil(lambda: not widget.lister.busy, timeout=30_000)
    assert widget.head.value == "toy"  # the project's saved heads are offered
    assert widget.run_attack() is None
    assert "select cells" in widget.attack_panel.status.text()


def test_saved_formulas_are_offered_and_pgd_requests_are_built(make_napari_viewer, qtbot, tmp_path):
    from napari_cellstate.core.symbolic.expression import SymbolicExpression, symbol
    from napari_cellstate.core.symbolic.files import save_expression

    widget = AttackAuditWidget(make_napari_viewer())
    widget.project.value = tmp_path
    save_expression(tmp_path / "heads" / "symbolic", SymbolicExpression(symbol("z11") - 0.5), ["z0", "z11"])
    widget.refresh()
    qtbot.waitUntil(lambda: not widget.lister.busy, timeout=30_000)
    assert widget.head.value == "symbolic"  # a formula saved by the Expression step can be attacked (Scheme 4)
    widget.method.value, widget.minimal.value = "pgd", True
    widget.cells.value = widget.cells.choices[-1]  # all cells
    request = widget.attack_request()
    assert (request["method"], request["epsilon"]) == ("minimal_pgd", None)
