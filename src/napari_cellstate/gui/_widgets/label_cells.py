"""Label cells on the movie: click or select cells, press a key, labels saved as made."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, LineEdit, SpinBox
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ...core.states import CellState
from .._layers import cells_layer_names, label_colours, set_legend
from .._project import ProjectField, project_state

if TYPE_CHECKING:  # the labels' tables (pandas) load when a project's labels are opened, not with the panel
    import pandas as pd

    from ...core.labelling import LabelStore

DEFAULT_CLASSES = (CellState.INTERPHASE.value, CellState.METAPHASE.value)
CLICK_RADIUS_PX = 20.0
#: Labelling keys work with Alt held, so napari's own Points keys (modes, undo) stay as they are.
MODIFIER = "Alt"
KEYS_HELP = (
    f"Keys ({MODIFIER} held, on the cells layer): {MODIFIER}+I interphase, {MODIFIER}+M metaphase, "
    f"{MODIFIER}+1…9 the class in the list, {MODIFIER}+U unlabel, {MODIFIER}+Z undo."
)
TRUTH_COLUMN = "state"


class LabelCellsWidget(QWidget):
    """Give cells a state by click or key (see :data:`KEYS_HELP`); labels are saved in the project as made."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.store: LabelStore | None = None
        self.cells = ComboBox(label="cells", choices=lambda _w=None: cells_layer_names(self.viewer))
        self.project = ProjectField(project_state(napari_viewer))
        self.project.state.changed.connect(lambda _p: self.open_store())
        self.labels_file = QLabel("")
        self.labels_file.setWordWrap(True)
        self.labels_file.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # a long path
        self.t_from = SpinBox(label="from frame", min=0, max=100000)
        self.t_to = SpinBox(label="to frame", min=0, max=100000)
        form = Container(widgets=[self.cells])
        frames = Container(widgets=[self.t_from, self.t_to], labels=True)

        self.classes = QListWidget()
        self.classes.addItems(DEFAULT_CLASSES)
        self.classes.setCurrentRow(0)
        self.classes.setMaximumHeight(110)
        self.new_class = LineEdit(label="new class")
        self.counts = QLabel("no labels yet")
        self.counts.setWordWrap(True)
        self.click_to_label = QCheckBox("click a cell to label it with the chosen class")
        self.click_to_label.setChecked(True)

        buttons = {
            "open": ("Open labels", self.open_store),
            "add": ("Add class", self.add_class),
            "label": ("Label selected", lambda: self.label_selected(self.current_class())),
            "unlabel": ("Unlabel selected", lambda: self.label_selected("")),
            "undo": ("Undo", self.undo),
            "propagate": ("Propagate along track", self.propagate_selected),
            "import": ("Import CSV...", self._import_csv_dialog),
            "export": ("Export CSV...", self._export_csv_dialog),
            "truth": ("Import simulator truth...", self._import_truth_dialog),
            "truth_layer": ("Labels from 'true states'", lambda: self.import_truth(self._truth_layer_name())),
        }
        self.buttons = {}
        grid = QGridLayout()
        for i, (key, (text, slot)) in enumerate(buttons.items()):
            button = QPushButton(text)
            button.clicked.connect(slot)
            self.buttons[key] = button
            grid.addWidget(button, i // 2, i % 2)

        layout = QVBoxLayout(self)
        layout.addWidget(self.project)
        layout.addWidget(form.native)
        layout.addWidget(self.labels_file)
        keys = QLabel(KEYS_HELP)
        keys.setWordWrap(True)
        layout.addWidget(QLabel("classes"))
        layout.addWidget(self.classes)
        layout.addWidget(Container(widgets=[self.new_class]).native)
        layout.addWidget(frames.native)
        layout.addWidget(self.click_to_label)
        layout.addLayout(grid)
        layout.addWidget(self.counts)
        layout.addWidget(keys)
        layout.addStretch()
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(lambda _e=None: self.cells.reset_choices())
        self.cells.changed.connect(lambda _v=None: self.open_store())

    # --- layer and store -------------------------------------------------------------
    @property
    def layer(self) -> napari.layers.Points | None:
        """The Points layer of cells being labelled."""
        name = self.cells.value
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def objects(self) -> pd.DataFrame:
        """The cells of the chosen layer as an objects table."""
        from ...core.objects import validate_objects

        return validate_objects(self.layer.features)

    def open_store(self) -> None:
        """Load (or start) the labels of the project folder and bind keys and clicks on the layer."""
        layer = self.layer
        if layer is None or not self.project.value:
            self.store = None
            self.labels_file.setText("Choose a project and a cells layer: labels are saved in the project.")
            return
        from ...core.labelling import LabelStore

        self.store = LabelStore(Path(self.project.value) / "labels.csv")
        self.labels_file.setText(f"labels saved to {self.store.path}")
        self._bind(layer)
        self._refresh()

    def _bind(self, layer: napari.layers.Points) -> None:
        keys = {"I": CellState.INTERPHASE.value, "M": CellState.METAPHASE.value}
        for key, name in keys.items():
            layer.bind_key(f"{MODIFIER}-{key}", lambda _layer, name=name: self.label_selected(name), overwrite=True)
        for k in range(1, 10):
            layer.bind_key(f"{MODIFIER}-{k}", lambda _layer, k=k: self._label_with_row(k - 1), overwrite=True)
        layer.bind_key(f"{MODIFIER}-U", lambda _layer: self.label_selected(""), overwrite=True)
        layer.bind_key(f"{MODIFIER}-Z", lambda _layer: self.undo(), overwrite=True)
        if self._on_click not in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.append(self._on_click)

    # --- actions ---------------------------------------------------------------------
    def current_class(self) -> str:
        """The class chosen in the list."""
        item = self.classes.currentItem()
        return item.text() if item is not None else DEFAULT_CLASSES[0]

    def add_class(self) -> None:
        """Add the class typed in the box (letters, digits, spaces, - and _)."""
        name = self.new_class.value.strip()
        existing = [self.classes.item(i).text() for i in range(self.classes.count())]
        if not name or name in existing:
            return
        if not all(ch.isalnum() or ch in " -_" for ch in name):
            self.counts.setText(f"'{name}' is not a valid class name: use letters, digits, spaces, - and _.")
            return
        self.classes.addItem(name)
        self.new_class.value = ""

    def _label_with_row(self, row: int) -> None:
        if row < self.classes.count():
            self.label_selected(self.classes.item(row).text())

    def _selected_objects(self) -> pd.DataFrame:
        objects = self.objects()
        return objects.iloc[sorted(self.layer.selected_data)] if self.layer.selected_data else objects.iloc[:0]

    def label_selected(self, name: str) -> int:
        """Label the selected cells with ``name`` ("" removes labels); returns how many."""
        if self.store is None:
            self.open_store()
        if self.store is None:
            return 0
        chosen = self._selected_objects()
        if chosen.empty:
            self.counts.setText("Select cells first (or click a cell with 'click a cell' on).")
            return 0
        changed = self.store.assign(chosen, name)
        self._refresh()
        return changed

    def label_at(self, position, name: str | None = None) -> int:
        """Label the cell nearest to a (t, y, x) data position in the same frame."""
        if self.store is None:
            self.open_store()
        if self.store is None:
            return 0
        from ...core.labelling import nearest_object

        t, y, x = (float(v) for v in position[-3:])
        hit = nearest_object(self.objects(), round(t), y, x, CLICK_RADIUS_PX)
        if hit.empty:
            return 0
        self.store.assign(hit, self.current_class() if name is None else name)
        self.t_from.value = self.t_to.value = int(hit["t"].iloc[0])
        self.layer.selected_data = {int(np.flatnonzero(self.objects()["object_id"] == hit["object_id"].iloc[0])[0])}
        self._refresh()
        return 1

    def _on_click(self, layer, event):
        if self.click_to_label.isChecked() and layer.mode == "pan_zoom":
            self.label_at(layer.world_to_data(event.position))

    def propagate_selected(self) -> int:
        """Give the selected cell's label to its whole track between the chosen frames."""
        chosen = self._selected_objects()
        if chosen.empty or self.store is None:
            self.counts.setText("Select one labelled cell, set the frame range, then propagate.")
            return 0
        row = chosen.iloc[0]
        label = self.store.labels_for(chosen.iloc[[0]]).iloc[0] or self.current_class()
        changed = self.store.propagate(self.objects(), int(row["track_id"]), label, self.t_from.value, self.t_to.value)
        self._refresh()
        return changed

    def undo(self) -> None:
        """Undo the last change."""
        if self.store is not None and self.store.undo():
            self._refresh()

    def import_csv(self, path: str) -> int:
        """Add labels from a CSV (matched by frame and position)."""
        changed = self.store.import_csv(path, self.objects())
        self._refresh()
        return changed

    def import_truth(self, source: str, confirm: Callable[[int], bool] | None = None) -> int:
        """Add the simulator's true states to the labels: from a ground_truth.csv or a Points layer's ``state``.

        The truth merges with the user's labels. Where it differs from a label the user made, ``confirm(n)`` is
        asked whether to replace those ``n`` labels (default: a question box); they are kept when it says no.
        Returns how many labels were added or changed.
        """
        if self.store is None:
            self.open_store()
        if self.store is None:
            return 0
        if source in self.viewer.layers:
            layer = self.viewer.layers[source]
            truth = layer.features.assign(t=layer.data[:, -3], y=layer.data[:, -2], x=layer.data[:, -1])
        else:
            import pandas as pd

            truth = pd.read_csv(source)
        if TRUTH_COLUMN not in truth.columns:
            raise ValueError(f"{source} has no '{TRUTH_COLUMN}' column: choose the simulator's ground truth.")
        incoming = truth.rename(columns={TRUTH_COLUMN: "label"})[["t", "y", "x", "label"]].astype({"label": str})
        matched, clash = self.store.incoming_labels(incoming, self.objects())
        if clash.any() and not (confirm or self._ask_replace)(int(clash.sum())):
            matched = matched[~clash]
        changed = self.store.merge(matched)
        self._refresh()
        return changed

    def _ask_replace(self, n: int) -> bool:
        answer = QMessageBox.question(
            self, "Replace your labels?", f"The truth differs from {n} labels you made. Replace them?"
        )
        return answer == QMessageBox.StandardButton.Yes

    def _truth_layer_name(self) -> str:
        return next((layer.name for layer in self.viewer.layers if TRUTH_COLUMN in getattr(layer, "features", {})), "")

    def _import_csv_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import labels", filter="CSV (*.csv)")
        if path:
            self.import_csv(path)

    def _export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", filter="CSV (*.csv)")
        if path and self.store is not None:
            self.store.export_csv(path)

    def _import_truth_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Simulator ground truth", filter="ground_truth.csv (*.csv)")
        if path:
            self.import_truth(path)

    # --- display ---------------------------------------------------------------------
    def _refresh(self) -> None:
        layer = self.layer
        if layer is None or self.store is None:
            return
        features = layer.features.copy()
        features["label"] = self.store.labels_for(self.objects()).to_numpy()
        layer.features = features
        layer.border_color = label_colours(features["label"])
        set_legend(self.viewer)
        counts = self.store.counts()
        self.counts.setText(", ".join(f"{k}: {v}" for k, v in counts.items()) or "no labels yet")
