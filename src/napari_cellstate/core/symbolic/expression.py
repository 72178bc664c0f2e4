"""A discovered formula as SymPy, LaTeX, a numpy function and a differentiable torch module.

Evaluation walks the SymPy tree (no ``lambdify``, which generates and executes code): each node type maps to
one numpy or torch operation, so the numpy function, the torch module and SymPy agree by construction.
Convention, as for the heads: a score f(x) >= 0 means metaphase.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy
import torch
from scipy.optimize import minimize

from ..heads.analysis import sympy_expression_size

__all__ = [
    "ExpressionModule",
    "SymbolicExpression",
    "evaluate_numpy",
    "expression_inputs",
    "round_constants",
    "symbol",
]


def symbol(name: str) -> sympy.Symbol:
    """The SymPy symbol of an input: real, so that simplification may use it (same as the parser's)."""
    return sympy.Symbol(name, real=True)


def expression_inputs(expr: sympy.Expr) -> list[str]:
    """Names of the inputs ``expr`` reads, in natural order (z3 before z17).

    >>> expression_inputs(symbol("z17") * symbol("z3") + 1)
    ['z3', 'z17']
    """
    import re

    def key(name: str):
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]

    return sorted((s.name for s in expr.free_symbols), key=key)


def round_constants(expr: sympy.Expr, digits: int = 3) -> sympy.Expr:
    """``expr`` with every float rounded to ``digits`` significant digits (readable, as the paper prints it).

    >>> round_constants(1.23456 * symbol("z3"))
    1.23*z3
    """
    floats = {f: sympy.Float(float(f"{float(f):.{digits}g}")) for f in expr.atoms(sympy.Float)}
    return expr.xreplace(floats)


_FUNCTION_NAMES = {
    sympy.exp: "exp",
    sympy.log: "log",
    sympy.Abs: "abs",
    sympy.sin: "sin",
    sympy.cos: "cos",
    sympy.tan: "tan",
    sympy.tanh: "tanh",
}


def _walk(expr: sympy.Basic, columns: dict[str, object], ops: dict[str, Callable], constant: Callable):
    """Evaluate ``expr`` with ``ops`` (numpy or torch), inputs from ``columns``."""
    if isinstance(expr, sympy.Symbol):
        return columns[expr.name]
    if expr.is_Number or isinstance(expr, sympy.NumberSymbol):
        return constant(float(expr))
    args = [_walk(a, columns, ops, constant) for a in expr.args]
    if isinstance(expr, sympy.Add):
        out = args[0]
        for a in args[1:]:
            out = out + a
        return out
    if isinstance(expr, sympy.Mul):
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if isinstance(expr, sympy.Pow):
        exponent = expr.args[1]
        if exponent == sympy.Rational(1, 2):
            return ops["sqrt"](args[0])
        if exponent.is_Integer and int(exponent) < 0:
            return 1.0 / ops["pow"](args[0], -int(exponent))
        return ops["pow"](args[0], int(exponent) if exponent.is_Integer else args[1])
    for function, name in _FUNCTION_NAMES.items():
        if isinstance(expr, function):
            return ops[name](args[0])
    raise ValueError(f"Cannot evaluate {type(expr).__name__} in {expr}: not an operator of the grammar.")


_NUMPY_OPS = {
    "exp": np.exp,
    "log": np.log,
    "abs": np.abs,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "sqrt": np.sqrt,
    "pow": np.power,
}
_TORCH_OPS = {
    "exp": torch.exp,
    "log": torch.log,
    "abs": torch.abs,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "tanh": torch.tanh,
    "sqrt": torch.sqrt,
    "pow": torch.pow,
}


def evaluate_numpy(expr: sympy.Expr, table: dict[str, np.ndarray] | np.ndarray, names: Sequence[str] | None = None):
    """Values of ``expr`` on rows of inputs: a dict of columns, or an (N, D) array with column ``names``.

    Over- and underflow give inf or 0 as numpy does (exp(exp(z3)) is inf for z3 > 6.5, a valid score).

    >>> evaluate_numpy(symbol("a") ** 2 - 1, np.array([[0.0], [2.0]]), ["a"]).tolist()
    [-1.0, 3.0]
    """
    if not isinstance(table, dict):
        array = np.asarray(table, dtype=np.float64)
        table = {name: array[:, j] for j, name in enumerate(names)}
    n = len(next(iter(table.values()))) if table else 1
    with np.errstate(all="ignore"):
        out = _walk(expr, table, _NUMPY_OPS, lambda c: np.float64(c))
    return np.broadcast_to(np.asarray(out, dtype=np.float64), (n,)).copy()


class ExpressionModule(torch.nn.Module):
    """A formula as a differentiable torch module: (N, len(columns)) float tensor -> (N,) score (>= 0: metaphase).

    The input tensor holds the named ``columns``, by default all latents ``z0 .. z{D-1}`` of the β-TCVAE, so the
    module takes the same input as a Scheme 2-3 head (and :func:`~napari_cellstate.core.heads.apply.iter_apply_head`
    runs it like one); the formula reads only the columns it names. The numeric constants are a frozen
    parameter (``constants``), so gradients flow to the inputs (attacks) and the module has a device.

    Parameters
    ----------
    expr : sympy.Expr
        The formula, in the names of ``columns``.
    columns : sequence of str
        Names of the input tensor's columns, in order.

    Examples
    --------
    >>> module = ExpressionModule(symbol("z1") ** 2 - 1, ["z0", "z1"])
    >>> module(torch.tensor([[5.0, 0.0], [5.0, 2.0]])).tolist()
    [-1.0, 3.0]
    """

    def __init__(self, expr: sympy.Expr, columns: Sequence[str]) -> None:
        super().__init__()
        missing = sorted(set(expression_inputs(expr)) - set(columns))
        if missing:
            raise ValueError(f"The formula reads {missing}, which are not among the module's input columns.")
        self.expr = expr
        self.columns = list(columns)
        self.n_inputs = len(self.columns)
        self._floats = sorted(expr.atoms(sympy.Float), key=float)
        values = [float(f) for f in self._floats]
        self.constants = torch.nn.Parameter(torch.tensor(values, dtype=torch.float32), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of the rows of ``x`` (N, len(columns))."""
        return self.with_constants(x, self.constants)

    def with_constants(self, x: torch.Tensor, constants: torch.Tensor) -> torch.Tensor:
        """Scores of the rows of ``x`` with other values of the constants (in the order of ``constants``)."""
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"Expected inputs of shape (N, {self.n_inputs}), got {tuple(x.shape)}.")
        index = {name: j for j, name in enumerate(self.columns)}
        columns = {name: x[:, index[name]] for name in expression_inputs(self.expr)}
        by_value = {float(f): constants[k] for k, f in enumerate(self._floats)}

        def constant(value: float):
            return by_value[value] if value in by_value else torch.tensor(value, dtype=x.dtype, device=x.device)

        out = _walk(self.expr, columns, _TORCH_OPS, constant)
        return torch.as_tensor(out, dtype=x.dtype, device=x.device).expand(x.shape[0]).clone()


@dataclass(frozen=True)
class SymbolicExpression:
    """A formula over named inputs, with the views the paper and the tools need.

    Attributes
    ----------
    expr : sympy.Expr
        The formula; f(x) >= 0 means metaphase.
    """

    expr: sympy.Expr

    @property
    def inputs(self) -> list[str]:
        """Names of the inputs the formula reads."""
        return expression_inputs(self.expr)

    @property
    def size(self) -> int:
        """Nodes of the expression tree, counted as Table 1 counts them.

        >>> z3, z17, z21, z29 = (symbol(n) for n in ("z3", "z17", "z21", "z29"))
        >>> SymbolicExpression(z29 * (z17**2 + z21**2) - sympy.exp(sympy.exp(z3))).size
        15
        """
        return sympy_expression_size(self.expr)

    @property
    def text(self) -> str:
        """The formula as text that :func:`~napari_cellstate.core.symbolic.parse.parse_expression` reads back."""
        return sympy.sstr(self.expr, full_prec=True)

    def latex(self, digits: int = 3) -> str:
        """LaTeX with constants rounded to ``digits`` significant digits.

        >>> SymbolicExpression(symbol("z3") ** 2 - 0.5).latex()
        'z_{3}^{2} - 0.5'
        """
        return sympy.latex(round_constants(self.expr, digits))

    def readable(self, digits: int = 3) -> str:
        """Plain text with rounded constants, for tables and messages."""
        return sympy.sstr(round_constants(self.expr, digits))

    def numpy(self, table, names: Sequence[str] | None = None) -> np.ndarray:
        """Scores on rows of inputs (see :func:`evaluate_numpy`)."""
        return evaluate_numpy(self.expr, table, names)

    def torch_module(self, columns: Sequence[str]) -> ExpressionModule:
        """The formula as a torch module over the named input columns."""
        return ExpressionModule(self.expr, columns)


def refine_constants(
    expr: sympy.Expr,
    x: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    weights: np.ndarray | None = None,
    scale: float = 1.0,
    noise: float = 0.02,
    steps: int = 40,
    fit_constants: bool = True,
) -> tuple[sympy.Expr, float, float]:
    """``expr`` with its constants refitted to the labels, with the scale s and label-noise level ε of the logit.

    Maximises the (``weights``-weighted) likelihood of the labels under ``ε + (1 − 2ε)·sigmoid(s·f(x))`` by
    L-BFGS from ``scale`` and ``noise``: the search proposes structures whose constants were tuned for ranking,
    not for the boundary; this moves the boundary f = 0 to where the labelled rows put it, and mislabelled rows
    far from it cost at most −log ε (see :mod:`.losses`). s and ε do not change the sign and are returned apart.
    Returns ``(expr, s, ε)``, the start unchanged when the fit fails. With ``fit_constants=False`` only s and ε
    are fitted (cheap: the formula is evaluated once).

    >>> a = symbol("a")
    >>> x = np.linspace(-3, 3, 200)[:, None]
    >>> refined, scale, noise = refine_constants(a - 0.5, x, (x[:, 0] > 1.0).astype(int), ["a"])
    >>> round(float(-refined.subs(a, 0)), 1)  # the threshold moved from 0.5 to 1
    1.0
    """
    module = ExpressionModule(expr, names).double()
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.float64))
    w = torch.ones_like(y) if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float64))
    n = len(module._floats) if fit_constants else 0
    fixed = None if fit_constants else module(inputs).detach()

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss of (constants, log s, logit of 4ε) and its gradient, by autograd."""
        t = torch.as_tensor(theta, dtype=torch.float64).requires_grad_(True)
        values = module.with_constants(inputs, t[:n]) if fit_constants else fixed
        logit = (t[n].exp() * values).nan_to_num().clamp(-30, 30)
        eps = 0.25 * torch.sigmoid(t[n + 1])
        p = eps + (1 - 2 * eps) * torch.sigmoid(logit)
        loss = -(w * (y * torch.log(p) + (1 - y) * torch.log1p(-p))).mean()
        (gradient,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), gradient.numpy()

    constants = [float(f) for f in module._floats] if fit_constants else []
    start = np.array([*constants, np.log(scale), np.log(noise / (0.25 - noise))])
    before, _ = loss_and_gradient(start)
    with np.errstate(all="ignore"):
        fitted = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", options={"maxiter": steps})
    theta = fitted.x
    if not (np.isfinite(fitted.fun) and np.all(np.isfinite(theta)) and fitted.fun <= before):
        return expr, scale, noise
    refined = expr.xreplace({f: sympy.Float(float(v)) for f, v in zip(module._floats, theta[:n], strict=False)})
    return refined, float(np.exp(theta[n])), float(0.25 / (1 + np.exp(-theta[n + 1])))
