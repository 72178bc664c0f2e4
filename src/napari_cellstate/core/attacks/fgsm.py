"""One-step and iterated gradient attacks on a score model, through Captum's ``captum.robust``.

The loss is the score's margin against the class the model predicts now, L = (1 − 2y)·f(x), so an untargeted
step x̃ = x + ε·sign(∇ₓ L) pushes the score towards the other class (the paper's FGSM, eq. 4). The paper's loss,
the binary cross-entropy of the score (a logit), has the gradient (σ(f) − y)·∇ₓf: the same direction, pixel by
pixel, scaled by a factor that vanishes for confident cells. In float32 σ(f) − y rounds to 0 once |f| ≳ 17, and
Captum's FGSM leaves pixels whose gradient is under 10⁻⁶ alone, so with the cross-entropy a confident cell was
left partly or wholly unperturbed (27 % of the synthetic test cells of a dense head had no gradient at all). The
margin's gradient is ∇ₓf itself: the same attack wherever the cross-entropy's gradient is representable.
Bounds keep perturbed crops inside the value range of standardised crops (clipped at ±4), not [0, 1].
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

from .models import AttackError

__all__ = ["CROP_BOUNDS", "check_epsilon", "fgsm", "loss_gradient", "pgd", "predicted_class", "untargeted_loss"]

#: Value range of standardised crops (CropConfig.clip = 4).
CROP_BOUNDS = (-4.0, 4.0)
_UNBOUNDED = (-math.inf, math.inf)


def check_epsilon(epsilon: float) -> float:
    """Refuse ε <= 0 (or not finite), the size of a perturbation.

    >>> check_epsilon(0.5)
    0.5
    """
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise AttackError(f"The attack strength ε must be a positive number; got {epsilon!r} (paper: 0.5 on images).")
    return float(epsilon)


def untargeted_loss(scores: Tensor, predicted: Tensor) -> Tensor:
    """Per-cell margin (1 − 2y)·f against the predicted class y: raising it moves each score towards and across 0.

    Its gradient points where the binary cross-entropy's does, without the cross-entropy's vanishing factor
    σ(f) − y (see the module's notes).

    >>> untargeted_loss(torch.tensor([3.0, -2.0]), torch.tensor([1.0, 0.0])).tolist()
    [-3.0, -2.0]
    """
    return (1 - 2 * predicted) * scores


@torch.no_grad()
def predicted_class(model: nn.Module, inputs: Tensor) -> Tensor:
    """1.0 where f(x) >= 0 (metaphase), else 0.0."""
    return (model(inputs) >= 0).float()


def loss_gradient(model: nn.Module, inputs: Tensor) -> Tensor:
    """∇ₓ L of each cell's untargeted loss: the direction the steepest L2 attack takes, pixel by pixel."""
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = untargeted_loss(model(x), predicted_class(model, inputs)).sum()
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(
    model: nn.Module,
    inputs: Tensor,
    epsilon: float,
    *,
    bounds: tuple[float, float] = _UNBOUNDED,
    mask: Tensor | None = None,
) -> Tensor:
    """Captum's FGSM, untargeted, against the predicted class: x̃ = clip(x + ε·sign(∇ₓ L)·mask).

    Parameters
    ----------
    model : torch.nn.Module
        Inputs → one score per cell.
    inputs : Tensor of shape (N, ...)
        Crops (N, S, S) or latents (N, D).
    epsilon : float
        Step size (L∞ radius), > 0.
    bounds : (float, float), default=(-inf, inf)
        Value range of the perturbed inputs (:data:`CROP_BOUNDS` for crops).
    mask : Tensor, optional
        Shaped like one input or like ``inputs``; 0 freezes an element (a latent), 1 lets it change.

    Returns
    -------
    Tensor
        The perturbed inputs, detached.
    """
    from captum.robust import FGSM

    epsilon = check_epsilon(epsilon)
    attack = FGSM(model, loss_func=untargeted_loss, lower_bound=bounds[0], upper_bound=bounds[1])
    target = predicted_class(model, inputs)
    return attack.perturb(inputs.detach().clone().requires_grad_(True), epsilon, target, mask=mask).detach()


def pgd(
    model: nn.Module,
    inputs: Tensor,
    epsilon: float,
    *,
    steps: int = 10,
    bounds: tuple[float, float] = _UNBOUNDED,
    mask: Tensor | None = None,
) -> Tensor:
    """Captum's PGD (L∞ ball of radius ε, ``steps`` steps of ε/4, no random start: reproducible)."""
    from captum.robust import PGD

    epsilon = check_epsilon(epsilon)
    attack = PGD(model, loss_func=untargeted_loss, lower_bound=bounds[0], upper_bound=bounds[1])
    target = predicted_class(model, inputs)
    x = inputs.detach().clone().requires_grad_(True)
    with warnings.catch_warnings():  # PGD hands detached steps to FGSM, which then asks for gradients itself
        warnings.filterwarnings("ignore", "Input Tensor 0 did not already require gradients", UserWarning)
        return attack.perturb(x, epsilon, epsilon / 4, steps, target, mask=mask).detach()
