"""Figures of a discovered formula (matplotlib, no Qt).

The Pareto front, each term against its inputs (paper Fig. 5) and decision-boundary slices with the cells as
dots (paper Fig. 6), optionally with images decoded along the axes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import sympy
from matplotlib.figure import Figure

from .expression import SymbolicExpression, evaluate_numpy, expression_inputs, round_constants
from .search import DiscoveryResult

__all__ = ["boundary_figure", "pareto_figure", "save_figures", "term_figures"]

_METAPHASE, _INTERPHASE = "#c0392b", "#2e6da4"


def _range(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2, 98])
    pad = 0.1 * (hi - lo) if hi > lo else 0.5
    return float(lo - pad), float(hi + pad)


def pareto_figure(result: DiscoveryResult) -> Figure:
    """Held-out loss and test accuracy against size; the chosen formula marked."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    sizes = [p.size for p in result.front]
    ax.plot(sizes, [p.loss for p in result.front], "o-", color="0.3", label="held-out loss")
    point = result.point
    ax.plot([point.size], [point.loss], "o", ms=12, mfc="none", mec=_METAPHASE, mew=2, label="chosen")
    ax.set_xlabel("expression size (nodes)")
    ax.set_ylabel("class-balanced logistic loss (held-out folds)")
    twin = ax.twinx()
    twin.plot(sizes, [p.test_accuracy for p in result.front], "s--", color=_INTERPHASE, alpha=0.7)
    twin.set_ylabel("test accuracy", color=_INTERPHASE)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"Pareto front; chosen: {point.expression.readable()}", fontsize=9)
    return fig


def term_figures(expression: SymbolicExpression, x: np.ndarray, names: Sequence[str]) -> list[Figure]:
    """One figure per additive term: its value against its input (curve) or two inputs (map), zero dashed."""
    figures = []
    columns = {name: x[:, j] for j, name in enumerate(names)}
    for term in sympy.Add.make_args(expression.expr):
        inputs = expression_inputs(term)
        if not inputs or len(inputs) > 2:
            continue
        fig = Figure(figsize=(5.2, 4.0), layout="constrained")
        ax = fig.add_subplot()
        title = f"term ${sympy.latex(round_constants(term))}$"
        if len(inputs) == 1:
            lo, hi = _range(columns[inputs[0]])
            grid = np.linspace(lo, hi, 300)
            ax.plot(grid, evaluate_numpy(term, {inputs[0]: grid}), color="black", lw=2)
            ax.axhline(0, color="purple", ls="--", lw=1)
            ax.set_xlabel(inputs[0])
            ax.set_ylabel("term value")
        else:
            (x_lo, x_hi), (y_lo, y_hi) = _range(columns[inputs[0]]), _range(columns[inputs[1]])
            gx, gy = np.meshgrid(np.linspace(x_lo, x_hi, 120), np.linspace(y_lo, y_hi, 120))
            values = evaluate_numpy(term, {inputs[0]: gx.ravel(), inputs[1]: gy.ravel()}).reshape(gx.shape)
            filled = ax.contourf(gx, gy, values, levels=20, cmap="viridis")
            fig.colorbar(filled, ax=ax, label="term value")
            ax.set_xlabel(inputs[0])
            ax.set_ylabel(inputs[1])
        ax.set_title(title, fontsize=10)
        figures.append(fig)
    return figures


def boundary_figure(
    expression: SymbolicExpression,
    x: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    decode: Callable[[str, np.ndarray], np.ndarray] | None = None,
    n_images: int = 5,
) -> Figure:
    """Decision-boundary slices over pairs of inputs, the others at their medians; cells as dots.

    Parameters
    ----------
    decode : callable, optional
        ``decode(name, values)`` -> images (M, S, S) along input ``name`` (others at the median), e.g. through
        :func:`~napari_cellstate.core.heads.plots.decoded_axis_images` and the β-TCVAE's decoder; drawn under
        each slice's x axis.
    """
    used = [n for n in names if n in expression.inputs] or list(names[:2])
    pairs = [(used[i], used[j]) for i in range(len(used)) for j in range(i + 1, len(used))] or [(used[0], used[0])]
    pairs = pairs[:6]
    median = {n: float(np.median(x[:, j])) for j, n in enumerate(names)}
    columns = {n: x[:, j] for j, n in enumerate(names)}
    rows = 2 if decode is not None else 1
    fig = Figure(figsize=(max(5.0, 4.2 * len(pairs)), 4.0 * rows + 0.4), layout="constrained")
    grid = fig.add_gridspec(rows, len(pairs), height_ratios=(4, 1) if rows == 2 else None)
    dots = np.arange(0, len(x), max(1, len(x) // 1500))
    for k, (a, b) in enumerate(pairs):
        ax = fig.add_subplot(grid[0, k])
        (x_lo, x_hi), (y_lo, y_hi) = _range(columns[a]), _range(columns[b])
        gx, gy = np.meshgrid(np.linspace(x_lo, x_hi, 150), np.linspace(y_lo, y_hi, 150))
        table = {n: np.full(gx.size, median[n]) for n in names}
        table[a], table[b] = gx.ravel(), gy.ravel()
        values = expression.numpy(table).reshape(gx.shape)
        ax.contourf(gx, gy, values >= 0, levels=[-0.5, 0.5, 1.5], colors=[_INTERPHASE, _METAPHASE], alpha=0.18)
        if values.min() < 0 <= values.max():
            ax.contour(gx, gy, values, levels=[0.0], colors="black", linewidths=1.5)
        colours = np.where(labels[dots] == 1, _METAPHASE, _INTERPHASE)
        ax.scatter(columns[a][dots], columns[b][dots], s=4, c=colours, alpha=0.5, lw=0)
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_lo, y_hi)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.set_title(f"f = 0 over ({a}, {b}), others at median", fontsize=9)
        if decode is not None:
            strip = fig.add_subplot(grid[1, k])
            values_a = np.linspace(x_lo, x_hi, n_images)
            half = 0.45 * (values_a[1] - values_a[0])
            for value, image in zip(values_a, decode(a, values_a), strict=True):
                strip.imshow(image, cmap="gray", extent=(value - half, value + half, 0, 1), aspect="auto")
            strip.set_xlim(x_lo, x_hi)
            strip.set_yticks([])
            strip.set_xlabel(f"{a} (decoded)")
    fig.suptitle("red: f ≥ 0 (metaphase), blue: f < 0; dots: cells, coloured by label", fontsize=9)
    return fig


def save_figures(
    result: DiscoveryResult,
    x: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    folder: os.PathLike | str,
    *,
    vae=None,
) -> dict[str, Path]:
    """Write the front, term and boundary figures of the chosen formula as PNGs into ``folder``."""
    folder = Path(folder)
    decode = None
    if vae is not None and all(n.startswith("z") and n[1:].isdigit() for n in names):
        from ..heads.plots import decoded_axis_images
        from ..vae.encode import decode_latents

        base = np.zeros(vae.cfg.n_latents)
        for j, n in enumerate(names):
            base[int(n[1:])] = np.median(x[:, j])

        def decode(name, values):
            return decoded_axis_images(lambda z: decode_latents(vae, z), base, int(name[1:]), values)

    figures = {
        "pareto": pareto_figure(result),
        "boundary": boundary_figure(result.expression, x, labels, names, decode=decode),
    }
    figures.update({f"term_{k + 1}": f for k, f in enumerate(term_figures(result.expression, x, names))})
    written = {}
    for name, figure in figures.items():
        written[name] = folder / f"symbolic_{name}.png"
        figure.savefig(written[name], dpi=110)
    return written
