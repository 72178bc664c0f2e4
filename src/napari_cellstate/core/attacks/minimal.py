"""The smallest FGSM step that flips a cell's class (Captum's ``MinParamPerturbation``, linear search).

Models are compared by how much change they need: a model that reads the nucleus needs a larger ε to be
fooled than one that reads pixels anywhere. The search runs per cell over ε = step, 2·step, ... up to
``max_epsilon``; a cell that does not flip within ``max_epsilon`` gets NaN. It is linear, not binary: along
the FGSM ray the class need not change monotonically (large steps saturate crops at the clip bounds, and a
cell flipped at ε = 0.5 may flip back at ε = 2), so a bisection would miss flips.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor, nn

from .fgsm import check_epsilon, fgsm, predicted_class

__all__ = ["MAX_EPSILON", "minimal_epsilon"]

#: Largest ε searched: 2 standard deviations of a standardised crop (4 times the paper's ε), or of the prior.
MAX_EPSILON = 2.0


def minimal_epsilon(
    model: nn.Module,
    inputs: Tensor,
    *,
    bounds: tuple[float, float] = (-math.inf, math.inf),
    mask: Tensor | None = None,
    max_epsilon: float = MAX_EPSILON,
    step: float = 0.05,
) -> tuple[np.ndarray, Tensor]:
    """Smallest ε whose FGSM step flips each cell, and the inputs perturbed by it.

    Parameters
    ----------
    model : torch.nn.Module
        Inputs → one score per cell.
    inputs : Tensor of shape (N, ...)
        Crops or latents.
    bounds, mask
        As for :func:`~napari_cellstate.core.attacks.fgsm.fgsm`.
    max_epsilon : float, default=2.0
        Largest ε tried.
    step : float, default=0.05
        Resolution of the search.

    Returns
    -------
    epsilon : ndarray of shape (N,), float64
        NaN where no ε up to ``max_epsilon`` flips the cell.
    perturbed : Tensor shaped like ``inputs``
        At the minimal ε; at ``max_epsilon`` where the cell did not flip.
    """
    from captum.robust import MinParamPerturbation

    max_epsilon, step = check_epsilon(max_epsilon), check_epsilon(step)

    def attack(x: Tensor, epsilon: float, cell_mask: Tensor | None) -> Tensor:
        return fgsm(model, x, epsilon, bounds=bounds, mask=cell_mask)

    def unchanged(scores: Tensor, target: Tensor) -> bool:
        return bool(((scores >= 0).float() == target).all())

    search = MinParamPerturbation(
        forward_func=model,
        attack=attack,
        arg_name="epsilon",
        arg_min=step,
        arg_max=max_epsilon + step / 2,
        arg_step=step,
        mode="linear",
        correct_fn=unchanged,
    )
    target = predicted_class(model, inputs)
    epsilons = np.full(len(inputs), np.nan)
    perturbed = fgsm(model, inputs, max_epsilon, bounds=bounds, mask=mask)
    for i in range(len(inputs)):
        cell_mask = None if mask is None else (mask[i : i + 1] if mask.shape == inputs.shape else mask)
        found, epsilon = search.evaluate(
            inputs[i : i + 1],
            target=target[i : i + 1],
            perturbations_per_eval=10,
            attack_kwargs={"cell_mask": cell_mask},
        )
        if found is not None:
            epsilons[i] = float(epsilon)
            perturbed[i] = found[0]
    return epsilons, perturbed
