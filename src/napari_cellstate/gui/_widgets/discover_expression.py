"""Discover expression: a short formula for cell state over the latents the sparse head kept (Scheme 4).

The widget gathers settings and shows results; the search is
:func:`~napari_cellstate.core.symbolic.search.iter_discover_expression` run in a napari worker
(:class:`~napari_cellstate.gui._workers.RunPanel`, with progress and Cancel), and *Apply to movie* runs
:func:`~napari_cellstate.core.heads.apply.iter_apply_head` with the formula as a torch module.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import napari
from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from qtpy.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from ...core.progress import Progress
from ...core.symbolic.operators import DEFAULT_OPERATORS
from .._apply import iter_apply_and_keep, scheme_columns
from .._layers import CELLS_LAYER, cells_layer, colour_cells_by_class
from .._project import ProjectField, project_state
from .._workers import RunPanel

if TYPE_CHECKING:  # matplotlib is loaded by the search's worker, with the Pareto front's figure
    import pandas as pd
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

SAVED_NAME = "symbolic"


def _iter_sparse_head_inputs(project: str, head: str) -> Generator[Progress, None, str | None]:
    """The latents the project's sparse head (or the head at ``head``) kept, as "z3 z17 ..."; None without one."""
    from ...core.heads import load_head
    from ...core.objects import latent_name
    from ...core.symbolic.data import default_head_path

    yield Progress(0, 1, "reading the sparse head ...")
    path = head or default_head_path(project)
    if not path:
        return None
    return " ".join(latent_name(j) for j in load_head(path)[0].used_inputs())


def iter_discover_for_project(
    project: str, head: str | None, inputs: list[str] | None, target: str, fields: dict
) -> Generator[Progress, None, tuple]:
    """Check the settings, read the project's labelled cells, then search; returns ``(result, inputs, front)``.

    All off the GUI thread (the search's modules load torch and sympy). ``fields`` are
    :class:`~napari_cellstate.core.symbolic.search.SearchSettings`' arguments; a bad one raises its ValueError.
    ``front`` is the Pareto front's figure, made here too (with matplotlib's Qt canvas module loaded for it).
    """
    import matplotlib.backends.backend_qtagg  # noqa: F401  (loaded here, not on the GUI thread)

    from ...core.symbolic.data import inputs_from_project
    from ...core.symbolic.plots import pareto_figure
    from ...core.symbolic.search import SearchSettings, iter_discover_for

    settings = SearchSettings(**fields).checked()
    yield Progress(0, settings.restarts, "reading the labelled cells ...")
    chosen = inputs_from_project(project, head=head or None, inputs=inputs or None, target=target)
    yield Progress(0, settings.restarts, f"searching over {', '.join(chosen.names)} ...")
    result = yield from iter_discover_for(chosen, settings)
    return result, chosen, pareto_figure(result)


class DiscoverExpressionWidget(QWidget):
    """Search a formula, pick a point of its Pareto front, save it as the Scheme 4 model, apply it to the movie."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = ProjectField(project_state(napari_viewer))  # the panel's shared project
        self.head = LineEdit(label="sparse head", tooltip="empty: the project's heads/sparse_head")
        self.inputs = LineEdit(label="inputs", tooltip="e.g. z3 z17 z21 z29; empty: the sparse head's latents")
        self.target = ComboBox(label="target", choices=["label", "score"], tooltip="labels, or the head's score")
        self.operators = LineEdit(label="operators", value=" ".join(DEFAULT_OPERATORS))
        self.max_size = SpinBox(label="max size (nodes)", value=25, min=3, max=200)
        self.budget = FloatSpinBox(label="time budget (s)", value=60.0, min=1.0, max=36000.0)
        self.seed = SpinBox(label="seed", value=0, min=0, max=10**6)
        self.prefill = QPushButton("Inputs from the sparse head")
        self.prefill.clicked.connect(self.prefill_inputs)
        self.panel = RunPanel("Discover")
        self.panel.run_button.clicked.connect(self.discover)
        self.formula = QLabel("")
        self.formula.setWordWrap(True)
        self.save_button = QPushButton("Save as the Scheme 4 model")
        self.save_button.clicked.connect(self.save)
        self.apply_panel = RunPanel("Apply to movie")
        self.apply_panel.run_button.clicked.connect(self.apply)
        self.canvas: FigureCanvasQTAgg | None = None
        self.result = None
        self.chosen_inputs = None
        layout = QVBoxLayout(self)
        layout.addWidget(self.project)
        settings = Container(
            widgets=[
                self.head,
                self.inputs,
                self.target,
                self.operators,
                self.max_size,
                self.budget,
                self.seed,
            ]
        )
        for widget in (settings.native, self.prefill, self.panel):
            layout.addWidget(widget)
        self.plot_area = QVBoxLayout()
        layout.addLayout(self.plot_area)
        for widget in (self.formula, self.save_button, self.apply_panel):
            layout.addWidget(widget)
        self._enable_result_actions()

    def closeEvent(self, event) -> None:
        """Stop the search and the scoring when the widget closes: a worker must not outlive its widget."""
        for panel in (self.panel, self.apply_panel):
            panel.cancel()
        super().closeEvent(event)

    def _enable_result_actions(self) -> None:
        self.save_button.setEnabled(self.result is not None)
        self.apply_panel.run_button.setEnabled(self.result is not None)

    def settings(self) -> dict:
        """The search settings from the fields: the arguments of ``core.symbolic.search.SearchSettings``."""
        return {
            "operators": tuple(self.operators.value.split()),
            "max_length": self.max_size.value,
            "time_budget_s": self.budget.value,
            "seed": self.seed.value,
        }

    def prefill_inputs(self) -> None:
        """Fill the inputs with the latents the project's sparse head kept (the head is read in a worker)."""
        self.panel.start(_iter_sparse_head_inputs, self._prefilled, self.project.value, self.head.value)

    def _prefilled(self, inputs: str | None) -> None:
        if inputs is None:
            self.panel.fail("No sparse head in this project: train one (Train heads) or type inputs.")
        else:
            self.inputs.value = inputs
            self.panel.done(f"inputs from the sparse head: {inputs}")

    def discover(self) -> None:
        """Search in a worker (settings checked there first); the front and the chosen formula appear at the end."""
        self.panel.start(
            iter_discover_for_project,
            self._found,
            self.project.value,
            self.head.value,
            self.inputs.value.split(),
            self.target.value,
            self.settings(),
        )

    def _found(self, found: tuple) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

        self.result, self.chosen_inputs, front = found
        if self.canvas is not None:
            self.plot_area.removeWidget(self.canvas)
            self.canvas.deleteLater()
        self.canvas = FigureCanvasQTAgg(front)
        self.canvas.setMinimumHeight(300)
        self.canvas.mpl_connect("button_press_event", self._clicked)
        self.plot_area.addWidget(self.canvas)
        self.choose_point(self.result.chosen)
        self._enable_result_actions()

    def _clicked(self, event) -> None:
        if event.xdata is None or self.result is None:
            return
        sizes = [p.size for p in self.result.front]
        self.choose_point(min(range(len(sizes)), key=lambda k: abs(sizes[k] - event.xdata)))

    def choose_point(self, index: int) -> None:
        """Make point ``index`` of the front the chosen formula and show it."""
        self.result = self.result.choose(index)
        point = self.result.point
        self.formula.setText(
            f"f = {point.expression.readable()}   (f ≥ 0: metaphase)\nsize {point.size} nodes · test accuracy "
            f"{point.test_accuracy:.1%} · held-out (folds) {point.validation_accuracy:.1%} · logistic regression "
            f"on the same inputs {self.result.baseline_test_accuracy:.1%}"
        )

    def save(self) -> Path | None:
        """Save the chosen formula as ``<project>/heads/symbolic`` (.txt + .json)."""
        from ...core.symbolic.files import save_expression

        if self.result is None:
            return None
        summary = self.result.summary()
        path = Path(self.project.value) / "heads" / SAVED_NAME
        saved = save_expression(path, self.result.expression, self.chosen_inputs.columns, summary)
        self.apply_panel.status.setText(f"saved {saved}")
        return saved

    def apply(self) -> None:
        """Score every cell of the project with the chosen formula, in a worker; then colour the cells."""
        if self.result is None:
            self.apply_panel.status.setText("Discover a formula first.")
            return
        module = self.result.expression.torch_module(self.chosen_inputs.columns)
        self.apply_panel.start(iter_apply_and_keep, self._applied, self.project.value, module, scheme=SAVED_NAME)

    def _applied(self, objects: pd.DataFrame) -> None:
        from ...core.heads.apply import CLASS_COLUMN, SCORE_COLUMN
        from ...core.project import load_crop_dataset

        if CELLS_LAYER in self.viewer.layers:
            layer = self.viewer.layers[CELLS_LAYER]
        else:
            sources = load_crop_dataset(self.project.value).metadata.get("sources") or [{}]
            data, kwargs, _ = cells_layer(objects, float(sources[0].get("pixel_size_um") or 1.0))
            layer = self.viewer.add_points(data, **kwargs)
        try:
            colour_cells_by_class(layer, objects, CLASS_COLUMN, columns=(SCORE_COLUMN, *scheme_columns(SAVED_NAME)))
        except ValueError as err:
            self.apply_panel.status.setText(str(err))
            return
        n_meta = int((objects[CLASS_COLUMN].astype(str) == "metaphase").sum())
        self.apply_panel.status.setText(f"{n_meta} of {len(objects)} cells classified metaphase by the formula.")
