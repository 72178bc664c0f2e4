"""Figures of attacks (the paper's Figs 8-10 gallery) and of flip rate against ε, with matplotlib."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .attack import AttackResult

__all__ = ["flip_rate_figure", "gallery_figure"]


def gallery_figure(result: AttackResult, rows: Sequence[int] | None = None):
    """One line per cell: crop, perturbation (diverging, centred on 0), perturbed crop, its reconstruction, scores."""
    from matplotlib.figure import Figure

    rows = list(range(min(len(result.cells), 6))) if rows is None else list(rows)
    figure = Figure(figsize=(10, 2.1 * max(len(rows), 1)), layout="constrained")
    axes = np.atleast_2d(figure.subplots(max(len(rows), 1), 5, squeeze=False))
    maps, perturbed = result.image_maps(), result.perturbed_crops()
    titles = ("crop", "perturbation", "perturbed crop" if result.space == "image" else "decoded perturbed", "β-TCVAE")
    for line, row in enumerate(rows):
        limit = float(np.abs(maps[row]).max()) or 1.0
        images = (result.crops[row], maps[row], perturbed[row], result.reconstruction[row])
        for ax, image, title in zip(axes[line], images, titles, strict=False):
            kwargs = {"cmap": "bwr", "vmin": -limit, "vmax": limit} if title == "perturbation" else {"cmap": "gray"}
            ax.imshow(image, **kwargs)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        cell = result.cells.iloc[row]
        axes[line, 4].axis("off")
        axes[line, 4].text(
            0,
            0.5,
            f"{result.title(row)}\nf(x) {cell['score_before']:+.2f} → {cell['score_after']:+.2f}\n"
            f"ε {cell['epsilon']:.2f}, {'flipped' if cell['flipped'] else 'not flipped'}",
            fontsize=8,
            va="center",
        )
    return figure


def flip_rate_figure(curves: pd.DataFrame):
    """Flip rate against ε, one line per audited head."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.2), layout="constrained")
    ax = figure.subplots()
    for (scheme, head), part in curves.groupby(["scheme", "head"]):
        ax.plot(part["epsilon"], part["flip_rate"], marker="o", label=f"Scheme {scheme}: {head}")
    ax.set_xlabel("ε (image space, standardised crop units)")
    ax.set_ylabel("flip rate")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return figure
