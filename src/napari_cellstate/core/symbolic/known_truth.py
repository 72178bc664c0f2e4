"""Rows labelled by a known formula, to check that a search recovers it (tests and benchmark).

The paper's best formula (Exp. H1) is ``z29·(z17² + z21²) − exp(exp(z3))``; its single-exponential variant
``z29·(z17² + z21²) − exp(z3)`` is what the paper's text prints. Latents are drawn standard normal, as a
β-TCVAE's prior; two unrelated latents (z5, z11) are added, as a sparse head may keep a spare one.
"""

from __future__ import annotations

import numpy as np
import sympy

from .expression import SymbolicExpression

__all__ = ["KNOWN_NAMES", "known_truth", "known_truth_rows", "operators", "recovered"]

KNOWN_NAMES = ("z3", "z17", "z21", "z29", "z5", "z11")
_TRUE_INPUTS = ["z3", "z17", "z21", "z29"]
_TRUE_OPERATORS = {"add", "mul", "square", "exp"}  # both variants: z29·(z17² + z21²) − exp(exp(z3)) or exp(z3)


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


def operators(expr: sympy.Expr) -> set[str]:
    """The operations a formula uses, constants aside: "add", "mul", "square", "div", "pow", and function names.

    >>> from napari_cellstate.core.symbolic.expression import symbol
    >>> x, y = symbol("x"), symbol("y")
    >>> sorted(operators(2.5 * x * (y**2 + 3) - sympy.exp(sympy.exp(0.1 * x))))
    ['add', 'exp', 'mul', 'square']
    """
    found = set()
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Add):
            found.add("add")
        elif isinstance(node, sympy.Mul):
            found.add("mul")
        elif isinstance(node, sympy.Pow):
            found.add({2: "square", -1: "div"}.get(node.exp, "pow") if node.exp.is_number else "pow")
        elif isinstance(node, sympy.Function):
            found.add(type(node).__name__)
    return found


def recovered(expression: SymbolicExpression, variant: str = "double", n: int = 20000) -> tuple[bool, float]:
    """Whether ``expression`` has the known formula's structure and agrees with it in sign on >= 97 % of rows.

    Structure: the same inputs and the same operations (constants aside, read from the SymPy tree). Sign-equivalent
    rearrangements count (``z29·(…)·exp(−c·z3) − d`` for ``z29·(…) − exp(z3)``); a formula without the exponential
    does not, however well it agrees. Returns ``(recovered, agreement)``, the agreement measured on ``n`` fresh
    noise-free rows.
    """
    x = np.random.default_rng(12345).standard_normal((n, len(KNOWN_NAMES)))
    agreement = float(np.mean((expression.numpy(x, KNOWN_NAMES) >= 0) == (known_truth(x, variant) >= 0)))
    same = expression.inputs == _TRUE_INPUTS and operators(expression.expr) == _TRUE_OPERATORS
    return same and agreement >= 0.97, agreement
