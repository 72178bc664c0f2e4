"""The CellState panel: one dock whose tabs follow the data (Track · Label · Latents · Heads · Expression · Attacks).

Every step works on one project, chosen once at the top (and remembered, see :mod:`._project`). The steps are
the step widgets of :mod:`._widgets`, each in a scroll area so the dock fits a laptop screen whatever it shows;
their own project rows are hidden, since the panel's row stands for all of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Generator

import napari
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ._layers import LEGEND
from ._project import ProjectField, project_state
from ._widgets.attack_audit import AttackAuditWidget
from ._widgets.label_cells import LabelCellsWidget
from ._widgets.latent_explorer import LatentExplorerWidget
from ._widgets.track_crop import TrackCropWidget, show_project_layers
from ._widgets.train_heads import TrainHeadsWidget
from ._widgets.train_vae import TrainVAEWidget
from ._workers import RunPanel

__all__ = ["CellStatePanel"]

#: The Expression step (Scheme 4) is shown when its widget is installed.
EXPRESSION_WIDGET = ("napari_cellstate.gui._widgets.discover_expression", "DiscoverExpressionWidget")
PANEL_WIDTH_PX = 420


class CellStatePanel(QWidget):
    """The whole CellState flow in one dock, on one project."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.state = project_state(napari_viewer)
        self.project = ProjectField(self.state)
        self.jobs = RunPanel("Open project")
        self.jobs.run_button.setToolTip("Bring the project's movie, cells, tracks and attack maps back as layers.")
        self.sample_button = QPushButton("Sample movie")
        self.sample_button.setToolTip("Simulate the synthetic H2B time-lapse (a few seconds, in the background).")
        self.jobs.layout().itemAt(0).layout().addWidget(self.sample_button)
        legend = QLabel(LEGEND)
        legend.setWordWrap(True)
        legend.setStyleSheet("color: #9a9a9a")

        self.steps = {
            "track": TrackCropWidget(napari_viewer),
            "label": LabelCellsWidget(napari_viewer),
            "latents": LatentExplorerWidget(napari_viewer),
            "vae": TrainVAEWidget(napari_viewer),
            "heads": TrainHeadsWidget(napari_viewer),
            "expression": _expression_widget(napari_viewer),
            "attacks": AttackAuditWidget(napari_viewer),
        }
        for step in self.steps.values():
            if isinstance(getattr(step, "project", None), ProjectField):
                step.project.hide()
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        self.tabs.setDocumentMode(True)
        for title, page in (
            ("Track", self.steps["track"]),
            ("Label", self.steps["label"]),
            ("Latents", _stacked(self.steps["latents"], "Train or fine-tune the β-TCVAE", self.steps["vae"])),
            ("Heads", self.steps["heads"]),
            ("Expression", self.steps["expression"]),
            ("Attacks", self.steps["attacks"]),
        ):
            self.tabs.addTab(_scrolled(page), title)

        top = QVBoxLayout()
        top.setContentsMargins(6, 6, 6, 0)
        top.addWidget(self.project)
        top.addWidget(self.jobs)
        top.addWidget(legend)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        self.jobs.run_button.clicked.connect(self.open_project)
        self.sample_button.clicked.connect(lambda: self.open_sample())
        self.setMinimumWidth(PANEL_WIDTH_PX - 60)

    def sizeHint(self) -> QSize:
        return QSize(PANEL_WIDTH_PX, 600)

    def step(self, name: str) -> QWidget:
        """A step's widget: "track", "label", "latents", "vae", "heads", "expression", "attacks"."""
        return self.steps[name]

    def show_step(self, name: str) -> None:
        """Bring a step's tab to the front."""
        index = {"track": 0, "label": 1, "latents": 2, "vae": 2, "heads": 3, "expression": 4, "attacks": 5}[name]
        self.tabs.setCurrentIndex(index)

    def open_sample(self, cfg=None) -> None:
        """Simulate the sample movie (``cfg``: a SimulationConfig, default the standard one) in a worker."""
        from ._sample_data import iter_sample_layers

        self.jobs.start(iter_sample_layers, self._add_sample, cfg)

    def _add_sample(self, layers) -> Generator[None, None, None]:
        for data, kwargs, kind in layers:  # a layer per turn of the event loop: napari draws between them
            if kwargs["name"] not in self.viewer.layers:
                getattr(self.viewer, f"add_{kind}")(data, **kwargs)
                yield
        self.viewer.reset_view()
        self.jobs.done("sample movie ready: choose a project folder, then Track && crop")

    def open_project(self) -> None:
        """Read the project's layers in a worker and show them (replacing layers of the same names)."""
        from ._reader import iter_project_layers

        try:
            folder = self.state.require()
        except ValueError as err:
            self.jobs.fail(str(err))
            return
        self.jobs.start(iter_project_layers, self._add_project_layers, folder)

    def _add_project_layers(self, layers) -> Generator[None, None, None]:
        yield from show_project_layers(self.viewer, layers)
        self.viewer.reset_view()
        self.jobs.done(f"opened {self.state.path}")

    def closeEvent(self, event) -> None:
        for step in self.steps.values():
            step.close()
        self.jobs.cancel()
        super().closeEvent(event)


def _expression_widget(viewer) -> QWidget:
    """The Expression step's widget when installed, else a note saying it is coming."""
    module, name = EXPRESSION_WIDGET
    try:
        return getattr(importlib.import_module(module), name)(viewer)
    except (ImportError, AttributeError):
        note = QLabel("Scheme 4 (symbolic expressions over a sparse head's latents) is not installed in this version.")
        note.setWordWrap(True)
        note.setAlignment(Qt.AlignmentFlag.AlignTop)
        return note


def _stacked(first: QWidget, title: str, second: QWidget) -> QWidget:
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(first)
    heading = QLabel(f"<b>{title}</b>")
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    layout.addWidget(line)
    layout.addWidget(heading)
    layout.addWidget(second)
    return page


def _scrolled(page: QWidget) -> QScrollArea:
    """A step in a scroll area that follows the dock's width and scrolls down: the dock never grows the window."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.addWidget(page)
    area.setWidget(holder)
    return area
