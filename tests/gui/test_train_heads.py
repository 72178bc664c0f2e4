import numpy as np
import pytest
import torch
from napari.utils.colormaps.standardize_color import transform_color

from napari_cellstate.core.config import CropConfig, HeadConfig, VAEConfig
from napari_cellstate.core.crops import extract_crops
from napari_cellstate.core.heads import MLPHead, save_head
from napari_cellstate.core.heads.fit import predict
from napari_cellstate.core.objects import validate_objects
from napari_cellstate.core.progress import run_to_completion
from napari_cellstate.core.project import open_or_create, write_crop_dataset
from napari_cellstate.core.states import STATE_COLOURS
from napari_cellstate.core.vae import BetaTCVAE
from napari_cellstate.core.vae.encode import iter_encode_project
from napari_cellstate.gui._layers import CELLS_LAYER, cells_layer
from napari_cellstate.gui._widgets.train_heads import TrainHeadsWidget

pytestmark = pytest.mark.gui

SCREENSHOT = "/tmp/train_heads_widget.png"


def _wait(panel, qtbot, timeout_s: float = 120) -> None:
    qtbot.waitUntil(lambda: panel.worker is None, timeout=int(timeout_s * 1000))


def _project(folder, objects, n_latents: int = 0, movie=None):
    """A crop dataset of 32 px crops (fast), encoded into ``n_latents`` by a small untrained β-TCVAE."""
    result = extract_crops(movie, objects, CropConfig(size_px=32))
    write_crop_dataset(open_or_create(folder), result, "small", 0.33)
    if n_latents:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            vae = BetaTCVAE(VAEConfig(crop_size_px=32, n_latents=n_latents, channels=(4, 8), dense_units=32))
        return run_to_completion(iter_encode_project(folder, vae))
    return None


@pytest.fixture
def small_objects(small_sample):
    return validate_objects(small_sample.objects.assign(object_id=range(1, len(small_sample.objects) + 1)))


@pytest.mark.slow
def test_train_dense_and_sparse_on_synthetic_data_then_save_and_load(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.window.resize(1400, 1000)
    widget = TrainHeadsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train heads")
    widget.synthetic.value = True
    widget.n_synthetic.value = 1500
    widget.seeds.value = 1
    widget.epochs.setValue(15)
    widget.project.value = str(tmp_path / "p")
    assert widget.chosen_schemes() == ["dense", "sparse"]
    widget.train()
    _wait(widget.panel, qtbot, 150)
    assert widget.panel.last_error is None, widget.panel.status.text()

    table = widget.table_text()
    assert set(table) == {"Scheme 2", "Scheme 3"}, table
    for column in table.values():
        assert float(column["test accuracy"].split()[0]) >= 90.0, table
        assert column["paper"].endswith("%")
    assert int(table["Scheme 3"]["head weights"].split()[0]) <= 31, table
    assert table["Scheme 2"]["head weights"] == "1040"
    assert "Scheme 3 keeps" in widget.findings.text()
    qtbot.waitUntil(lambda: widget.figure_worker is None, timeout=60_000)
    assert widget.figures["wiring"][0].axes, "the topology figure drew"
    assert widget.figures["subnetworks"]
    assert (tmp_path / "p" / "heads" / "scheme3_sparse_seed0.safetensors").exists()  # saved without a click
    assert widget.current_head().scheme == "sparse"

    qtbot.wait(200)
    viewer.screenshot(SCREENSHOT, canvas_only=False, flash=False)

    saved = widget.save_head(tmp_path / "p" / "heads" / "sparse")
    assert saved is not None
    assert saved.exists()
    label = widget.load_head(saved)
    assert widget.current.value == label
    loaded = widget.current_head()
    x = widget.result.data.latents[:50]
    np.testing.assert_allclose(predict(loaded.model, x), predict(_trained_sparse(widget), x), atol=1e-5)
    assert loaded.card["scheme"] == "sparse"


def _trained_sparse(widget):
    return next(h.model for k, h in widget.heads.items() if h.scheme == "sparse" and not k.startswith("loaded"))


def test_one_class_only_is_explained(make_napari_viewer, qtbot, small_sample, small_objects, tmp_path):
    objects = small_objects.iloc[:120].assign(label="interphase")
    _project(tmp_path / "one", objects, n_latents=4, movie=small_sample.movie)
    widget = TrainHeadsWidget(make_napari_viewer())
    widget.project.value = str(tmp_path / "one")
    widget.train()
    _wait(widget.panel, qtbot, 60)
    assert "only one class" in widget.panel.status.text()
    assert widget.result is None
    assert widget.table.rowCount() == 0
    assert not widget.apply_panel.run_button.isEnabled()
    assert widget.load_head(tmp_path / "no such head") is None
    assert "no such head" in widget.apply_panel.status.text()
    assert not widget.heads


@pytest.mark.slow
def test_apply_to_movie_colours_the_cells_by_predicted_class(
    make_napari_viewer, qtbot, small_sample, small_objects, tmp_path
):
    objects = small_objects.iloc[:200]
    encoded = _project(tmp_path / "p", objects, n_latents=4, movie=small_sample.movie)
    latents = np.array(encoded[[f"z{j}" for j in range(4)]], dtype=np.float32)
    head = MLPHead(HeadConfig(n_inputs=4, hidden=(4,)))
    with torch.no_grad():  # put the threshold at the median score: both classes appear
        head.layers[-1].bias -= float(np.median(predict(head, latents)))
    path = save_head(tmp_path / "p" / "heads" / "toy", head, {"scheme": "dense"})

    viewer = make_napari_viewer()
    data, kwargs, _ = cells_layer(objects, 0.33)
    viewer.add_points(data, **kwargs)
    widget = TrainHeadsWidget(viewer)
    widget.project.value = str(tmp_path / "p")
    assert widget.load_head(path) is not None
    assert widget.cells.value == CELLS_LAYER
    widget.apply()
    _wait(widget.apply_panel, qtbot, 60)
    assert widget.apply_panel.last_error is None, widget.apply_panel.status.text()

    cells = viewer.layers[CELLS_LAYER]
    classes = cells.features["head_class"].astype(str).to_numpy()
    assert set(classes) == {"interphase", "metaphase"}
    assert cells.features["head_score"].notna().all()
    for name in ("interphase", "metaphase"):
        expected = transform_color(STATE_COLOURS[name])[0][:3]
        np.testing.assert_allclose(
            cells.face_color[classes == name, :3], expected[None].repeat((classes == name).sum(), 0)
        )
    n_meta = int((classes == "metaphase").sum())
    assert f"{n_meta} of {len(objects)} cells" in widget.apply_panel.status.text()


@pytest.mark.slow
def test_sparsity_search_resumes_and_offers_the_chosen_head(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = TrainHeadsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train heads")
    widget.synthetic.value = True
    widget.n_synthetic.value = 600
    widget.project.value = str(tmp_path / "p")
    widget.trials.value = 2
    widget.search()
    _wait(widget.search_panel, qtbot, 150)
    assert widget.search_panel.last_error is None, widget.search_panel.status.text()
    assert widget.search_storage().exists()
    assert "2 trials" in widget.search_panel.status.text()
    chosen = [label for label in widget.heads if "Optuna" in label]
    assert chosen == [widget.current.value]
    assert widget.heads[chosen[0]].model.active_weights() < 1040
    assert widget.tabs.currentWidget() is widget.search_area

    widget.trials.value = 3  # the study is resumed: one more trial, not three
    widget.search()
    _wait(widget.search_panel, qtbot, 150)
    assert "3 trials" in widget.search_panel.status.text()
