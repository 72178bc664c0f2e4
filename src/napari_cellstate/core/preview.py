"""Pictures of a simulated movie for people: a frame with the true states, and crops."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .io import atomic_path
from .states import STATE_COLOURS, CellState

__all__ = ["display_range", "save_movie_preview"]


def display_range(image: np.ndarray, low: float = 0.5, high: float = 99.8) -> tuple[float, float]:
    """Contrast limits from percentiles, as a viewer's auto-contrast would set them."""
    lo, hi = np.percentile(image, [low, high])
    return float(lo), float(max(hi, lo + 1))


def save_movie_preview(result, path: os.PathLike | str, frame: int | None = None) -> Path:
    """Save a PNG of one frame with true states, and crops of each class.

    Each nucleus is ringed in the colour of its true state; beside the frame
    are 64 x 64 px crops of interphase and metaphase cells.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    movie, objects = result.movie, result.objects
    metaphase = objects[objects["state"] == CellState.METAPHASE.value]
    if frame is None:
        frame = int(metaphase["t"].mode().iloc[0]) if len(metaphase) else len(movie) // 2
    image = movie[frame]
    vmin, vmax = display_range(image)
    rows = objects[objects["t"] == frame]

    fig = plt.figure(figsize=(12, 6.4), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 0.55, 0.95))
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax)
    ax.scatter(
        rows["x"],
        rows["y"],
        s=520,
        facecolors="none",
        edgecolors=[STATE_COLOURS[s] for s in rows["state"]],
        linewidths=1.2,
    )
    ax.set_title(f"frame {frame} of {len(movie)}: rings coloured by true state", fontsize=10)
    ax.axis("off")
    for i, (state, colour) in enumerate(STATE_COLOURS.items()):
        fig.text(0.57, 0.9 - 0.04 * i, f"\u25cb {state}", color=colour, fontsize=10, weight="bold")

    half = 32
    for r, state in enumerate((CellState.INTERPHASE.value, CellState.METAPHASE.value)):
        height, width = movie.shape[1:]
        inner = objects["y"].between(half, height - half) & objects["x"].between(half, width - half)
        chosen = objects[(objects["state"] == state) & inner]
        chosen = (
            chosen.iloc[np.linspace(0, len(chosen) - 1, min(4, len(chosen))).astype(int)] if len(chosen) else chosen
        )
        for c, (_, row) in enumerate(chosen.iterrows()):
            y, x, t = round(row["y"]), round(row["x"]), int(row["t"])
            crop = movie[t, y - half : y + half, x - half : x + half]
            cax = fig.add_axes((0.7 + 0.075 * c, 0.52 - 0.3 * r, 0.07, 0.13 * 12 / 6.4 * 0.5))
            cax.imshow(crop, cmap="gray", vmin=vmin, vmax=vmax)
            cax.set_xticks([])
            cax.set_yticks([])
            for spine in cax.spines.values():
                spine.set_edgecolor(STATE_COLOURS[state])
                spine.set_linewidth(2)
        fig.text(0.7, 0.66 - 0.3 * r, f"{state} crops (64 x 64 px, frame's display range)", fontsize=9)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
