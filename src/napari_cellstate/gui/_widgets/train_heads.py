"""Train heads: train Schemes 1-3 over a few seeds, compare them (Table 1), look at the sparse head, apply one.

The widget only gathers settings and shows results. Everything it computes is a core call run in a napari
worker (:class:`~napari_cellstate.gui._workers.RunPanel`): preparing the data (encoding synthetic crops with the
β-TCVAE, or reading a project's labels and latents), training and comparing the schemes
(:func:`~napari_cellstate.core.heads.compare.iter_compare_schemes`), and scoring every cell of a movie
(:func:`~napari_cellstate.core.heads.apply.iter_apply_head`). The best head of each scheme is saved in the
project's ``heads/`` folder by the core session (:mod:`napari_cellstate.core.heads.session`), and the figures are
drawn in the worker too: the GUI only shows their pictures, scaled to the dock's width. Bad input surfaces as the
core's own message, in the status line and as a notification.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.config import Activation, HeadConfig, HeadScheme, RigLConfig
from ...core.states import CellState
from .._apply import iter_apply_and_keep, scheme_columns
from .._figures import (
    FigureWindow,
    group,
    label_grid,
    scroll_area,
    set_message,
    show_figures,
)
from .._layers import cells_layer, cells_layer_names, colour_cells_by_class, set_legend
from .._project import ProjectField, project_state
from .._workers import LatestCall, RunPanel
from ._heads_jobs import (
    LOADED_PREFIX,
    HeadChoice,
    iter_search_and_draw,
    iter_session,
    read_head,
    read_saved_heads,
    sparse_head_figures,
)

if TYPE_CHECKING:  # torch, matplotlib and pandas are imported by the workers that train heads and draw figures
    import pandas as pd
    from matplotlib.figure import Figure

    from ...core.heads.session import TrainHeadsResult

SCHEME_TITLES = {
    HeadScheme.CNN: "Scheme 1: CNN on crops",
    HeadScheme.DENSE: "Scheme 2: dense head on latents",
    HeadScheme.SPARSE: "Scheme 3: sparse head (RigL)",
}
SCHEME_TIPS = {
    HeadScheme.CNN: "A small CNN trained on the 64x64 crops themselves: the black-box baseline. "
    "Slow on a CPU (minutes per seed); fast on a GPU.",
    HeadScheme.DENSE: "The 32-16-16-16-1 head on the β-TCVAE latents, every connection in use (1040 weights).",
    HeadScheme.SPARSE: "The same head trained sparse with RigL and pruned: a few dozen connections, small enough "
    "to read as sub-networks of one or two latents.",
}
#: Rows of the Table 1 widget: label -> column of :func:`~napari_cellstate.core.heads.compare.summarise_table1`.
TABLE_ROWS = (
    ("models (seeds)", "models"),
    ("test accuracy", "accuracy"),
    ("paper", "paper accuracy"),
    ("balanced accuracy", "balanced accuracy"),
    ("head weights", "head weights"),
    ("paper ", "paper head weights"),
    ("expression size", "expression size"),
    ("paper  ", "paper expression size"),
)
#: Figures are rendered at this resolution in the worker, then shown scaled down to the dock's width.
RESULTS_MIN_HEIGHT_PX = 300


class TrainHeadsWidget(QWidget):
    """Train the classification heads, compare them as in Table 1, and classify every cell of the movie."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: TrainHeadsResult | None = None
        self.heads: dict[str, HeadChoice] = {}
        self.applied: pd.DataFrame | None = None
        self.figures: dict[str, list[Figure]] = {}
        self.figure_worker = None
        self.head_reader = LatestCall()  # the project's saved heads, read off the GUI thread
        self.project = ProjectField(project_state(napari_viewer))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.project)
        for box in (
            self._data_section(),
            self._schemes_section(),
            self._search_section(),
            self._results_section(),
            self._use_section(),
        ):
            layout.addWidget(box)
        layout.addStretch()
        self._connect()

    # --- sections ---------------------------------------------------------------------------
    def _data_section(self) -> QGroupBox:
        self.project.setToolTip(
            "A project made by Track & crop, its crops encoded (Latents) and cells labelled (Label); "
            "the best head of each scheme is saved in its heads/ folder."
        )
        self.synthetic = CheckBox(text="synthetic sample (no labels needed)", value=False)
        self.synthetic.native.setToolTip(
            "Balanced synthetic crops encoded by the packaged β-TCVAE: try the schemes before labelling cells."
        )
        self.n_synthetic = SpinBox(label="cells", value=3000, min=200, max=100_000, step=500)
        row = Container(widgets=[self.synthetic, self.n_synthetic], layout="horizontal", labels=True)
        row.margins = (0, 0, 0, 0)
        return group("Data", row.native)

    def _schemes_section(self) -> QGroupBox:
        self.schemes = {
            scheme: CheckBox(text=SCHEME_TITLES[scheme], value=scheme is not HeadScheme.CNN) for scheme in HeadScheme
        }
        for scheme, box in self.schemes.items():
            box.native.setToolTip(SCHEME_TIPS[scheme])
        self.seeds = SpinBox(label="seeds", value=3, min=1, max=50)
        self.seeds.native.setToolTip("Each scheme is trained once per seed; Table 1 gives mean ± s.d.")
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 2000)
        self.epochs.setSpecialValueText("default")  # shown at 0
        self.epochs.setToolTip("Training epochs per head; 'default': 40 for heads on latents, 6 for the CNN.")
        self.density = FloatSpinBox(label="RigL density", value=0.03, min=0.005, max=1.0, step=0.005)
        self.density.native.setDecimals(3)
        self.density.native.setToolTip("Fraction of the sparse head's connections kept active (paper: 3 %).")
        self.activation = ComboBox(label="activation", choices=[a.value for a in Activation], value="silu")
        self.activation.native.setToolTip("Activation of the heads' hidden units (paper: SiLU).")
        schemes = Container(widgets=list(self.schemes.values()))
        schemes.margins = (0, 0, 0, 0)
        fields = (
            ("seeds", self.seeds.native),
            ("epochs", self.epochs),
            ("RigL density", self.density.native),
            ("activation", self.activation.native),
        )
        self.panel = RunPanel("Train heads")
        return group("Schemes", schemes.native, label_grid(fields), self.panel)

    def _search_section(self) -> QGroupBox:
        self.trials = SpinBox(label="Optuna trials", value=20, min=1, max=500)
        self.trials.native.setToolTip(
            "Trials wanted in all: the study is kept in <project>/heads, so a second search resumes it."
        )
        self.search_panel = RunPanel("Search sparsity")
        self.search_panel.run_button.setToolTip(
            "Search RigL's density and schedule for the sparsest head within 1 % of the best validation accuracy "
            "(test cells untouched); the chosen head is saved in the project and joins the list below."
        )
        return group("Sparsity search (Optuna)", Container(widgets=[self.trials]).native, self.search_panel)

    def _results_section(self) -> QGroupBox:
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setFixedHeight(24 * len(TABLE_ROWS) + 60)  # every row visible, header of two lines
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip(
            "Test-set figures of the heads trained here (mean ± s.d. over seeds), each above the paper's (grey)."
        )
        self.findings = QLabel("Train heads to compare them with the paper's Table 1.")
        self.findings.setWordWrap(True)
        self.table_page = QWidget()
        table_layout = QVBoxLayout(self.table_page)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table)
        table_layout.addWidget(self.findings)
        table_layout.addStretch()
        self.topology_area = scroll_area("Train a sparse head (Scheme 3) to see which latents it uses.")
        self.subnetwork_area = scroll_area("Train a sparse head (Scheme 3) to see what each sub-network computes.")
        self.search_area = scroll_area("Search sparsity to see the accuracy / weights trade-off.")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.table_page, "Table 1")
        self.tabs.addTab(self.topology_area, "Wiring")
        self.tabs.addTab(self.subnetwork_area, "Sub-networks")
        self.tabs.addTab(self.search_area, "Search")
        self.tabs.setMinimumHeight(RESULTS_MIN_HEIGHT_PX)
        self.popout_button = QPushButton("Open figures in a window…")
        self.popout_button.setToolTip("Full size, with zoom, pan and Save (PNG, SVG, PDF).")
        self.popout_button.setEnabled(False)
        return group("Results", self.tabs, self.popout_button)

    def _use_section(self) -> QGroupBox:
        self.current = ComboBox(label="current head", choices=[])
        self.current.native.setToolTip(
            "The best seed of each trained scheme (saved in the project's heads/ folder as it is trained), and "
            "the heads saved there earlier."
        )
        self.save_button = QPushButton("Save head as…")
        self.load_button = QPushButton("Load head…")
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        self.cells = ComboBox(label="cells layer", choices=lambda _w=None: cells_layer_names(self.viewer))
        self.apply_panel = RunPanel("Apply to movie")
        self.apply_panel.run_button.setToolTip(
            "Score every cell of the project with the current head; the cells' faces take the predicted class's "
            "colour (metaphase magenta, interphase blue), their rings keep your labels."
        )
        form = Container(widgets=[self.current, self.cells])
        return group("Use a head", form.native, files, self.apply_panel)

    def _connect(self) -> None:
        self.panel.run_button.clicked.connect(self.train)
        self.search_panel.run_button.clicked.connect(self.search)
        self.apply_panel.run_button.clicked.connect(self.apply)
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)
        self.popout_button.clicked.connect(self.open_figures_window)
        self.current.changed.connect(lambda _v=None: self.show_current())
        self.synthetic.changed.connect(self._synthetic_toggled)
        self.project.state.changed.connect(lambda _p: self.list_saved_heads())
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(lambda _e=None: self.cells.reset_choices())
        self._synthetic_toggled()
        self.list_saved_heads()

    def closeEvent(self, event) -> None:
        """Stop training and applying when the widget closes: a worker must not outlive its widget."""
        for panel in (self.panel, self.search_panel, self.apply_panel):
            panel.cancel()
        super().closeEvent(event)

    # --- settings -------------------------------------------------------------------------
    def _synthetic_toggled(self, _value=None) -> None:
        self.n_synthetic.enabled = self.synthetic.value

    def chosen_schemes(self) -> list[str]:
        """The ticked schemes, in Table 1 order."""
        return [scheme.value for scheme, box in self.schemes.items() if box.value]

    def _source(self) -> tuple[str, Any]:
        """The data source, made in the worker (see :func:`iter_session`): ("synthetic", n) or ("project", path)."""
        if self.synthetic.value:
            return "synthetic", int(self.n_synthetic.value)
        return "project", self.project.value

    def _project_or_fail(self, panel: RunPanel) -> str | None:
        if not self.project.value:
            panel.fail("Choose a project folder first (Project…): heads are saved in it.")
            return None
        return self.project.value

    # --- training ---------------------------------------------------------------------------
    def train(self) -> None:
        """Train the ticked schemes over the seeds in a worker; Table 1 and the figures are shown when done."""
        schemes = self.chosen_schemes()
        if not schemes:
            self.panel.fail("Tick at least one scheme.")
            return
        if self._project_or_fail(self.panel) is None:
            return
        self.panel.start(
            iter_session,
            self._trained,
            "iter_train_heads",
            self._source(),
            schemes,
            range(int(self.seeds.value)),
            head=HeadConfig(activation=self.activation.value),
            rigl=RigLConfig(density=float(self.density.value)),
            epochs=self.epochs.value() or None,
            save_to=self.project.value,
        )

    def search_storage(self) -> Path:
        """The study's SQLite file in the project's heads folder (its own file for the synthetic sample)."""
        name = "sparsity_search_synthetic.sqlite3" if self.synthetic.value else "sparsity_search.sqlite3"
        return self._heads_folder() / name

    def search(self) -> None:
        """Run or resume the Optuna sparsity search in a worker; the chosen head joins the list."""
        if self._project_or_fail(self.search_panel) is None:
            return
        self.search_panel.start(
            iter_search_and_draw,
            self._searched,
            self._source(),
            self.search_storage(),
            int(self.trials.value),
            save_to=self.project.value,
        )

    def _searched(self, returned) -> None:
        from ...core.heads.session import head_file_stem

        result, picture = returned
        chosen = result.head
        label = f"Scheme 3 sparse · Optuna density {result.rigl.density:.3f} · {chosen.metrics['accuracy']:.1%}"
        stem = head_file_stem(HeadScheme.SPARSE, tag="optuna")
        self.heads[label] = HeadChoice(chosen.model, chosen.card, HeadScheme.SPARSE.value, stem)
        show_figures(self.search_area, [picture])
        self.tabs.setCurrentWidget(self.search_area)
        self._refresh_heads(select=label)
        self.search_panel.done(
            f"{len(result.trials)} trials in {result.storage.name}; chosen: {chosen.metrics['active_weights']} "
            f"weights, test accuracy {chosen.metrics['accuracy']:.1%}"
        )

    def _trained(self, result: TrainHeadsResult) -> None:
        from ...core.heads.compare import table1_bars
        from ...core.heads.session import head_file_stem

        self.result = result
        self.show_table(result.summary)
        for key in [k for k in self.heads if not k.startswith(LOADED_PREFIX)]:
            del self.heads[key]
        for scheme in HeadScheme:
            if scheme.value in result.best.results:
                trained = result.best.results[scheme.value]
                label = _head_label(scheme, result.best.seeds[scheme.value], trained.metrics)
                stem = head_file_stem(scheme, result.best.seeds[scheme.value])
                self.heads[label] = HeadChoice(trained.model, trained.card, scheme.value, stem)
        self._refresh_heads(prefer=HeadScheme.SPARSE.value)
        self.findings.setText(_findings(table1_bars(result.runs)))
        described = result.data.describe()
        saved = f"; best heads saved in {self._heads_folder()}" if result.saved else ""
        self.panel.done(
            f"trained {len(result.runs)} heads on {described['n_train']} cells and tested them on "
            f"{described['n_test']} others; data: {described['source']}{saved}"
        )

    def show_table(self, summary: pd.DataFrame) -> None:
        """Fill the Table 1 widget: a column per trained scheme, our figure above the paper's for each quantity.

        The core's table has a row per scheme and eleven columns; turned around it fits a dock and puts each of
        our numbers right above the paper's.
        """
        shown = summary[summary["models"] > 0]
        columns = [f"Scheme {row.Scheme}\n{row.Encoder} + {row.Head.lower()}" for row in shown.itertuples()]
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setRowCount(len(TABLE_ROWS))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setVerticalHeaderLabels([label for label, _ in TABLE_ROWS])
        for j, (_, row) in enumerate(shown.iterrows()):
            for i, (label, column) in enumerate(TABLE_ROWS):
                item = QTableWidgetItem(str(row[column]))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if label.startswith("paper"):
                    item.setForeground(QColor("#9a9a9a"))
                self.table.setItem(i, j, item)
        self.tabs.setCurrentWidget(self.table_page)

    def table_text(self) -> dict[str, dict[str, str]]:
        """The Table 1 widget's text: scheme column header's first line -> row label -> cell text."""
        out = {}
        for j in range(self.table.columnCount()):
            header = self.table.horizontalHeaderItem(j).text().split("\n")[0]
            out[header] = {
                self.table.verticalHeaderItem(i).text(): self.table.item(i, j).text()
                for i in range(self.table.rowCount())
            }
        return out

    # --- current head and its figures --------------------------------------------------------
    def _refresh_heads(self, prefer: str | None = None, select: str | None = None) -> None:
        if select is None and prefer is not None:
            select = next((k for k, h in self.heads.items() if h.scheme == prefer), None)
        if select is None and self.heads:
            select = next(iter(self.heads))
        with self.current.changed.blocked():  # drawn once, below
            self.current.choices = list(self.heads)
            if select is not None:
                self.current.value = select
        self._enable_head_actions()
        self.show_current()

    def _enable_head_actions(self) -> None:
        has_head = bool(self.heads)
        self.save_button.setEnabled(has_head)
        self.apply_panel.run_button.setEnabled(has_head)

    def current_head(self) -> HeadChoice | None:
        """The head chosen in the "current head" box."""
        return self.heads.get(self.current.value) if self.current.value else None

    def show_current(self) -> None:
        """Draw the current head's wiring and sub-network responses (in a worker), for a sparse head on latents."""
        from napari.qt.threading import create_worker

        head = self.current_head()
        self.figures = {}
        self.popout_button.setEnabled(False)
        areas = (self.topology_area, self.subnetwork_area)
        if head is None:
            return
        if head.scheme != HeadScheme.SPARSE.value:
            reads = "pixels through a CNN" if head.scheme == HeadScheme.CNN.value else "every latent"
            for area in areas:
                set_message(
                    area,
                    f"This head reads {reads} through a dense web of connections, too many to draw readably. "
                    "Choose a Scheme 3 (sparse) head to see its wiring and sub-networks.",
                )
            return
        for area in areas:
            set_message(area, "drawing ...")
        x, decode = self._latents_for(head.model)
        names = head.card.get("input_names") or None
        worker = create_worker(
            sparse_head_figures, head.model, names, x, decode, _start_thread=False, _ignore_errors=True
        )
        worker.returned.connect(lambda made, worker=worker: self._show_made_figures(made, worker))
        worker.errored.connect(lambda err: self.apply_panel.fail(f"Could not draw the head's figures: {err}"))
        worker.finished.connect(lambda worker=worker: self._figures_finished(worker))
        self.figure_worker = worker
        worker.start()

    def _show_made_figures(self, made: dict, worker) -> None:
        if worker is not self.figure_worker:  # another head was chosen meanwhile
            return
        areas = {"wiring": self.topology_area, "subnetworks": self.subnetwork_area}
        for key, pictures in made.items():
            if isinstance(pictures, str):
                set_message(areas[key], pictures)
                continue
            show_figures(areas[key], pictures)
            self.figures[key] = [figure for figure, _ in pictures]
        self.popout_button.setEnabled(bool(self.figures))

    def _figures_finished(self, worker) -> None:
        if worker is self.figure_worker:
            self.figure_worker = None

    def open_figures_window(self) -> QWidget | None:
        """Show the figures of the tab in view in a window of their own: full size, with zoom and Save."""
        key = {self.topology_area: "wiring", self.subnetwork_area: "subnetworks"}.get(self.tabs.currentWidget())
        figures = self.figures.get(key or "wiring")
        if not figures:
            return None
        window = FigureWindow(figures, f"{self.tabs.tabText(self.tabs.currentIndex())}: {self.current.value}", self)
        window.show()
        return window

    def _latents_for(self, model) -> tuple[np.ndarray | None, Callable | None]:
        """Latents to plot responses on, and their decoder if known.

        The training data's latents when the head fits them, else those of the last movie a head was applied to.
        """
        from ...core.objects import latent_name_list

        n_inputs = model.cfg.n_inputs
        if self.result is not None and self.result.data.n_latents == n_inputs:
            return np.asarray(self.result.data.latents), self.result.decode
        columns = latent_name_list(n_inputs)
        if self.applied is not None and set(columns) <= set(self.applied.columns):
            return self.applied[columns].to_numpy(np.float32), None
        return None, None

    # --- files ----------------------------------------------------------------------------
    def _heads_folder(self) -> Path:
        from ...core.heads.session import HEADS_FOLDER

        return Path(self.project.value) / HEADS_FOLDER

    def save_head(self, path: str | Path) -> Path | None:
        """Save the current head (weights + card) to ``path``; returns the weights file."""
        from ...core.heads import save_head
        from ...core.model_files import ModelFileError

        head = self.current_head()
        if head is None:
            return None
        try:
            saved = save_head(path, head.model, head.card)
        except (ModelFileError, OSError, ValueError) as err:
            self.apply_panel.fail(f"Could not save the head: {err}")
            return None
        self.apply_panel.done(f"saved {saved}")
        return saved

    def load_head(self, path: str | Path, *, select: bool = True) -> str | None:
        """Load a saved head (by this panel or the CLI) into the list, current if ``select``; returns its name."""
        from ...core.model_files import ModelFileError

        try:
            label, head = read_head(path)
        except (ModelFileError, OSError) as err:
            self.apply_panel.fail(str(err))
            return None
        self.heads[label] = head
        if select:
            self._refresh_heads(select=label)
            self.apply_panel.status.setText(f"loaded {label[len(LOADED_PREFIX) :]}")
        return label

    def list_saved_heads(self) -> None:
        """Offer the heads saved in the project (read in a worker: ``head_reader.busy`` until they are listed)."""
        if self.project.value:
            self.head_reader.submit(read_saved_heads, self._saved_heads_read, self.project.value)
        else:
            self._saved_heads_read(([], []))

    def _saved_heads_read(self, read: tuple[list[tuple[str, HeadChoice]], list[str]]) -> None:
        heads, errors = read
        for key in [k for k in self.heads if k.startswith(LOADED_PREFIX)]:
            del self.heads[key]
        self.heads.update(heads)
        self._refresh_heads(prefer=HeadScheme.SPARSE.value)
        if errors:
            self.apply_panel.fail("\n".join(errors))

    def _default_head_path(self) -> str:
        head = self.current_head()
        return str(self._heads_folder() / (head.file_stem if head is not None else "head"))

    def _save_dialog(self) -> None:
        self._heads_folder().mkdir(parents=True, exist_ok=True)
        path, _ = QFileDialog.getSaveFileName(self, "Save head", self._default_head_path(), "Head (*.safetensors)")
        if path:
            self.save_head(path)

    def _load_dialog(self) -> None:
        folder = self._heads_folder()
        start = str(folder if folder.exists() else Path(self.project.value))
        path, _ = QFileDialog.getOpenFileName(self, "Load head", start, "Head (*.safetensors *.json)")
        if path:
            self.load_head(path)

    # --- apply --------------------------------------------------------------------------------
    def apply(self) -> None:
        """Score every cell of the project with the current head, in a worker; then colour the cells."""
        head = self.current_head()
        if head is None:
            self.apply_panel.fail("Train or load a head first.")
            return
        self.apply_panel.start(
            iter_apply_and_keep,
            lambda objects, scheme=head.scheme: self._applied(objects, scheme),
            self.project.value,
            head.model,
            scheme=head.scheme,
            card=head.card,
        )

    def _applied(self, objects: pd.DataFrame, scheme: str) -> None:
        from ...core.heads.apply import CLASS_COLUMN, SCORE_COLUMN

        self.applied = objects
        layer = self._cells_layer(objects)
        try:
            colour_cells_by_class(layer, objects, CLASS_COLUMN, columns=(SCORE_COLUMN, *scheme_columns(scheme)))
        except ValueError as err:  # a Points layer that is not the cells of this project
            self.apply_panel.fail(f"{err} Choose the cells layer made by Track & crop.")
            return
        classes = objects[CLASS_COLUMN].astype(str)
        n_meta = int((classes == CellState.METAPHASE.value).sum())
        share = 100 * n_meta / max(len(objects), 1)
        set_legend(self.viewer)
        self.apply_panel.done(
            f"{n_meta} of {len(objects)} cells ({share:.1f} %) classified metaphase. In '{layer.name}' the fill "
            "is the head's class (magenta metaphase, blue interphase), the ring your label."
        )

    def _cells_layer(self, objects: pd.DataFrame) -> napari.layers.Points:
        """The cells' Points layer chosen in the box; made from the project's table when there is none."""
        name = self.cells.value
        if name and name in self.viewer.layers:
            return self.viewer.layers[name]
        from ...core.project import load_crop_dataset

        sources = load_crop_dataset(self.project.value).metadata.get("sources") or [{}]
        pixel_size_um = float(sources[0].get("pixel_size_um") or 1.0)
        data, kwargs, _ = cells_layer(objects, pixel_size_um)
        layer = self.viewer.add_points(data, **kwargs)
        self.cells.value = layer.name
        return layer


# --- helpers (layout and formatting only) -----------------------------------------------------------
def _head_label(scheme: HeadScheme, seed: int, metrics: dict) -> str:
    return f"Scheme {scheme.number} {scheme.value} · seed {seed} · {metrics['accuracy']:.1%}"


def _findings(bars: dict) -> str:
    """The paper's headline findings, checked on our runs, in words."""
    lines = []
    ratio, weights = bars["sparse_dense_accuracy_ratio"], bars["sparse_dense_weights_ratio"]
    if not (math.isnan(ratio) or math.isnan(weights)):
        lines.append(
            f"Scheme 3 keeps {ratio:.1%} of Scheme 2's accuracy with {weights:.1%} of its weights "
            "(paper: 98 % with 2 %)."
        )
    if bars["sparse_runs_with_roles"]:
        lines.append(
            f"Sparse heads reading nucleus latents only: {bars['nucleus_only_runs']} of "
            f"{bars['sparse_runs_with_roles']} seeds (paper: 10 of 10)."
        )
    return "\n".join(lines)
