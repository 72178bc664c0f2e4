"""Attack results as napari layers: perturbation maps laid exactly over their cells on the movie."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.types import LayerDataTuple

if TYPE_CHECKING:
    from ..core.attacks.attack import AttackResult

__all__ = ["attack_layer_name", "perturbation_layer"]


def attack_layer_name(result: AttackResult, row: int) -> str:
    """``attack: cell 12 · Scheme 3 (sparse_head) · latent``: stable, so a new attack updates the layer."""
    return f"attack: {result.title(row)}"


def perturbation_layer(result: AttackResult, row: int, geometry: dict) -> LayerDataTuple:
    """The perturbation map of one attacked cell, over that cell at its frame.

    A (1, S, S) image: the time axis puts it at the cell's frame only, and scale/translate (micrometres, as
    the movie layers) account for a crop window of ``window_px`` movie pixels resampled to ``size_px``. The
    colormap is diverging and the contrast symmetric about 0, so white means "unchanged". Made in a worker (it
    imports the attacks' torch code).
    """
    from ..core.attacks.results import crop_placement

    cell = result.cells.iloc[row]
    image = np.asarray(result.image_maps()[row], dtype=np.float32)
    size = int(geometry.get("size_px") or image.shape[-1])
    translate, scale = crop_placement(float(cell["y"]), float(cell["x"]), size, geometry.get("window_px"))
    pixel_um = float(geometry.get("source_pixel_size_um") or 1.0)
    limit = float(np.abs(image).max()) or 1.0
    kwargs = {
        "name": attack_layer_name(result, row),
        "scale": (1.0, *(scale * pixel_um)),
        "translate": (float(cell["t"]), *(translate * pixel_um)),
        "axis_labels": ("t", "y", "x"),
        "colormap": "bwr",
        "contrast_limits": (-limit, limit),
        "opacity": 0.6,
        "blending": "translucent",
        "metadata": {
            "object_id": int(cell["object_id"]) if "object_id" in cell else None,
            "scheme": result.scheme,
            "space": result.space,
            "score_before": float(cell["score_before"]),
            "score_after": float(cell["score_after"]),
            "flipped": bool(cell["flipped"]),
        },
    }
    return (image[None], kwargs, "image")
