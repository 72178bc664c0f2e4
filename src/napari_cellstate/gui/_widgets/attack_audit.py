"""Attacks & audit: attack chosen cells with one head, see the perturbations on the movie, audit every head.

A thin widget: it gathers the project, head, cells, space, ε (or the minimal search) and frozen latents, runs
:func:`~napari_cellstate.core.attacks.project.iter_attack_project` or
:func:`~napari_cellstate.core.attacks.project.iter_audit_heads` in a worker with progress and Cancel, and turns
the results into layers (:mod:`napari_cellstate.gui._attack_layers`), a gallery, the audit table and the flip
rate plot. The cells layer (the per-cell class overlay) is kept on top so it stays visible while attacking.
"""

from __future__ import annotations

from pathlib import Path

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from qtpy.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ...core.attacks.audit import AUDIT_COLUMNS
from ...core.attacks.figures import flip_rate_figure, gallery_figure
from .._attack_layers import perturbation_layer
from .._layers import CELLS_LAYER
from .._workers import RunPanel

SELECTIONS = ("cells selected on the movie", "cells classified metaphase", "cells classified interphase", "all cells")
MAX_LAYERS = 20  # perturbation layers added per attack; the gallery and saved results hold every cell


class AttackAuditWidget(QWidget):
    """Attack cells and audit heads (Schemes 1-4) of a project."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = LineEdit(label="project folder")
        self.head = LineEdit(label="head (.json)")
        self.heads = LineEdit(label="heads folder (audit)")
        self.cells = ComboBox(label="attack", choices=SELECTIONS)
        self.space = ComboBox(label="space", choices=["image", "latent"], value="image")
        self.epsilon = FloatSpinBox(label="ε", value=0.5, min=0.01, max=4.0, step=0.05)
        self.minimal = CheckBox(text="minimal ε that flips each cell")
        self.freeze = LineEdit(label="frozen latents", value="")
        self.freeze.tooltip = "latent attacks: latents held fixed, e.g. z3 z17 z21 z29 (the paper's central ones)"
        self.space.changed.connect(lambda space: setattr(self.epsilon, "value", 0.5 if space == "image" else 1.0))
        form = Container(widgets=[self.project, self.head, self.cells, self.space, self.epsilon, self.minimal,
                                  self.freeze, self.heads])  # fmt: skip
        self.attack_panel = RunPanel("Attack")
        self.audit_panel = RunPanel("Audit heads")
        self.table = QTableWidget(0, len(AUDIT_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(AUDIT_COLUMNS))
        self.canvas = FigureCanvasQTAgg(flip_rate_figure_placeholder())
        self.gallery = FigureCanvasQTAgg(flip_rate_figure_placeholder())
        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.attack_panel)
        layout.addWidget(self.gallery)
        layout.addWidget(QLabel("Domain audit (test cells)"))
        layout.addWidget(self.audit_panel)
        layout.addWidget(self.table)
        layout.addWidget(self.canvas)
        self.attack_panel.run_button.clicked.connect(self.run_attack)
        self.audit_panel.run_button.clicked.connect(self.run_audit)
        self.last_result = None

    def _selection(self) -> dict:
        choice = self.cells.value
        if choice == SELECTIONS[0]:
            layer = self.viewer.layers[CELLS_LAYER] if CELLS_LAYER in self.viewer.layers else None  # noqa: SIM401
            chosen = sorted(layer.selected_data) if layer is not None else []
            if not chosen:
                raise ValueError(
                    "No cell is selected: select cells on the 'cellstate cells' layer (or attack a class)."
                )
            return {"cell_ids": layer.features["object_id"].iloc[chosen].astype(int).tolist()}
        if choice == SELECTIONS[3]:
            return {}
        return {"predicted_class": choice.split()[-1]}

    def attack_request(self) -> dict:
        """The core call's arguments, from the fields."""
        from ..._cli_attacks import _latent_indices

        return {
            "project": Path(self.project.value),
            "head": Path(self.head.value),
            **self._selection(),
            "space": self.space.value,
            "epsilon": None if self.minimal.value else float(self.epsilon.value),
            "method": "minimal" if self.minimal.value else "fgsm",
            "frozen": _latent_indices(self.freeze.value.replace(",", " ").split()),
        }

    def run_attack(self):
        """Attack the chosen cells in a worker; layers appear when it is done."""
        from ...core.attacks.project import iter_attack_project

        try:
            request = self.attack_request()
        except ValueError as err:
            self.attack_panel._show_error(err)
            return None
        project, head = request.pop("project"), request.pop("head")
        return self.attack_panel.start(iter_attack_project, self.show_attack, project, head, **request)

    def show_attack(self, returned) -> None:
        """Perturbation layers over the attacked cells, the gallery, the cells layer kept on top."""
        result, geometry = returned
        self.last_result = result
        for row in range(min(len(result.cells), MAX_LAYERS)):
            data, kwargs, _ = perturbation_layer(result, row, geometry)
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers.remove(kwargs["name"])
            self.viewer.add_image(data, **kwargs)
        if CELLS_LAYER in self.viewer.layers:
            cells = self.viewer.layers[CELLS_LAYER]
            self.viewer.layers.move(self.viewer.layers.index(cells), len(self.viewer.layers))
            cells.visible = True
        self.gallery.figure = gallery_figure(result)
        self.gallery.figure.set_canvas(self.gallery)
        self.gallery.draw_idle()
        self.attack_panel.status.setText(
            f"flip rate {result.flip_rate:.2f} over {len(result.cells)} cells (Scheme {result.scheme}, {result.space})"
        )

    def run_audit(self):
        """Audit every head of the heads folder in a worker."""
        from ..._cli_attacks import find_heads
        from ...core.attacks.project import iter_audit_heads

        try:
            heads = find_heads(Path(self.heads.value))
        except ValueError as err:
            self.audit_panel._show_error(err)
            return None
        return self.audit_panel.start(iter_audit_heads, self.show_audit, Path(self.project.value), heads)

    def show_audit(self, returned) -> None:
        """Fill the audit table (one row per head) and plot flip rate against ε."""
        rows, curves, _ = returned
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(AUDIT_COLUMNS):
                value = row.get(key)
                text = (
                    "—"
                    if value is None
                    else f"{value:.3f}"
                    if isinstance(value, float)
                    else " / ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in value)
                    if isinstance(value, list)
                    else str(value)
                )
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.canvas.figure = flip_rate_figure(curves)
        self.canvas.figure.set_canvas(self.canvas)
        self.canvas.draw_idle()


def flip_rate_figure_placeholder():
    """An empty figure until there is something to show."""
    from matplotlib.figure import Figure

    return Figure(figsize=(5, 2.5), layout="constrained")
