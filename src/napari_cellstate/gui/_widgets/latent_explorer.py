"""Latent explorer: encode a project's crops, name the latents, traverse them, move a cell's latents."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import Container, LineEdit
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFormLayout, QLabel, QSlider, QVBoxLayout, QWidget

from ...core.vae.fit import decode_latents, iter_encode_project, load_default_vae, traversal_grid
from ...core.vae.naming import latent_names, name_latents
from .._layers import CELLS_LAYER
from .._workers import RunPanel

PACKAGED = "(packaged model)"
TRAVERSAL_LAYER = "cellstate latent traversal"
EXPLORER_LAYER = "cellstate latent explorer"
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
        self.project = LineEdit(label="project folder", value=str(Path.cwd() / "cellstate-project"))
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
        layout.addWidget(Container(widgets=[self.project, self.model_path, self.chosen]).native)
        layout.addWidget(self.panel)
        layout.addWidget(self.names)
        layout.addLayout(sliders)
        layout.addStretch()
        self.panel.run_button.clicked.connect(self.encode)
        self.chosen.changed.connect(lambda _v=None: self.show_selected())

    def load_model(self):
        """The packaged β-TCVAE, or the one named in the model box."""
        from ...core.vae import load_vae

        path = self.model_path.value.strip()
        self.model = load_default_vae()[0] if path in ("", PACKAGED) else load_vae(path)[0]
        return self.model

    def encode(self) -> None:
        """Encode every crop of the project in a worker; then name latents and show the selected cell."""
        model = self.load_model()
        self.panel.start(iter_encode_project, self._encoded, self.project.value, model)

    def _encoded(self, objects: pd.DataFrame) -> None:
        self.objects = objects
        dims = self.model.cfg.n_latents
        mu = objects[[f"z{j}" for j in range(dims)]].to_numpy()
        named = name_latents(mu, objects)
        best_named = np.argsort(-np.abs(named["r"].to_numpy()))
        if not self.chosen.value.strip():  # start with the latents most tied to morphology
            self.chosen.value = ", ".join(str(j) for j in best_named[:N_SLIDERS])
        labels = latent_names(named)
        self.names.setText("\n".join(labels[j] for j in best_named[:8]))
        if CELLS_LAYER in self.viewer.layers:
            cells = self.viewer.layers[CELLS_LAYER]
            latents = objects[["object_id", *[f"z{j}" for j in range(dims)]]]
            features = cells.features.drop(columns=[c for c in latents.columns[1:] if c in cells.features])
            cells.features = features.merge(latents, on="object_id", how="left")
            cells.selected_data.events.items_changed.connect(lambda _e=None: self.show_selected())
        self.panel.status.setText(f"encoded {len(objects)} crops into {dims} latents")
        self.show_selected()

    def chosen_latents(self) -> list[int]:
        """Latent indices typed in the box (e.g. "3, 17, 21, 29")."""
        try:
            picked = [int(v) for v in self.chosen.value.replace(",", " ").split()]
        except ValueError:
            return []
        return [j for j in picked if self.model is not None and 0 <= j < self.model.cfg.n_latents][:N_SLIDERS]

    def _selected_latents(self) -> np.ndarray:
        dims = self.model.cfg.n_latents
        if CELLS_LAYER in self.viewer.layers and self.viewer.layers[CELLS_LAYER].selected_data:
            cells = self.viewer.layers[CELLS_LAYER]
            row = cells.features.iloc[sorted(cells.selected_data)[-1]]
            if f"z{dims - 1}" in row and not pd.isna(row[f"z{dims - 1}"]):
                return row[[f"z{j}" for j in range(dims)]].to_numpy(dtype=np.float32)
        return np.zeros(dims, np.float32)

    def show_selected(self) -> None:
        """Traversal grid and sliders for the selected cell (or the latent origin)."""
        if self.model is None or self.objects is None:
            return
        self.base = self._selected_latents()
        latents = self.chosen_latents()
        grid = traversal_grid(self.model, self.base, latents)
        self._show(TRAVERSAL_LAYER, grid)
        for k, (slider, label) in enumerate(zip(self.sliders, self.slider_labels, strict=True)):
            visible = k < len(latents)
            slider.setVisible(visible)
            label.setVisible(visible)
            if visible:
                slider.blockSignals(True)
                slider.setValue(int(np.clip(round(self.base[latents[k]] * 10), -30, 30)))
                slider.blockSignals(False)
                label.setText(f"z{latents[k]}")
        self._decode_moved()

    def _decode_moved(self, _value=None) -> None:
        if self.model is None or self.base is None:
            return
        z = self.base.copy()
        for j, slider in zip(self.chosen_latents(), self.sliders, strict=False):
            z[j] = slider.value() / 10
        self._show(EXPLORER_LAYER, decode_latents(self.model, z[None])[0])

    def _show(self, name: str, image: np.ndarray) -> None:
        if name in self.viewer.layers:
            self.viewer.layers[name].data = image
            return
        placement = {}
        if CELLS_LAYER in self.viewer.layers:  # beside the movie, at its pixel size
            cells = self.viewer.layers[CELLS_LAYER]
            px = float(cells.scale[-1])
            right = float(cells.extent.world[1][-1]) + 40 * px
            if name == EXPLORER_LAYER and TRAVERSAL_LAYER in self.viewer.layers:
                right += self.viewer.layers[TRAVERSAL_LAYER].data.shape[1] * px + 10 * px
            placement = {"scale": (px, px), "translate": (0.0, right)}
        self.viewer.add_image(image, name=name, colormap="gray", contrast_limits=(-2.0, 4.0), **placement)
