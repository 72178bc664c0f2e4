"""Attacks: Captum's FGSM against the one-line formula, frozen latents, minimal ε, bad input."""

import math

import numpy as np
import pytest
import torch

from napari_cellstate.core.attacks import AttackError, SchemeModel, attack_cells
from napari_cellstate.core.attacks.fgsm import CROP_BOUNDS, fgsm, predicted_class, untargeted_loss
from napari_cellstate.core.attacks.minimal import minimal_epsilon
from napari_cellstate.core.config import CNNConfig, HeadConfig
from napari_cellstate.core.heads import CNNClassifier
from napari_cellstate.core.vae.fit import load_default_vae

from ._attack_models import BentHead, FormulaHead, LinearHead


@pytest.fixture(scope="module")
def vae():
    return load_default_vae()[0]


@pytest.fixture(scope="module")
def crops(head_data):
    return np.asarray(head_data.crops[:24], dtype=np.float32)


def test_captum_fgsm_is_the_one_line_formula(vae, crops):
    head = FormulaHead(offset=2.0)
    scheme = SchemeModel(head, 4, "formula", vae)
    model = scheme.image_model()
    x = torch.from_numpy(crops)
    epsilon = 0.5
    attacked = fgsm(model, x, epsilon, bounds=CROP_BOUNDS)

    xg = x.clone().requires_grad_(True)
    loss = untargeted_loss(model(xg), predicted_class(model, x)).sum()
    (grad,) = torch.autograd.grad(loss, xg)
    by_hand = torch.clamp(x + epsilon * torch.sign(grad), *CROP_BOUNDS)  # x̃ = x + ε·sign(∇ₓ L)
    clear = grad.abs() > 1e-6  # Captum leaves pixels with a vanishing gradient (|g| <= 1e-6) alone
    assert clear.float().mean() > 0.5
    torch.testing.assert_close(attacked, torch.where(clear, by_hand, x))
    assert float(attacked.max()) <= CROP_BOUNDS[1]
    assert float(attacked.min()) >= CROP_BOUNDS[0]


def test_image_attack_lowers_the_margin_and_keeps_everything(vae, crops):
    scheme = SchemeModel(FormulaHead(offset=2.0), 4, "formula", vae)
    result = attack_cells(scheme, crops, space="image", epsilon=0.5)
    before, after = result.cells["score_before"].to_numpy(), result.cells["score_after"].to_numpy()
    changed = np.abs(result.perturbation).max(axis=(1, 2)) > 0
    towards_other_class = ((after - before) * np.sign(before))[changed] < 0
    assert changed.sum() >= 12
    assert towards_other_class.mean() > 0.8
    assert result.flip_rate > 0
    assert result.perturbation.shape == crops.shape
    assert np.abs(result.perturbation).max() <= 0.5 + 1e-5
    np.testing.assert_allclose(result.perturbed, np.clip(crops + result.perturbation, -4, 4), atol=1e-5)
    assert result.reconstruction.shape == crops.shape
    assert np.isfinite(result.reconstruction).all()
    assert result.image_difference is None


def test_latent_attack_freezes_latents_and_decodes(vae, crops):
    scheme = SchemeModel(FormulaHead(offset=2.0), 4, "formula", vae)
    result = attack_cells(scheme, crops, space="latent", frozen=[3, 17])
    assert result.perturbation.shape == (len(crops), 32)
    assert np.all(result.perturbation[:, [3, 17]] == 0)
    moved = np.abs(result.perturbation[:, [21, 29]])
    assert np.all((moved == 0) | np.isclose(moved, 1.0))
    assert np.mean(moved == 1) > 0.5
    assert result.image_difference.shape == crops.shape
    assert np.abs(result.image_difference).max() > 0
    frozen_all_but_z29 = attack_cells(scheme, crops, space="latent", frozen=[j for j in range(32) if j != 29])
    assert np.count_nonzero(frozen_all_but_z29.perturbation[:, :29]) == 0


def test_minimal_epsilon_matches_the_linear_models_exact_flip_point():
    torch.manual_seed(0)
    weights = torch.randn(8)
    z = torch.randn(40, 8)
    model = LinearHead(weights, bias=0.3)
    found, perturbed = minimal_epsilon(model, z, max_epsilon=2.0, step=0.01)
    exact = (model(z).abs() / weights.abs().sum()).numpy()
    reachable = exact < 1.99
    assert reachable.sum() > 20
    assert np.all(found[reachable] >= exact[reachable] - 1e-6)
    assert np.all(found[reachable] <= exact[reachable] + 0.01 + 1e-6)
    assert np.all(np.isnan(found[~reachable]))
    with torch.no_grad():
        assert np.all((model(perturbed)[reachable] >= 0).numpy() != (model(z)[reachable] >= 0).numpy())


def test_minimal_pgd_finds_flips_one_fgsm_step_cannot():
    model, z = BentHead(), torch.zeros(2, 2)
    by_fgsm, _ = minimal_epsilon(model, z, attack="fgsm", max_epsilon=2.0, step=0.05)
    assert np.all(np.isnan(by_fgsm))  # along the FGSM ray f = 0.3 − ε + 3ε² stays above 0
    by_pgd, perturbed = minimal_epsilon(model, z, attack="pgd", max_epsilon=2.0, step=0.05)
    assert np.all(by_pgd <= 0.5)
    with torch.no_grad():
        assert np.all(model(perturbed).numpy() < 0)
    assert np.all(perturbed.abs().amax(dim=1).numpy() <= by_pgd + 1e-6)  # inside the L∞ ball of radius ε
    # a linear model has one answer: both searches find its exact flip point
    weights = torch.tensor([1.0, -2.0, 0.5])
    linear, points = LinearHead(weights, bias=0.3), torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    exact = (linear(points).abs() / weights.abs().sum()).numpy()
    found, _ = minimal_epsilon(linear, points, attack="pgd", max_epsilon=2.0, step=0.01)
    assert np.all(np.abs(found - exact) <= 0.01 + 1e-6)


def test_confident_cells_are_attacked_too():
    # f = 29 + w·z: the cross-entropy's gradient σ(f) − 1 rounds to 0 in float32, the margin's does not
    weights = torch.tensor([1.0, -2.0, 0.5, 1.5])
    model = LinearHead(weights, bias=29.0)
    z = torch.zeros(3, 4)
    assert float(model(z)[0]) == 29.0
    attacked = fgsm(model, z, 6.0)
    torch.testing.assert_close(attacked, -6.0 * torch.sign(weights).expand(3, 4))
    found, _ = minimal_epsilon(model, z, max_epsilon=8.0, step=0.5)
    assert found.tolist() == [6.0] * 3  # 29 / ‖w‖₁ = 5.8, on a grid of 0.5


@pytest.mark.parametrize("epsilon", [0.0, -0.5, math.nan])
def test_non_positive_epsilon_is_refused(vae, crops, epsilon):
    with pytest.raises(AttackError, match="positive"):
        attack_cells(SchemeModel(FormulaHead(), 4, "formula", vae), crops, epsilon=epsilon)


def test_freezing_every_latent_or_an_unknown_one_is_refused(vae, crops):
    scheme = SchemeModel(FormulaHead(), 4, "formula", vae)
    with pytest.raises(AttackError, match="nothing is left"):
        attack_cells(scheme, crops, space="latent", frozen=range(32))
    with pytest.raises(AttackError, match="do not exist"):
        attack_cells(scheme, crops, space="latent", frozen=[40])
    with pytest.raises(AttackError, match="latent-space attacks only"):
        attack_cells(scheme, crops, space="image", frozen=[3])


def test_latent_attack_on_scheme_1_is_refused(vae, crops):
    cnn = CNNClassifier(CNNConfig(crop_size_px=64, channels=(4, 8)), HeadConfig())
    with pytest.raises(AttackError, match="Scheme 1"):
        attack_cells(SchemeModel(cnn, 1, "cnn", vae), crops, space="latent")
    image = attack_cells(SchemeModel(cnn, 1, "cnn", vae), crops[:4], space="image", method="pgd")
    assert np.abs(image.perturbation).max() <= 0.5 + 1e-5
