"""Latent explorer: encode a project's crops, name the latents, traverse them, move a cell's latents."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import napari
import numpy as np
from magicgui.widgets import Container, LineEdit
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFormLayout, QLabel, QSlider, QVBoxLayout, QWidget

from ...core.progress import Progress
from .._layers import CELLS_LAYER, grid_labels_layer, show_beside
from .._project import ProjectField, project_state
from .._workers import LatestCall, RunPanel

if TYPE_CHECKING:
    import pandas as pd

PACKAGED = "(packaged model)"
TRAVERSAL_LAYER = "cellstate latent traversal"
EXPLORER_LAYER = "cellstate latent explorer"
TRAVERSAL_LABELS = "cellstate traversal labels"
TRAVERSAL_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
N_SLIDERS = 6
SLIDER_STEPS = 60  # -3 .. 3 in steps of 0.1


class LatentExplorerWidget(QWidget):
    """Encode crops with the β-TCVAE and explore what each latent draws."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.model = None
        self.objects: pd.DataFrame | None = None
        self.base = None
        self.latent_labels: list[str] = []
        self.pictures = LatestCall()  # traversal grid and decoded cell, made by the decoder off the GUI thread
        self.project = ProjectField(project_state(napari_viewer))
        self.model_path = LineEdit(label="model", value=PACKAGED)
        self.chosen = LineEdit(label="latents to show", value="")
        self.panel = RunPanel("Encode crops")
        self.names = QLabel("Encode the project's crops to name the latents.")
        self.names.setWordWrap(True)
        self.sliders: list[QSlider] = []
        self.slider_labels: list[QLabel] = []
        sliders = QFormLayout()
        for _ in range(N_SLIDERS):
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-SLIDER_STEPS // 2, SLIDER_STEPS // 2)
            slider.valueChanged.connect(self._decode_moved)
            label = QLabel("-")
            self.sliders.append(slider)
            self.slider_labels.append(label)
            sliders.addRow(label, slider)
        layout = QVBoxLayout(self)
        layout.addWidget(self.project)
        layout.addWidget(Container(widgets=[self.model_path, self.chosen]).native)
        layout.addWidget(self.panel)
        layout.addWidget(self.names)
        layout.addLayout(sliders)
        layout.addStretch()
        self.panel.run_button.clicked.connect(self.encode)
        self.chosen.changed.connect(lambda _v=None: self.show_selected())

    def encode(self) -> None:
        """Load the model and encode every crop of the project in a worker; then name latents, show a cell."""
        if not self.project.value:
            self.panel.fail("Choose a project folder first (Project…).")
            return
        self.panel.start(_iter_load_and_encode, self._encoded, self.project.value, self.model_path.value.strip())

    @property
    def busy(self) -> bool:
        """Whether the explorer's pictures are still being made."""
        return self.pictures.busy

    def _encoded(self, returned) -> None:
        from ...core.objects import latent_name_list

        self.model, objects, named, self.latent_labels = returned
        self.objects = objects
        dims = self.model.cfg.n_latents
        best_named = np.argsort(-np.abs(named["r"].to_numpy()))
        if not self.chosen.value.strip():  # start with the latents most tied to morphology
            self.chosen.value = ", ".join(str(j) for j in best_named[:N_SLIDERS])
        self.names.setText("\n".join(self.latent_labels[j] for j in best_named[:8]))
        if CELLS_LAYER in self.viewer.layers:
            cells = self.viewer.layers[CELLS_LAYER]
            latents = objects[["object_id", *latent_name_list(dims)]]
            features = cells.features.drop(columns=[c for c in latents.columns[1:] if c in cells.features])
            cells.features = features.merge(latents, on="object_id", how="left")
            cells.selected_data.events.items_changed.disconnect(self._selection_changed)
            cells.selected_data.events.items_changed.connect(self._selection_changed)
        self.panel.done(f"encoded {len(objects)} crops into {dims} latents")
        self.show_selected()

    def _selection_changed(self, _event=None) -> None:
        self.show_selected()

    def chosen_latents(self) -> list[int]:
        """Latent indices typed in the box (e.g. "3, 17, 21, 29")."""
        try:
            picked = [int(v) for v in self.chosen.value.replace(",", " ").split()]
        except ValueError:
            return []
        return [j for j in picked if self.model is not None and 0 <= j < self.model.cfg.n_latents][:N_SLIDERS]

    def _selected_latents(self) -> np.ndarray:
        import pandas as pd

        from ...core.objects import latent_name, latent_name_list

        dims = self.model.cfg.n_latents
        if CELLS_LAYER in self.viewer.layers and self.viewer.layers[CELLS_LAYER].selected_data:
            cells = self.viewer.layers[CELLS_LAYER]
            row = cells.features.iloc[sorted(cells.selected_data)[-1]]
            if latent_name(dims - 1) in row and not pd.isna(row[latent_name(dims - 1)]):
                return row[latent_name_list(dims)].to_numpy(dtype=np.float32)
        return np.zeros(dims, np.float32)

    def show_selected(self) -> None:
        """Traversal grid and sliders for the selected cell (or the latent origin); decoded in a worker."""
        if self.model is None or self.objects is None:
            return
        base, latents = self._selected_latents(), self.chosen_latents()
        self.pictures.submit(
            _pictures, lambda made: self._show_selected(base, latents, *made), self.model, base, latents
        )

    def _show_selected(
        self, base: np.ndarray, latents: list[int], grid: np.ndarray, cell: np.ndarray
    ) -> Generator[None, None, None]:
        """The pictures made in the worker, a layer per turn of the event loop (napari draws between them)."""
        from ...core.objects import latent_name

        self.base = base
        self._show(TRAVERSAL_LAYER, grid)
        yield
        self._label_traversal(latents, grid.shape[0] // max(len(latents), 1))
        yield
        for k, (slider, label) in enumerate(zip(self.sliders, self.slider_labels, strict=True)):
            visible = k < len(latents)
            slider.setVisible(visible)
            label.setVisible(visible)
            if visible:
                slider.blockSignals(True)
                slider.setValue(int(np.clip(round(self.base[latents[k]] * 10), -30, 30)))
                slider.blockSignals(False)
                label.setText(latent_name(latents[k]))
        self._show(EXPLORER_LAYER, cell)

    def _decode_moved(self, _value=None) -> None:
        if self.model is None or self.base is None:
            return
        z = self.base.copy()
        for j, slider in zip(self.chosen_latents(), self.sliders, strict=False):
            z[j] = slider.value() / 10
        self.pictures.submit(_decoded, lambda image: self._show(EXPLORER_LAYER, image), self.model, z)

    def _show(self, name: str, image: np.ndarray) -> None:
        """The image right of what the viewer holds, at the movie's pixel size; the cells layer stays active."""
        px = float(self.viewer.layers[CELLS_LAYER].scale[-1]) if CELLS_LAYER in self.viewer.layers else 1.0
        show_beside(self.viewer, image, name, px, contrast_limits=(-2.0, 4.0))

    def _label_traversal(self, latents: list[int], size: int) -> None:
        """Row labels (latent names) and column labels (values) over the traversal grid."""
        from ...core.objects import latent_name

        rows = [_short_name(self.latent_labels[j]) if j < len(self.latent_labels) else latent_name(j) for j in latents]
        columns = [f"{v:g}" for v in TRAVERSAL_VALUES]
        data, kwargs, _ = grid_labels_layer(self.viewer.layers[TRAVERSAL_LAYER], rows, columns, size, TRAVERSAL_LABELS)
        if TRAVERSAL_LABELS in self.viewer.layers:
            layer = self.viewer.layers[TRAVERSAL_LABELS]
            if len(layer.data) == len(data):  # the same grid for another cell: new names in place, no new layer
                layer.features = kwargs["features"]
                layer.data = data
                layer.metadata = kwargs["metadata"]
                return
            self.viewer.layers.remove(TRAVERSAL_LABELS)
        active = self.viewer.layers.selection.active
        self.viewer.add_points(data, **kwargs)
        if active is not None:
            self.viewer.layers.selection.active = active


def _short_name(label: str) -> str:
    """``z11 area`` from ``z11 ↔ area, r = 0.85``: short enough to sit beside a traversal row."""
    latent, _, rest = label.partition(" ↔ ")
    return f"{latent} {rest.split(',')[0].split(' (')[0]}".strip()


def _pictures(model, base: np.ndarray, latents: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The traversal grid around ``base`` and ``base`` decoded (in a worker)."""
    from ...core.vae.encode import traversal_grid

    grid = traversal_grid(model, base, latents, np.asarray(TRAVERSAL_VALUES))
    return grid, _decoded(model, base)


def _decoded(model, z: np.ndarray) -> np.ndarray:
    """One latent vector (n_latents,) decoded to its crop (S, S) (in a worker)."""
    from ...core.vae.encode import decode_latents

    return decode_latents(model, z[None])[0]


def _iter_load_and_encode(project: str, model_path: str) -> Generator[Progress, None, tuple]:
    """Load the packaged β-TCVAE (or the one at ``model_path``), encode the project, name the latents: off the GUI."""
    from ...core.objects import latent_name_list
    from ...core.vae import load_vae
    from ...core.vae.encode import iter_encode_project
    from ...core.vae.fit import load_default_vae
    from ...core.vae.naming import latent_names, name_latents

    yield Progress(0, 1, "loading the β-TCVAE ...", stage="loading")
    model = load_default_vae()[0] if model_path in ("", PACKAGED) else load_vae(model_path)[0]
    objects = yield from iter_encode_project(project, model)
    named = name_latents(objects[latent_name_list(model.cfg.n_latents)].to_numpy(), objects)
    return model, objects, named, latent_names(named)
