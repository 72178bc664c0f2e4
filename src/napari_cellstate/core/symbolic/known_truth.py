"""Rows labelled by a known formula, to check that a search recovers it (tests and benchmark).

The paper's best formula (Exp. H1) is ``z29·(z17² + z21²) − exp(exp(z3))``; its single-exponential variant
``z29·(z17² + z21²) − exp(z3)`` is what the paper's text prints. Latents are drawn standard normal, as a
β-TCVAE's prior; two unrelated latents (z5, z11) are added, as a sparse head may keep a spare one.
"""

from __future__ import annotations

import numpy as np

from .expression import SymbolicExpression

__all__ = ["KNOWN_NAMES", "known_truth", "known_truth_rows", "recovered"]

KNOWN_NAMES = ("z3", "z17", "z21", "z29", "z5", "z11")
_TRUE_INPUTS = ["z3", "z17", "z21", "z29"]


def known_truth(x: np.ndarray, variant: str = "double") -> np.ndarray:
    """The formula's value on rows of :data:`KNOWN_NAMES` columns; ``variant`` "double" or "single" exponential."""
    size = x[:, 0] if variant == "single" else np.exp(x[:, 0])
    with np.errstate(over="ignore"):
        return x[:, 3] * (x[:, 1] ** 2 + x[:, 2] ** 2) - np.exp(size)


def known_truth_rows(
    seed: int, variant: str = "double", n: int = 8000, noise: float = 0.02, test_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, labels, split)``: standard-normal rows labelled 1 where the formula is >= 0, ``noise`` of labels flipped.

    >>> x, labels, split = known_truth_rows(0, n=1000)
    >>> x.shape, sorted(set(split.tolist()))
    ((1000, 6), ['test', 'train'])
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(KNOWN_NAMES)))
    labels = (known_truth(x, variant) >= 0).astype(np.int8)
    flip = rng.random(n) < noise
    labels[flip] = 1 - labels[flip]
    split = np.where(rng.random(n) < test_fraction, "test", "train")
    return x, labels, split


def recovered(expression: SymbolicExpression, variant: str = "double", n: int = 20000) -> tuple[bool, float]:
    """Whether ``expression`` is the known formula in effect: the same inputs and >= 97 % sign agreement.

    Returns ``(recovered, agreement)``, the agreement measured on ``n`` fresh noise-free rows.
    """
    x = np.random.default_rng(12345).standard_normal((n, len(KNOWN_NAMES)))
    agreement = float(np.mean((expression.numpy(x, KNOWN_NAMES) >= 0) == (known_truth(x, variant) >= 0)))
    return expression.inputs == _TRUE_INPUTS and agreement >= 0.97, agreement
