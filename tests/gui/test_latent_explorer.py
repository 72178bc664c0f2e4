import numpy as np
import pytest

from napari_cellstate.core.config import CropConfig, VAEConfig
from napari_cellstate.core.crops import extract_crops
from napari_cellstate.core.objects import validate_objects
from napari_cellstate.core.project import open_or_create, write_crop_dataset
from napari_cellstate.core.vae import BetaTCVAE, save_vae
from napari_cellstate.gui._layers import CELLS_LAYER, cells_layer
from napari_cellstate.gui._widgets.latent_explorer import EXPLORER_LAYER, TRAVERSAL_LAYER, LatentExplorerWidget

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_encode_name_traverse_and_move_latents(make_napari_viewer, qtbot, small_sample, tmp_path):
    objects = validate_objects(small_sample.objects.assign(object_id=range(1, len(small_sample.objects) + 1)))
    result = extract_crops(small_sample.movie, objects, CropConfig(size_px=32))
    write_crop_dataset(open_or_create(tmp_path / "p"), result, "small", 0.33)
    model = BetaTCVAE(VAEConfig(crop_size_px=32, n_latents=4, channels=(4, 8), dense_units=32))
    model_path = save_vae(tmp_path / "model", model, {})

    viewer = make_napari_viewer()
    data, kwargs, _ = cells_layer(objects, 0.33)
    viewer.add_points(data, **kwargs)
    widget = LatentExplorerWidget(viewer)
    widget.project.value = str(tmp_path / "p")
    widget.model_path.value = str(model_path)
    widget.encode()
    qtbot.waitUntil(lambda: widget.panel.worker is None, timeout=60_000)
    assert widget.panel.last_error is None, widget.panel.status.text()

    cells = viewer.layers[CELLS_LAYER]
    assert {"z0", "z3"} <= set(cells.features.columns)
    assert cells.features["z0"].notna().all()
    assert "z" in widget.names.text()

    cells.selected_data = {3}
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)  # the decoder draws in a worker
    latents = widget.chosen_latents()
    assert 1 <= len(latents) <= 4
    assert viewer.layers[TRAVERSAL_LAYER].data.shape == (32 * len(latents), 32 * 7)
    np.testing.assert_allclose(widget.base, cells.features.loc[3, [f"z{j}" for j in range(4)]].to_numpy(float))
    before = viewer.layers[EXPLORER_LAYER].data.copy()
    widget.sliders[0].setValue(widget.sliders[0].value() + 20)
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert not np.allclose(before, viewer.layers[EXPLORER_LAYER].data)


def test_a_new_image_goes_right_of_the_grid_labels_text(make_napari_viewer):
    """The decoded cell lands beside the traversal grid's row names, not over them (the text ends are known)."""
    from napari_cellstate.gui._layers import grid_labels_layer, show_beside

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((100, 100), np.float32), scale=(0.33, 0.33))  # the movie
    grid = show_beside(viewer, np.zeros((2 * 64, 7 * 64), np.float32), TRAVERSAL_LAYER, 0.33)
    assert grid.translate[-1] > 100 * 0.33  # right of the movie
    rows = ["z11 area", "z24 orientation (sin 2θ)"]
    data, kwargs, _ = grid_labels_layer(grid, rows, [f"{v}" for v in range(-3, 4)], 64, "labels")
    labels = viewer.add_points(data, **kwargs)
    grid_right = grid.translate[-1] + 7 * 64 * 0.33
    assert grid_right < data[0][1] < data[1][1]  # row names start right of the grid, centred on their points
    text_right = labels.metadata["text_right"]
    assert text_right > labels.extent.world[1][-1]  # the text reaches past its points

    cell = show_beside(viewer, np.zeros((64, 64), np.float32), EXPLORER_LAYER, 0.33)
    assert cell.translate[-1] >= text_right
    assert viewer.layers.selection.active is not cell
