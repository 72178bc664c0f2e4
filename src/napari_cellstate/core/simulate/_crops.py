"""Fast generator of balanced single-cell crops with their generating factors.

Each crop holds a central nucleus (interphase or metaphase, half each) drawn
by the same renderer and camera model as the movie, and neighbours placed
around it. A metaphase cell clears ``neighbour_exclusion_um`` around itself
(scaled by ``neighbour_exclusion_strength``), as rounding mitotic cells do in
the movie, so the neighbourhood is a real but imperfect shortcut.

Neighbours are drawn from a bank of pre-rendered interphase nuclei and pasted
at integer positions; only the central nucleus, whose factors are returned,
is rendered per crop. That keeps generation at thousands of crops per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import CropGeneratorConfig
from ..states import CellState
from ._appearance import appearance, sample_traits, spacing_radius
from ._imaging import expose
from ._render import paste_add, render_nuclei
from ._textures import make_texture_bank

MAX_NEIGHBOURS = 6
_SPRITE_PX = 56
_GAP_PX = 2.0


@dataclass
class CropBatch:
    """Crops and the factors that generated them.

    Attributes
    ----------
    images : ndarray of shape (N, H, W), dtype uint16
        Camera counts, like crops cut from the movie.
    labels : ndarray of shape (N,), dtype int8
        1 for metaphase, 0 for interphase.
    factors : DataFrame
        ``state, area, eccentricity, orientation, brightness, texture_contrast,
        edge_roughness, neighbour_count, nearest_neighbour_px`` of each crop's
        central nucleus. Area (px^2), eccentricity and orientation (radians)
        are what ``skimage.measure.regionprops`` measures on the nucleus's
        ground-truth mask: the shape as drawn, rough edges included, so a
        plate seen end-on is round only as far as its outline is. Brightness
        is in photons per pixel; texture contrast and edge roughness are high
        for condensed chromatin.
    """

    images: np.ndarray
    labels: np.ndarray
    factors: pd.DataFrame


def mask_shape(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area, eccentricity and orientation of each (N, H, W) boolean mask, as ``regionprops`` defines them.

    Second moments from row and column projections, so describing every crop's drawn nucleus costs little.

    >>> disc = np.hypot(*np.mgrid[-8:9, -8:9]) <= 6
    >>> area, ecc, _ = mask_shape(disc[None])
    >>> int(area[0]), round(float(ecc[0]), 2)
    (113, 0.0)
    """
    pixels = masks.astype(np.float32)
    rows = np.arange(masks.shape[1], dtype=np.float64)
    cols = np.arange(masks.shape[2], dtype=np.float64)
    row_mass = pixels.sum(axis=2, dtype=np.float64)  # projections instead of per-pixel products
    col_mass = pixels.sum(axis=1, dtype=np.float64)
    area = row_mass.sum(axis=1)
    mean_row, mean_col = row_mass @ rows / area, col_mass @ cols / area
    rr = row_mass @ rows**2 / area - mean_row**2
    cc = col_mass @ cols**2 / area - mean_col**2
    # integer sums below 2**24, exact in float32
    rc = (pixels @ cols.astype(np.float32)).astype(np.float64) @ rows / area - mean_row * mean_col
    spread = np.hypot((rr - cc) / 2, rc)
    major, minor = (rr + cc) / 2 + spread, (rr + cc) / 2 - spread
    eccentricity = np.sqrt(np.clip(1 - minor / major, 0.0, 1.0))
    orientation = 0.5 * np.arctan2(2 * rc, rr - cc)
    return area, eccentricity, orientation


def _place_neighbours(rng, n, counts, central_radius, sprite_radius, clearance):
    """Neighbour centre offsets (n, MAX_NEIGHBOURS, 2) around each crop centre; NaN where absent."""
    slot = np.arange(MAX_NEIGHBOURS)
    present = slot[None, :] < counts[:, None]
    sector = 2 * np.pi / np.maximum(counts, 1)[:, None]
    theta = rng.uniform(0, 2 * np.pi, (n, 1)) + sector * (slot + rng.uniform(-0.25, 0.25, (n, MAX_NEIGHBOURS)))
    dist = central_radius[:, None] + sprite_radius + _GAP_PX + clearance[:, None]
    dist = dist + rng.uniform(0, 6, (n, MAX_NEIGHBOURS))
    direction = np.stack([np.sin(theta), np.cos(theta)], axis=-1)
    for _ in range(3):  # push later neighbours outwards until neighbours do not overlap
        for j in range(1, MAX_NEIGHBOURS):
            for i in range(j):
                pos_i = direction[:, i] * dist[:, i, None]
                pos_j = direction[:, j] * dist[:, j, None]
                gap = np.hypot(*(pos_j - pos_i).T) - (sprite_radius[:, i] + sprite_radius[:, j] + _GAP_PX)
                dist[:, j] += np.where(present[:, i] & present[:, j] & (gap < 0), -gap, 0.0)
    offsets = direction * dist[..., None]
    offsets[~present] = np.nan
    return offsets


def generate_crops(n: int, cfg: CropGeneratorConfig | None = None, seed: int = 0) -> CropBatch:
    """Generate ``n`` balanced interphase/metaphase crops.

    >>> batch = generate_crops(8, seed=1)
    >>> batch.images.shape, int(batch.labels.sum())
    ((8, 64, 64), 4)
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    cfg = cfg or CropGeneratorConfig()
    rng = np.random.default_rng(seed)
    size = cfg.crop_size
    photons_px = cfg.imaging.photons_per_pixel
    bank = make_texture_bank(rng)

    is_meta = rng.permutation(n) < n // 2
    traits = sample_traits(rng, n, cfg.pixel_size_um, cfg.end_on_plate_fraction, len(bank), cfg.face_on_plate_fraction)
    newborn = rng.random(n) < 0.08
    growth = np.where(newborn, rng.uniform(0, 0.03, n), rng.uniform(0, 1, n))
    codes = np.where(is_meta, CellState.METAPHASE.code, CellState.INTERPHASE.code)
    centre = appearance(traits, codes, rng.uniform(0, 1, n), growth, photons_px)
    centre.row = size / 2 - 0.5 + rng.uniform(-1, 1, n)
    centre.col = size / 2 - 0.5 + rng.uniform(-1, 1, n)
    grid = np.broadcast_to(np.arange(size), (n, size))
    photons, inside = render_nuclei(centre, grid, grid, bank)
    area, eccentricity, orientation = mask_shape(inside)

    n_sprites = int(min(256, max(16, 2 * n)))
    sprite_traits = sample_traits(rng, n_sprites, cfg.pixel_size_um, 0.0, len(bank))
    sprite_growth = rng.uniform(0, 1, n_sprites)
    sprites = appearance(sprite_traits, np.zeros(n_sprites, int), np.zeros(n_sprites), sprite_growth, photons_px)
    sprite_radius = spacing_radius(sprite_traits, sprites, sprite_growth)
    sprites.row = sprites.col = np.full(n_sprites, _SPRITE_PX / 2 - 0.5)
    sprite_grid = np.broadcast_to(np.arange(_SPRITE_PX), (n_sprites, _SPRITE_PX))
    sprite_images, _ = render_nuclei(sprites, sprite_grid, sprite_grid, bank)

    counts = np.minimum(rng.poisson(cfg.mean_neighbours, n), MAX_NEIGHBOURS)
    choice = rng.integers(0, n_sprites, (n, MAX_NEIGHBOURS))
    px = 1.0 / cfg.pixel_size_um
    clearance = np.where(is_meta, cfg.neighbour_exclusion_um * px * cfg.neighbour_exclusion_strength, 0.0)
    central_radius = spacing_radius(traits, centre, np.where(is_meta, 0.3, growth))
    offsets = _place_neighbours(rng, n, counts, central_radius, sprite_radius[choice], clearance)

    half = _SPRITE_PX // 2
    for i in range(n):
        k = counts[i]
        if k:
            top = np.rint(centre.row[i] + offsets[i, :k, 0]).astype(int) - half + 1
            left = np.rint(centre.col[i] + offsets[i, :k, 1]).astype(int) - half + 1
            paste_add(photons[i], sprite_images[choice[i, :k]], top, left)

    # uneven field and bleaching differ from crop to crop: a level and a gentle slope
    level = rng.uniform(1 - cfg.imaging.illumination_falloff, 1.0, (n, 1, 1)) * rng.uniform(0.6, 1.0, (n, 1, 1))
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    slope = rng.uniform(-0.1, 0.1, (n, 2, 1, 1)).astype(np.float32)
    illumination = (level * (1 + slope[:, 0] * ramp[:, None] + slope[:, 1] * ramp[None, :])).astype(np.float32)
    images = expose(photons, illumination, cfg.imaging, cfg.pixel_size_um, rng)

    distance = np.hypot(offsets[..., 0], offsets[..., 1])
    radius_px = cfg.neighbour_radius_um * px
    factors = pd.DataFrame(
        {
            "state": pd.Categorical(
                np.where(is_meta, CellState.METAPHASE.value, CellState.INTERPHASE.value),
                categories=[CellState.INTERPHASE.value, CellState.METAPHASE.value],
            ),
            "area": area,
            "eccentricity": eccentricity,
            "orientation": orientation,
            "brightness": centre.brightness,
            "texture_contrast": centre.texture_contrast,
            "edge_roughness": centre.edge_roughness,
            "neighbour_count": np.sum(distance <= radius_px, axis=1),
            "nearest_neighbour_px": np.nanmin(np.where(np.isnan(distance), np.inf, distance), axis=1),
        }
    )
    return CropBatch(images=images, labels=is_meta.astype(np.int8), factors=factors)
