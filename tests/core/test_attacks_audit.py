"""The domain audit tells models that read the central cell from models that read the surroundings."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_cellstate.core.attacks import AttackError, SchemeModel, prepare_audit_cells, run_audit
from napari_cellstate.core.attacks.central import central_latents
from napari_cellstate.core.attacks.masks import central_nucleus_masks, foreground_masks
from napari_cellstate.core.vae.fit import load_default_vae

from ._attack_models import CornerBrightness, DiskBrightness, LinearHead


@pytest.fixture(scope="module")
def cells(head_data):
    crops = np.asarray(head_data.crops[:60], dtype=np.float32)
    return prepare_audit_cells(crops, central_latents=[0, 1, 2])


def test_central_nucleus_mask_finds_the_cell(head_data):
    crops = np.asarray(head_data.crops[:300], dtype=np.float32)
    masks = central_nucleus_masks(crops)
    centre = crops.shape[-1] // 2
    assert masks[:, centre, centre].mean() > 0.9
    r = np.corrcoef(masks.sum(axis=(1, 2)), head_data.factors["area"].to_numpy()[:300])[0, 1]
    assert r > 0.8


def test_replacing_the_surroundings_keeps_the_nucleus_and_removes_neighbours(cells):
    grown = ndimage.binary_dilation(cells.nuclei, iterations=3, structure=np.ones((1, 3, 3), bool))
    before = (foreground_masks(cells.crops) & ~grown).mean(axis=(1, 2))
    after = (foreground_masks(cells.replaced) & ~grown).mean(axis=(1, 2))
    assert before.mean() > 0.03  # neighbours cover about 5 % of a crop (about one per crop, as in real crops)
    assert after.mean() < 0.2 * before.mean()
    inside = [np.corrcoef(a[m], b[m])[0, 1] for a, b, m in zip(cells.crops, cells.replaced, cells.nuclei, strict=True)]
    assert np.median(inside) > 0.99  # the nucleus itself is the same, up to the new standardisation


def test_audit_separates_a_central_reader_from_a_corner_reader(cells):
    size = cells.crops.shape[-1]
    central = run_audit(SchemeModel(DiskBrightness(size, radius=6), 1, "disk"), cells, n_minimal=20)
    corner = run_audit(SchemeModel(CornerBrightness(), 1, "corner"), cells, n_minimal=20)
    assert central["central_energy_share"] > 0.8 > 0.05 > corner["central_energy_share"]
    assert central["rotation_disagreement"] == 0.0 < corner["rotation_disagreement"]
    assert central["outside_replaced_flip_rate"] < corner["outside_replaced_flip_rate"]
    assert central["frozen_central_flip_rate"] is None  # Scheme 1 has no latents
    assert len(central["noise_flip_rate"]) == 3
    # a model linear in the pixels has one minimal ε, whichever attack searches it
    assert central["minimal_flipped_share"] == central["minimal_flipped_share_fgsm"] > 0.5
    assert central["median_minimal_epsilon"] == pytest.approx(central["median_minimal_epsilon_fgsm"])


def test_a_head_reading_the_area_latent_puts_most_energy_on_the_nucleus_and_its_edge(cells, head_data):
    area = head_data.factors["area"].to_numpy()
    r = [abs(np.corrcoef(head_data.latents[:, j], area)[0, 1]) for j in range(head_data.latents.shape[1])]
    weights = torch.zeros(head_data.latents.shape[1])
    weights[int(np.argmax(r))] = 1.0
    row = run_audit(SchemeModel(LinearHead(weights), 3, "area", load_default_vae()[0]), cells, n_minimal=3)
    assert row["central_energy_share"] > 0.5 > row["central_area_share"]
    # the ring across the thresholded edge: part of the energy lies just outside the mask
    assert row["nucleus_energy_share"] < row["central_energy_share"] - 0.05


def test_shortcut_test_flips_only_heads_reading_surroundings(cells):
    vae = load_default_vae()[0]
    nucleus_only = torch.zeros(32)
    nucleus_only[[0, 1, 2]] = 1.0
    surroundings = torch.zeros(32)
    surroundings[[0, 9]] = torch.tensor([1.0, 4.0])
    reads_nucleus = run_audit(SchemeModel(LinearHead(nucleus_only), 3, "nucleus", vae), cells, n_minimal=3)
    reads_more = run_audit(SchemeModel(LinearHead(surroundings), 2, "shortcut", vae), cells, n_minimal=3)
    assert reads_nucleus["frozen_central_flip_rate"] == 0.0
    assert reads_more["frozen_central_flip_rate"] > 0.3
    assert reads_nucleus["frozen_latents"] == ["z0", "z1", "z2"]


def test_latent_roles_pick_nucleus_latents_on_synthetic_data(head_data):
    chosen = central_latents(head_data.latents, head_data.factors, head_data.labels)
    named = [head_data.input_names[j] for j in chosen]
    assert chosen
    assert not any("neighbour" in name for name in named)


def test_audit_needs_two_cells(head_data):
    with pytest.raises(AttackError, match="two test cells"):
        prepare_audit_cells(np.asarray(head_data.crops[:1]), [])
