"""Train heads: train Schemes 1-3 over a few seeds, compare them (Table 1), look at the sparse head, apply one.

The widget only gathers settings and shows results. Everything it computes is a core call run in a napari
worker (:class:`~napari_cellstate.gui._workers.RunPanel`): preparing the data (encoding synthetic crops with the
β-TCVAE, or reading a project's labels and latents), training and comparing the schemes
(:func:`~napari_cellstate.core.heads.compare.iter_compare_schemes`), and scoring every cell of a movie
(:func:`~napari_cellstate.core.heads.apply.iter_apply_head`). Bad input surfaces as the core's own message in the
status line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.config import Activation, HeadConfig, HeadScheme, RigLConfig
from ...core.progress import Progress
from ...core.states import CellState
from .._layers import CELLS_LAYER, cells_layer, colour_cells_by_class
from .._workers import RunPanel

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
HEADS_FOLDER = "heads"
LOADED_PREFIX = "loaded: "
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
#: Figures are drawn at this resolution, whatever the dock's width, so their text stays legible; a figure
#: wider than the dock scrolls rather than shrinking.
FIGURE_DPI = 72
RESULTS_MIN_WIDTH_PX = 470
RESULTS_MIN_HEIGHT_PX = 400


@dataclass
class TrainHeadsResult:
    """What one Train run gives the widget.

    Attributes
    ----------
    data : HeadData
        The cells the heads learned from (kept to plot the sub-networks' responses on real latents).
    runs : DataFrame
        One row per scheme x seed, as :func:`~napari_cellstate.core.heads.compare.iter_compare_schemes` returns.
    summary : DataFrame
        Table 1, our figures beside the paper's (:func:`~napari_cellstate.core.heads.compare.summarise_table1`).
    best : BestHeads
        The best seed's head of each scheme.
    decode : callable or None
        ``decode(z: (M, D)) -> (M, S, S)``: the β-TCVAE decoder of the latents, when known, to draw what moving
        along a latent looks like under the sub-network response curves.
    """

    data: Any
    runs: pd.DataFrame
    summary: pd.DataFrame
    best: Any
    decode: Callable[[np.ndarray], np.ndarray] | None = None


def iter_train_heads(
    prepare: Callable[[], tuple[Any, Callable | None]],
    schemes: Sequence[str],
    seeds: Sequence[int],
    *,
    head: HeadConfig | None = None,
    rigl: RigLConfig | None = None,
    epochs: int | None = None,
) -> Generator[Progress, None, TrainHeadsResult]:
    """Prepare the data, then train and compare the schemes: all of it off the GUI thread.

    The data are prepared here rather than in the widget because encoding crops with the β-TCVAE takes seconds
    to minutes, and the GUI must stay responsive meanwhile. Each scheme keeps its own training settings
    (:func:`~napari_cellstate.core.heads.fit.default_training`), with only the number of epochs overridden.

    Parameters
    ----------
    prepare : callable
        Returns the :class:`~napari_cellstate.core.heads.data.HeadData` (synthetic or a project's) and the decoder
        of its latents (or None when unknown).
    schemes : sequence of str
        ``"cnn"``, ``"dense"``, ``"sparse"``.
    seeds : sequence of int
        One run per scheme per seed.
    head, rigl : optional
        Passed to :func:`~napari_cellstate.core.heads.compare.iter_compare_schemes`; the head's ``n_inputs`` is
        set to the data's number of latents.
    epochs : int, optional
        Epochs for every scheme; default: each scheme's own.

    Yields
    ------
    Progress
        Preparation, then the comparison's events on one scale over all schemes.
    """
    from ...core.heads.compare import BestHeads, iter_compare_schemes, summarise_table1

    yield Progress(0, 1, "preparing the data (encoding crops with the β-TCVAE) ...")
    data, decode = prepare()
    if head is not None and data.n_latents:
        head = head.model_copy(update={"n_inputs": data.n_latents})
    best = BestHeads()
    runs = yield from iter_compare_schemes(data, schemes, seeds, head=head, rigl=rigl, epochs=epochs, on_result=best)
    return TrainHeadsResult(data=data, runs=runs, summary=summarise_table1(runs), best=best, decode=decode)


def iter_search_heads(
    prepare: Callable[[], tuple[Any, Callable | None]], storage: Path, n_trials: int
) -> Generator[Progress, None, Any]:
    """Prepare the data, then run (or resume) the Optuna sparsity search: all of it off the GUI thread.

    Returns the :class:`~napari_cellstate.core.heads.search.SearchResult`.
    """
    from ...core.heads.search import iter_sparsity_search

    yield Progress(0, 1, "preparing the data (encoding crops with the β-TCVAE) ...")
    data, _ = prepare()
    return (yield from iter_sparsity_search(data, storage, n_trials=n_trials))


@dataclass
class _Head:
    """A head the user can make current: trained here or loaded from a file."""

    model: Any
    card: dict
    scheme: str
    file_stem: str  # default file name when saving


class TrainHeadsWidget(QWidget):
    """Train the classification heads, compare them as in Table 1, and classify every cell of the movie."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: TrainHeadsResult | None = None
        self.heads: dict[str, _Head] = {}
        self.applied: pd.DataFrame | None = None

        # --- data ---------------------------------------------------------------------
        self.project = LineEdit(label="project folder", value=str(Path.cwd() / "cellstate-project"))
        self.project.native.setToolTip(
            "A project made by Track & crop, its crops encoded (Latent explorer) and cells labelled (Label cells); "
            "heads are saved in its heads/ folder."
        )
        self.synthetic = CheckBox(text="synthetic sample (no labels needed)", value=False)
        self.n_synthetic = SpinBox(label="cells", value=3000, min=200, max=100_000, step=500)
        synthetic_row = Container(widgets=[self.synthetic, self.n_synthetic], layout="horizontal", labels=True)
        synthetic_row.margins = (0, 0, 0, 0)
        data_box = _group("Data", Container(widgets=[self.project]).native, synthetic_row.native)
        self.synthetic.native.setToolTip(
            "Balanced synthetic crops encoded by the packaged β-TCVAE: try the schemes before labelling cells."
        )

        # --- schemes and settings -------------------------------------------------------
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
        grid = QGridLayout()
        for k, (label, field) in enumerate(
            (
                ("seeds", self.seeds.native),
                ("epochs", self.epochs),
                ("RigL density", self.density.native),
                ("activation", self.activation.native),
            )
        ):
            grid.addWidget(QLabel(label), k // 2, 2 * (k % 2))
            grid.addWidget(field, k // 2, 2 * (k % 2) + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.panel = RunPanel("Train heads")
        scheme_box = _group("Schemes", schemes.native, grid, self.panel)
        self.trials = SpinBox(label="Optuna trials", value=20, min=1, max=500)
        self.trials.native.setToolTip(
            "Trials wanted in all: the study is kept in <project>/heads, so a second search resumes it."
        )
        self.search_panel = RunPanel("Search sparsity")
        self.search_panel.run_button.setToolTip(
            "Search RigL's density and schedule for the sparsest head within 1 % of the best validation accuracy "
            "(test cells untouched); the chosen head joins the list below."
        )
        search_box = _group("Sparsity search (Optuna)", Container(widgets=[self.trials]).native, self.search_panel)

        # --- results ------------------------------------------------------------------------
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
        self.topology_canvas: FigureCanvasQTAgg | None = None
        self.subnetwork_canvases: list[FigureCanvasQTAgg] = []
        self.topology_area = _scroll_area("Train a sparse head (Scheme 3) to see which latents it uses.")
        self.subnetwork_area = _scroll_area("Train a sparse head (Scheme 3) to see what each sub-network computes.")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.table_page, "Table 1")
        self.tabs.addTab(self.topology_area, "Sparse head wiring")
        self.tabs.addTab(self.subnetwork_area, "Sub-networks")
        self.search_area = _scroll_area("Search sparsity to see the accuracy / weights trade-off.")
        self.tabs.addTab(self.search_area, "Sparsity search")
        self.tabs.setMinimumSize(RESULTS_MIN_WIDTH_PX, RESULTS_MIN_HEIGHT_PX)

        self.current = ComboBox(label="current head", choices=[])
        self.current.native.setToolTip("The best seed of each trained scheme, and heads loaded from files.")
        self.save_button = QPushButton("Save head…")
        self.load_button = QPushButton("Load head…")
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        self.cells = ComboBox(label="cells layer", choices=self._points_choices)
        self.apply_panel = RunPanel("Apply to movie")
        self.apply_panel.run_button.setToolTip(
            "Score every cell of the project with the current head; the cells' faces take the predicted class's "
            "colour (metaphase magenta, interphase blue), their rings keep your labels."
        )
        self.figure_makers: dict[str, Callable[[], list[Figure]] | str] = {}
        self.popout_button = QPushButton("Open figures in a window…")
        self.popout_button.setToolTip("Full size, with zoom, pan and Save (PNG, SVG, PDF).")
        self.popout_button.setEnabled(False)
        results_box = _group("Results", self.tabs, self.popout_button)
        head_box = _group(
            "Use a head",
            Container(widgets=[self.current]).native,
            files,
            Container(widgets=[self.cells]).native,
            self.apply_panel,
        )

        content = QWidget()
        layout = QVBoxLayout(content)
        for box in (data_box, scheme_box, search_box, results_box, head_box):
            layout.addWidget(box)
        layout.addStretch()
        # the dock scrolls rather than forcing napari's window taller than a laptop screen
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._content, self._scroll = content, scroll

        self.panel.run_button.clicked.connect(self.train)
        self.search_panel.run_button.clicked.connect(self.search)
        self.apply_panel.run_button.clicked.connect(self.apply)
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)
        self.popout_button.clicked.connect(self.open_figures_window)
        self.current.changed.connect(lambda _v=None: self.show_current())
        self.synthetic.changed.connect(self._synthetic_toggled)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(lambda _e=None: self.cells.reset_choices())
        self._synthetic_toggled()
        self._enable_head_actions()

    def closeEvent(self, event) -> None:
        """Stop training and applying when the widget closes: a worker must not outlive its widget."""
        for panel in (self.panel, self.search_panel, self.apply_panel):
            panel.cancel()
        super().closeEvent(event)

    def sizeHint(self) -> QSize:
        """Wide enough for the results with the vertical scroll bar; the user may still make the dock narrower."""
        width = self._content.minimumSizeHint().width() + self._scroll.verticalScrollBar().sizeHint().width() + 2
        return QSize(width, super().sizeHint().height())

    # --- settings -------------------------------------------------------------------------
    def _points_choices(self, _widget=None) -> list[str]:
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Points)]
        return sorted(names, key=lambda name: name != CELLS_LAYER)  # the Track & crop layer first

    def _synthetic_toggled(self, _value=None) -> None:
        self.n_synthetic.enabled = self.synthetic.value

    def chosen_schemes(self) -> list[str]:
        """The ticked schemes, in Table 1 order."""
        return [scheme.value for scheme, box in self.schemes.items() if box.value]

    def _prepare(self) -> Callable[[], tuple[Any, Callable | None]]:
        """The data source, as a call the worker makes: it returns the data and their latents' decoder."""
        if self.synthetic.value:
            return partial(_synthetic_data, int(self.n_synthetic.value))
        return partial(_project_data, self.project.value)

    # --- training ---------------------------------------------------------------------------
    def train(self) -> None:
        """Train the ticked schemes over the seeds in a worker; Table 1 and the figures are shown when done."""
        schemes = self.chosen_schemes()
        if not schemes:
            self.panel.status.setText("Tick at least one scheme.")
            return
        self.panel.start(
            iter_train_heads,
            self._trained,
            self._prepare(),
            schemes,
            range(int(self.seeds.value)),
            head=HeadConfig(activation=self.activation.value),
            rigl=RigLConfig(density=float(self.density.value)),
            epochs=self.epochs.value() or None,
        )

    def search_storage(self) -> Path:
        """The study's SQLite file in the project's heads folder (its own file for the synthetic sample)."""
        name = "sparsity_search_synthetic.sqlite3" if self.synthetic.value else "sparsity_search.sqlite3"
        return self._heads_folder() / name

    def search(self) -> None:
        """Run or resume the Optuna sparsity search in a worker; the chosen head joins the list."""
        self.search_panel.start(
            iter_search_heads, self._searched, self._prepare(), self.search_storage(), int(self.trials.value)
        )

    def _searched(self, result) -> None:
        from ...core.heads.search import tradeoff_figure

        chosen = result.head
        label = f"Scheme 3 sparse · Optuna density {result.rigl.density:.3f} · {chosen.metrics['accuracy']:.1%}"
        self.heads[label] = _Head(chosen.model, chosen.card, HeadScheme.SPARSE.value, "scheme3_sparse_optuna")
        _show_figures(self.search_area, [tradeoff_figure(result)])
        self.tabs.setCurrentWidget(self.search_area)
        self._refresh_heads(select=label)
        self.search_panel.status.setText(
            f"{len(result.trials)} trials in {result.storage.name}; chosen: {chosen.metrics['active_weights']} "
            f"weights, test accuracy {chosen.metrics['accuracy']:.1%}"
        )

    def _trained(self, result: TrainHeadsResult) -> None:
        from ...core.heads.compare import table1_bars

        self.result = result
        self.show_table(result.summary)
        for key in [k for k in self.heads if not k.startswith(LOADED_PREFIX)]:
            del self.heads[key]
        for scheme in HeadScheme:
            if scheme.value in result.best.results:
                trained = result.best.results[scheme.value]
                label = _head_label(scheme, result.best.seeds[scheme.value], trained.metrics)
                stem = f"scheme{scheme.number}_{scheme.value}_seed{result.best.seeds[scheme.value]}"
                self.heads[label] = _Head(trained.model, trained.card, scheme.value, stem)
        self._refresh_heads(prefer=HeadScheme.SPARSE.value)
        self.findings.setText(_findings(table1_bars(result.runs)))
        described = result.data.describe()
        self.panel.status.setText(
            f"trained {len(result.runs)} heads on {described['n_train']} cells and tested them on "
            f"{described['n_test']} others; data: {described['source']}"
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
        self.current.choices = list(self.heads)
        if select is None and prefer is not None:
            select = next((k for k, h in self.heads.items() if h.scheme == prefer), None)
        if select is None and self.heads:
            select = next(iter(self.heads))
        if select is not None:
            with self.current.changed.blocked():  # drawn once, below
                self.current.value = select
        self._enable_head_actions()
        self.show_current()

    def _enable_head_actions(self) -> None:
        has_head = bool(self.heads)
        self.save_button.setEnabled(has_head)
        self.apply_panel.run_button.setEnabled(has_head)

    def current_head(self) -> _Head | None:
        """The head chosen in the "current head" box."""
        return self.heads.get(self.current.value) if self.current.value else None

    def show_current(self) -> None:
        """Draw the current head's wiring and sub-network responses, when it is a sparse head on latents."""
        self.figure_makers = self._figure_makers()
        self.popout_button.setEnabled(any(callable(m) for m in self.figure_makers.values()))
        self.topology_canvas, self.subnetwork_canvases = None, []
        for key, area in (("wiring", self.topology_area), ("subnetworks", self.subnetwork_area)):
            made = self.figure_makers.get(key)
            if isinstance(made, str) or made is None:
                _set_message(area, made or "")
                continue
            canvases = _show_figures(area, made())
            if key == "wiring":
                self.topology_canvas = canvases[0]
            else:
                self.subnetwork_canvases = canvases

    def _figure_makers(self) -> dict[str, Callable[[], list[Figure]] | str]:
        """For each figure tab, a call making its figures, or a message saying why there are none."""
        head = self.current_head()
        if head is None:
            return {}
        if head.scheme != HeadScheme.SPARSE.value:
            reads = "pixels through a CNN" if head.scheme == HeadScheme.CNN.value else "every latent"
            message = (
                f"This head reads {reads} through a dense web of connections, too many to draw readably. "
                "Choose a Scheme 3 (sparse) head to see its wiring and sub-networks."
            )
            return {"wiring": message, "subnetworks": message}
        from ...core.heads.analysis import decompose
        from ...core.heads.plots import subnetwork_figures, topology_figure

        names = head.card.get("input_names") or None
        subnets = decompose(head.model, names)
        makers: dict[str, Callable[[], list[Figure]] | str] = {
            "wiring": lambda: [topology_figure(head.model, names, subnets)]
        }
        x, decode = self._latents_for(head.model)
        if not subnets:
            makers["subnetworks"] = (
                "This head's score does not depend on any latent (it is a constant): train it again, with more "
                "epochs, another seed or a higher RigL density."
            )
        elif x is None:
            makers["subnetworks"] = "Apply the head to a movie (or train it here) to plot its responses on real cells."
        else:
            makers["subnetworks"] = lambda: _as_list(subnetwork_figures(head.model, subnets, x, names, decode=decode))
        return makers

    def open_figures_window(self) -> QWidget | None:
        """Show the figures of the tab in view in a window of their own: full size, with zoom and Save."""
        key = {self.topology_area: "wiring", self.subnetwork_area: "subnetworks"}.get(self.tabs.currentWidget())
        made = self.figure_makers.get(key or "wiring")
        if not callable(made):
            return None
        window = _FigureWindow(made(), f"{self.tabs.tabText(self.tabs.currentIndex())}: {self.current.value}", self)
        window.show()
        return window

    def _latents_for(self, model) -> tuple[np.ndarray | None, Callable | None]:
        """Latents to plot responses on, and their decoder if known.

        The training data's latents when the head fits them, else those of the last movie a head was applied to.
        """
        n_inputs = model.cfg.n_inputs
        if self.result is not None and self.result.data.n_latents == n_inputs:
            return np.asarray(self.result.data.latents), self.result.decode
        columns = [f"z{j}" for j in range(n_inputs)]
        if self.applied is not None and set(columns) <= set(self.applied.columns):
            return self.applied[columns].to_numpy(np.float32), None
        return None, None

    # --- files ----------------------------------------------------------------------------
    def _heads_folder(self) -> Path:
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
            self.apply_panel.status.setText(f"Could not save the head: {err}")
            return None
        self.apply_panel.status.setText(f"saved {saved}")
        return saved

    def load_head(self, path: str | Path) -> str | None:
        """Load a head saved by Save head… (or the CLI) and make it current; returns its name in the box."""
        from ...core.heads import load_head
        from ...core.model_files import ModelFileError

        try:
            model, card = load_head(path)
        except (ModelFileError, OSError) as err:
            self.apply_panel.status.setText(str(err))
            return None
        scheme = _scheme_of(model, card)
        stem = Path(path).name.removesuffix(".safetensors").removesuffix(".json")
        label = f"{LOADED_PREFIX}{stem} (Scheme {scheme.number})"
        self.heads[label] = _Head(model, card, scheme.value, stem)
        self._refresh_heads(select=label)
        self.apply_panel.status.setText(f"loaded {label[len(LOADED_PREFIX) :]}")
        return label

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
        from ...core.heads.apply import iter_apply_head

        head = self.current_head()
        if head is None:
            self.apply_panel.status.setText("Train or load a head first.")
            return
        self.apply_panel.start(iter_apply_head, self._applied, self.project.value, head.model, card=head.card)

    def _applied(self, objects: pd.DataFrame) -> None:
        from ...core.heads.apply import CLASS_COLUMN, SCORE_COLUMN

        self.applied = objects
        layer = self._cells_layer(objects)
        try:
            colour_cells_by_class(layer, objects, CLASS_COLUMN, columns=(SCORE_COLUMN,))
        except ValueError as err:  # a Points layer that is not the cells of this project
            self.apply_panel.status.setText(f"{err} Choose the cells layer made by Track & crop.")
            return
        classes = objects[CLASS_COLUMN].astype(str)
        n_meta = int((classes == CellState.METAPHASE.value).sum())
        share = 100 * n_meta / max(len(objects), 1)
        self.apply_panel.status.setText(
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


# --- data sources (run in the worker) -----------------------------------------------------------------
def _synthetic_data(n: int) -> tuple[Any, Callable]:
    """Synthetic crops encoded by the packaged β-TCVAE, which also decodes latents for the figures."""
    from ...core.heads.data import synthetic_head_data
    from ...core.vae.fit import decode_latents, load_default_vae

    vae = load_default_vae()[0]
    return synthetic_head_data(n, seed=0, vae=vae), partial(decode_latents, vae)


def _project_data(folder: str) -> tuple[Any, None]:
    """A project's labelled cells; which β-TCVAE encoded them is not recorded, so no decoder."""
    from ...core.heads.data import project_head_data

    return project_head_data(folder), None


# --- helpers (layout and formatting only) -----------------------------------------------------------
def _group(title: str, *items) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for item in items:
        if isinstance(item, QWidget):
            layout.addWidget(item)
        else:
            layout.addLayout(item)
    return box


def _scroll_area(message: str) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    _set_message(area, message)
    return area


def _set_message(area: QScrollArea, message: str) -> None:
    label = QLabel(message)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    area.setWidget(label)


def _show_figures(area: QScrollArea, figures: list[Figure]) -> list[FigureCanvasQTAgg]:
    """Put figures one under the other in a scroll area: at their own height, as wide as the dock allows.

    Each is drawn at :data:`FIGURE_DPI` so its text keeps a legible size; it widens with the dock but never gets
    narrower than it was designed (the area scrolls instead): squeezed, its labels would overlap.
    """
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    canvases = []
    for figure in figures:
        figure.set_dpi(FIGURE_DPI)  # before the canvas exists: it keeps this as the figure's own resolution
        width_in, height_in = figure.get_size_inches()
        canvas = FigureCanvasQTAgg(figure)
        canvas.setMinimumWidth(int(width_in * FIGURE_DPI))
        canvas.setFixedHeight(int(height_in * FIGURE_DPI))
        layout.addWidget(canvas)
        canvas.draw_idle()
        canvases.append(canvas)
    area.setWidget(holder)
    return canvases


class _FigureWindow(QWidget):
    """A separate, resizable window with figures at full size and matplotlib's toolbar (zoom, pan, save)."""

    def __init__(self, figures: list[Figure], title: str, parent: QWidget) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        from matplotlib.backends.backend_qtagg import NavigationToolbar2QT

        self.setWindowTitle(title)
        holder = QWidget()
        layout = QVBoxLayout(holder)
        self.canvases = []
        for figure in figures:
            canvas = FigureCanvasQTAgg(figure)
            width_in, height_in = figure.get_size_inches()
            canvas.setMinimumSize(int(width_in * figure.dpi * 0.6), int(height_in * figure.dpi))
            layout.addWidget(NavigationToolbar2QT(canvas, holder))
            layout.addWidget(canvas)
            self.canvases.append(canvas)
        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setWidget(holder)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(area)
        width_px = max(f.get_size_inches()[0] * f.dpi for f in figures)
        height_px = sum(f.get_size_inches()[1] * f.dpi for f in figures)
        self.resize(int(width_px) + 40, int(min(height_px + 80, 900)))


def _as_list(figures) -> list[Figure]:
    return [figures] if isinstance(figures, Figure) else list(figures)


def _scheme_of(model, card: dict) -> HeadScheme:
    """The scheme a loaded head belongs to: its card's word, else what its architecture and masks say."""
    from ...core.heads import CNNClassifier

    try:
        return HeadScheme(card.get("scheme"))
    except ValueError:
        pass
    if isinstance(model, CNNClassifier):
        return HeadScheme.CNN
    return HeadScheme.SPARSE if not all(bool(mask.all()) for mask in model.masks) else HeadScheme.DENSE


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
