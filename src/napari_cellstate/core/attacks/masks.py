"""Crop edits for the domain audit: the central nucleus, its surroundings replaced, turns and flips, noise.

The central nucleus is found on the crop itself (:mod:`napari_cellstate.core.crop_morphology`), so the audit
needs no segmentation of the movie.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..crop_morphology import central_nucleus_masks, foreground_masks

__all__ = [
    "NUCLEUS_EDGE_PX",
    "SYMMETRIES",
    "add_noise",
    "central_nucleus_masks",
    "foreground_masks",
    "grow_masks",
    "replace_outside",
    "restandardise",
]

#: Width of a nucleus's blurred edge around its thresholded mask, in pixels: the central cell's region (kept by
#: :func:`replace_outside`, scored by the audit's energy share) is the mask grown by this much.
NUCLEUS_EDGE_PX = 2

#: The domain's symmetries (paper Sec. 3.1): turns by 90/180/270° and mirror images.
SYMMETRIES = {
    "rot90": lambda c: np.rot90(c, 1, axes=(-2, -1)),
    "rot180": lambda c: np.rot90(c, 2, axes=(-2, -1)),
    "rot270": lambda c: np.rot90(c, 3, axes=(-2, -1)),
    "flip_rows": lambda c: c[..., ::-1, :],
    "flip_columns": lambda c: c[..., :, ::-1],
}


def restandardise(crops: np.ndarray, clip: float = 4.0) -> np.ndarray:
    """Per-crop mean 0, std 1, clipped to ±clip: what crop extraction does to any crop."""
    from ..crops import standardise_crops

    return standardise_crops(np.array(crops, dtype=np.float32), clip=clip)


def grow_masks(masks: np.ndarray, grow_px: int = NUCLEUS_EDGE_PX) -> np.ndarray:
    """The (N, S, S) masks grown by ``grow_px`` pixels: a nucleus with its edge.

    The threshold cuts a blurred nucleus inside its edge, and what makes a nucleus larger or rounder lies on
    both sides of that edge (an area latent's gradient is a ring across it).

    >>> nucleus = np.zeros((1, 7, 7), bool)
    >>> nucleus[0, 3, 3] = True
    >>> int(grow_masks(nucleus, 1).sum())
    9
    """
    return ndimage.binary_dilation(masks, iterations=grow_px, structure=np.ones((1, 3, 3), bool))


def replace_outside(
    crops: np.ndarray, nuclei: np.ndarray, seed: int = 0, clip: float = 4.0, grow_px: int = NUCLEUS_EDGE_PX
) -> np.ndarray:
    """Keep each central nucleus; replace everything else by another crop's background, neighbours removed.

    The donor is another crop (a random derangement). Its objects are filled with pixels drawn from its own
    background, and its background is rescaled to the receiving crop's background mean and standard deviation,
    so only the surroundings change, not the imaging. The nucleus is kept with a margin of ``grow_px`` pixels
    (its blurred edge), and the composite is standardised again.

    Parameters
    ----------
    crops : ndarray of shape (N, S, S)
        Standardised crops, N >= 2.
    nuclei : ndarray of shape (N, S, S), bool
        Their central nuclei (:func:`central_nucleus_masks`).
    """
    crops = np.asarray(crops, dtype=np.float32)
    n = len(crops)
    if n < 2:
        raise ValueError("Replacing the surroundings needs at least two crops (one gives the other its background).")
    rng = np.random.default_rng(seed)
    donors = (np.arange(n) + rng.integers(1, n)) % n  # never a crop's own
    foreground = foreground_masks(crops)
    grown_fg = grow_masks(foreground, grow_px)
    keep = grow_masks(nuclei, grow_px)
    out = np.empty_like(crops)
    for i, d in enumerate(donors):
        donor_bg = crops[d][~grown_fg[d]]
        own_bg = crops[i][~grown_fg[i]]
        if donor_bg.size < 2 or own_bg.size < 2:  # a crop filled by nuclei: use its whole range as background
            donor_bg, own_bg = crops[d].ravel(), crops[i].ravel()
        background = np.where(grown_fg[d], rng.choice(donor_bg, size=crops[d].shape), crops[d])
        spread = donor_bg.std() if donor_bg.std() > 0 else 1.0
        background = (background - donor_bg.mean()) / spread * own_bg.std() + own_bg.mean()
        out[i] = np.where(keep[i], crops[i], background)
    return restandardise(out, clip)


def add_noise(crops: np.ndarray, level: float, seed: int = 0, clip: float = 4.0) -> np.ndarray:
    """Gaussian noise of ``level`` times each crop's own background noise, then standardised again.

    The background's standard deviation is the camera's noise at this crop's brightness, so level 1 adds as
    much noise again (the signal-to-noise ratio drops by √2), level 2 drops it by √5.
    """
    crops = np.asarray(crops, dtype=np.float32)
    rng = np.random.default_rng(seed)
    foreground = grow_masks(foreground_masks(crops))
    noise_std = np.array([c[~f].std() if (~f).sum() > 1 else c.std() for c, f in zip(crops, foreground, strict=True)])
    noisy = crops + rng.normal(size=crops.shape).astype(np.float32) * (level * noise_std)[:, None, None]
    return restandardise(noisy, clip)
