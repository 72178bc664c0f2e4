"""Train or fine-tune the β-TCVAE on a project's crops, with live loss curves."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import CheckBox, Container, FloatSpinBox, LineEdit, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ...core.config import TrainConfig, VAEConfig
from ...core.progress import Progress
from .._figures import FigureSlot, rendered
from .._project import ProjectField, project_state
from .._workers import LatestCall, RunPanel

CURVES = ("recon", "mi", "tc", "dwkl")
REDRAW_EVERY_STEPS = 5


class TrainVAEWidget(QWidget):
    """Pick a project, a few settings and Train; the four loss terms are plotted as training runs."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = ProjectField(project_state(napari_viewer))
        self.output = LineEdit(label="save model as", value="")
        self.output.tooltip = "Where the trained model goes; empty: <project>/models/vae"
        self.fine_tune = CheckBox(text="start from the packaged model", value=True)
        self.epochs = SpinBox(label="epochs", value=5, min=1, max=1000)
        self.batch_size = SpinBox(label="batch size", value=128, min=2, max=8192)
        self.beta = FloatSpinBox(label="β (total correlation)", value=6.0, min=0.0, max=100.0)
        self.beta.tooltip = "β of a new model; a fine-tune keeps the packaged model's loss weights"
        self.beta.enabled = not self.fine_tune.value
        self.fine_tune.changed.connect(lambda checked: setattr(self.beta, "enabled", not checked))
        self.panel = RunPanel("Train")
        self.curves = FigureSlot("The loss curves appear here as training runs.")  # drawn in a worker
        self.plotter = LatestCall()
        layout = QVBoxLayout(self)
        layout.addWidget(self.project)
        fields = (self.output, self.fine_tune, self.epochs, self.batch_size, self.beta)
        layout.addWidget(Container(widgets=list(fields)).native)  # every field with its label
        layout.addWidget(self.panel)
        layout.addWidget(self.curves)
        self.history: dict[str, list[float]] = {name: [] for name in CURVES}
        self.saved: Path | None = None
        self.panel.run_button.clicked.connect(self.train)

    def train(self) -> None:
        """Load the project's training crops and train, both in a worker thread."""
        from ...core.vae.fit import DEFAULT_VAE_PATH

        if not self.project.value:
            self.panel.fail("Choose a project folder first (Project…).")
            return
        self.history = {name: [] for name in CURVES}
        training = TrainConfig(epochs=self.epochs.value, batch_size=self.batch_size.value)
        start_from = DEFAULT_VAE_PATH if self.fine_tune.value else None
        weights = {} if start_from else {"beta": self.beta.value}
        worker = self.panel.start(
            _iter_load_and_train, self._save, self.project.value, weights, training, start_from=start_from
        )
        worker.yielded.connect(self._record)

    def output_path(self) -> Path:
        """Where the model is saved: the box's path, else ``<project>/models/vae``."""
        return Path(self.output.value) if self.output.value.strip() else Path(self.project.value) / "models" / "vae"

    def _record(self, event: Progress) -> None:
        if event.kind == "epoch_end" or "recon" not in event.metrics:
            return
        for name in CURVES:
            self.history[name].append(float(event.metrics.get(name, np.nan)))
        if len(self.history["recon"]) % REDRAW_EVERY_STEPS == 1:
            self.draw()

    def draw(self) -> None:
        """Plot the loss terms against the training step (drawn in a worker; ``plotter.busy`` meanwhile)."""
        history = {name: list(values) for name, values in self.history.items()}
        self.plotter.submit(_loss_curves, self.curves.set_picture, history)

    def _save(self, result) -> None:
        from ...core.vae import save_vae

        model, card = result
        card["data"]["source"] = self.project.value
        self.saved = save_vae(self.output_path(), model, card)
        self.draw()
        self.panel.done(f"saved {self.saved}; use it in the Latents step's model box")


def _loss_curves(history: dict[str, list[float]]) -> tuple:
    """The loss terms against the training step, drawn (in a worker)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 3), tight_layout=True)
    axes = figure.add_subplot(1, 1, 1)
    for name in CURVES:
        if history[name]:
            axes.plot(history[name], label=name)
    axes.set_yscale("symlog")
    axes.set_xlabel("step")
    axes.legend(fontsize=7)
    return rendered(figure)


def _iter_load_and_train(project: str, weights: dict, training: TrainConfig, start_from) -> Generator:
    """Read the project's training crops, then train or fine-tune: off the GUI thread."""
    from ...core.project import load_crop_dataset
    from ...core.vae.fit import iter_train_vae

    yield Progress(0, 1, "reading the training crops ...", stage="loading")
    dataset = load_crop_dataset(project)
    rows = np.flatnonzero((dataset.objects["split"] == "train").to_numpy())
    crops = np.asarray(dataset.crops[rows])
    vae = VAEConfig(crop_size_px=int(crops.shape[-1]), **weights)
    return (yield from iter_train_vae(crops, vae, training, start_from=start_from))
