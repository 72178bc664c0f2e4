"""The smallest attack strength ε that flips a cell's class (Captum's ``MinParamPerturbation``, linear search).

Models are compared by how much change they need: a model that reads the nucleus needs a larger ε to be
fooled than one that reads pixels anywhere. The search runs per cell over ε = step, 2·step, ... up to
``max_epsilon``; a cell that does not flip within ``max_epsilon`` gets NaN. At each ε it runs one attack:

* ``"pgd"``: Captum's PGD inside the L∞ ball of radius ε (:data:`MINIMAL_PGD_STEPS` steps of ε/4). The stronger
  search, and the one the audit's ``median_minimal_epsilon`` reports: it finds the change a model needs, not the
  change one gradient step happens to need. On synthetic test cells (``benchmarks/bench_attacks.py``) it flips
  every cell of Schemes 1-4 by ε ≤ 2, where the FGSM ray leaves a third of Scheme 1's cells unflipped.
* ``"fgsm"``: one FGSM step of size ε, the paper's attack (the audit's ``median_minimal_epsilon_fgsm``).

The search is linear, not binary: along the FGSM ray the class need not change monotonically (large steps
saturate crops at the clip bounds, and a cell flipped at ε = 0.5 may flip back at ε = 2), so a bisection would
miss flips.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor, nn

from .fgsm import check_epsilon, fgsm, pgd, predicted_class
from .models import AttackError

__all__ = ["MAX_EPSILON", "MINIMAL_ATTACKS", "MINIMAL_PGD_STEPS", "minimal_epsilon"]

#: Largest ε searched: 2 standard deviations of a standardised crop (4 times the paper's ε), or of the prior.
MAX_EPSILON = 2.0
#: Attacks the search can run at each ε.
MINIMAL_ATTACKS = ("pgd", "fgsm")
#: PGD steps at each ε of the search (10 steps find ε 0.025-0.05 smaller on synthetic cells, at twice the cost).
MINIMAL_PGD_STEPS = 5


def minimal_epsilon(
    model: nn.Module,
    inputs: Tensor,
    *,
    attack: str = "fgsm",
    bounds: tuple[float, float] = (-math.inf, math.inf),
    mask: Tensor | None = None,
    max_epsilon: float = MAX_EPSILON,
    step: float = 0.05,
) -> tuple[np.ndarray, Tensor]:
    """Smallest ε whose attack (an FGSM step or PGD) flips each cell, and the inputs perturbed by it.

    Parameters
    ----------
    model : torch.nn.Module
        Inputs → one score per cell.
    inputs : Tensor of shape (N, ...)
        Crops or latents.
    attack : {"fgsm", "pgd"}, default="fgsm"
        The attack run at each ε (see the module's notes).
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
    if attack not in MINIMAL_ATTACKS:
        raise AttackError(f"Unknown attack {attack!r} for the minimal-ε search: choose one of {MINIMAL_ATTACKS}.")

    def run(x: Tensor, epsilon: float, cell_mask: Tensor | None) -> Tensor:
        if attack == "pgd":
            return pgd(model, x, epsilon, steps=MINIMAL_PGD_STEPS, bounds=bounds, mask=cell_mask)
        return fgsm(model, x, epsilon, bounds=bounds, mask=cell_mask)

    def unchanged(scores: Tensor, target: Tensor) -> bool:
        return bool(((scores >= 0).float() == target).all())

    search = MinParamPerturbation(
        forward_func=model,
        attack=run,
        arg_name="epsilon",
        arg_min=step,
        arg_max=max_epsilon + step / 2,
        arg_step=step,
        mode="linear",
        correct_fn=unchanged,
    )
    target = predicted_class(model, inputs)
    epsilons = np.full(len(inputs), np.nan)
    perturbed = run(inputs, max_epsilon, mask)
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
