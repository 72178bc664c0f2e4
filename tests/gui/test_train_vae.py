import numpy as np
import pytest

from napari_cellstate.core.config import CropConfig
from napari_cellstate.core.crops import extract_crops
from napari_cellstate.core.objects import validate_objects
from napari_cellstate.core.project import open_or_create, write_crop_dataset
from napari_cellstate.core.vae import load_vae
from napari_cellstate.gui._widgets.train_vae import CURVES, TrainVAEWidget

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_fine_tuning_shows_loss_curves_and_saves_the_model(make_napari_viewer, qtbot, small_sample, tmp_path):
    objects = validate_objects(small_sample.objects.assign(object_id=range(1, len(small_sample.objects) + 1)))
    result = extract_crops(small_sample.movie, objects.iloc[:160], CropConfig())
    write_crop_dataset(open_or_create(tmp_path / "p"), result, "small", 0.33)
    widget = TrainVAEWidget(make_napari_viewer())
    widget.project.value = str(tmp_path / "p")
    widget.output.value = str(tmp_path / "tuned")
    widget.epochs.value = 1
    widget.batch_size.value = 32
    widget.train()
    qtbot.waitUntil(lambda: widget.panel.worker is None, timeout=120_000)
    assert widget.panel.last_error is None, widget.panel.status.text()
    assert all(len(widget.history[name]) >= 4 for name in CURVES)
    assert np.isfinite(widget.history["recon"]).all()
    qtbot.waitUntil(lambda: not widget.plotter.busy, timeout=30_000)
    assert len(widget.curves.figure.axes[0].lines) == len(CURVES)
    model, card = load_vae(widget.saved)
    assert model.cfg.n_latents == 32
    assert card["fine_tuned_from"]["path"].endswith("vae_default")
    assert not widget.beta.enabled  # a fine-tune keeps the packaged model's loss weights
    assert card["hyperparameters"]["vae"]["beta"] == card["fine_tuned_from"]["hyperparameters"]["vae"]["beta"]
    assert len(card["history"]) == 1


def test_a_folder_without_crops_is_explained(make_napari_viewer, qtbot, tmp_path):
    widget = TrainVAEWidget(make_napari_viewer())
    widget.project.value = str(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    widget.train()
    qtbot.waitUntil(lambda: widget.panel.worker is None, timeout=30_000)
    assert "project" in widget.panel.status.text()
