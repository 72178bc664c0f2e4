import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from napari_cellstate.core.heads.data import project_head_data
from napari_cellstate.core.symbolic.files import load_expression
from napari_cellstate.gui._layers import CELLS_LAYER
from napari_cellstate.gui._widgets.discover_expression import DiscoverExpressionWidget

pytestmark = pytest.mark.gui


def _wait(panel, qtbot, timeout_s: float = 120) -> None:
    qtbot.waitUntil(lambda: panel.worker is None, timeout=int(timeout_s * 1000))


def test_discover_pick_save_and_apply_on_a_project(make_napari_viewer, qtbot, labelled_project):
    viewer = make_napari_viewer()
    widget = DiscoverExpressionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Discover expression")
    widget.project.value = str(labelled_project)

    widget.prefill_inputs()  # no sparse head in this project: says what to do
    _wait(widget.panel, qtbot)
    assert "No sparse head" in widget.panel.status.text()
    widget.discover()  # neither head nor inputs: the core's message
    _wait(widget.panel, qtbot)
    assert "No inputs chosen" in widget.panel.status.text()
    assert widget.result is None
    assert not widget.save_button.isEnabled()

    data = project_head_data(labelled_project)
    train = data.rows("train")
    # the three latents an L1 logistic regression leans on, as a sparse head would keep them
    scaled = StandardScaler().fit_transform(data.latents[train])
    lasso = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=0.1, class_weight="balanced")
    weights = np.abs(lasso.fit(scaled, data.labels[train]).coef_[0])
    widget.inputs.value = " ".join(f"z{j}" for j in np.argsort(weights)[::-1][:3])
    widget.budget.value = 6
    widget.discover()
    _wait(widget.panel, qtbot)
    assert widget.panel.last_error is None, widget.panel.status.text()
    assert widget.canvas is not None
    assert "f = " in widget.formula.text()
    assert widget.result.point.test_accuracy >= 0.85

    widget.choose_point(0)  # the user picks the smallest formula of the front
    assert widget.result.chosen == 0
    assert f"size {widget.result.front[0].size} nodes" in widget.formula.text()

    saved = widget.save()
    expression, card = load_expression(saved)
    assert expression.text == widget.result.expression.text
    assert len(card["columns"]) == data.n_latents

    widget.apply()
    _wait(widget.apply_panel, qtbot)
    assert widget.apply_panel.last_error is None, widget.apply_panel.status.text()
    assert "classified metaphase by the formula" in widget.apply_panel.status.text()
    assert "head_class" in viewer.layers[CELLS_LAYER].features


def test_a_bad_operator_is_refused_before_searching(make_napari_viewer, qtbot, tmp_path):
    widget = DiscoverExpressionWidget(make_napari_viewer())
    widget.project.value = tmp_path
    widget.operators.value = "+ erf"
    widget.discover()
    _wait(widget.panel, qtbot)
    assert "Unknown operators" in widget.panel.status.text()
    assert widget.result is None
