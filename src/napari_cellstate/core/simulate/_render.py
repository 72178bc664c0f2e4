"""Draw nuclei: one vectorised renderer for the movie and the crop generator.

A nucleus is one or two elliptical lobes (two for anaphase) in its own body
frame, with a soft edge (focus), a rough outline, chromatin texture and dark
nucleoli. ``Nuclei`` holds one value per nucleus; ``render_nuclei`` evaluates
them on a pixel grid per nucleus.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ._textures import sample_texture

N_NUCLEOLI = 3
_CHUNK_PIXELS = 1 << 18  # work in cache-sized pieces


@dataclass
class Nuclei:
    """Drawing parameters, one entry per nucleus (arrays of shape (N,)).

    Lengths are in pixels, ``angle_rad`` is the major axis measured from the
    column axis towards the row axis, ``brightness`` is photons per pixel.
    """

    row: np.ndarray
    col: np.ndarray
    angle_rad: np.ndarray
    semi_major: np.ndarray
    semi_minor: np.ndarray
    lobe_offset: np.ndarray  # > 0: two lobes at +-offset along the minor axis
    brightness: np.ndarray
    texture_tile: np.ndarray
    texture_scale: np.ndarray  # tile px per image px: larger is finer
    texture_contrast: np.ndarray
    texture_threshold: np.ndarray  # > 0 condenses chromatin into clumps
    edge_width: np.ndarray  # soft-edge width (defocus)
    edge_roughness: np.ndarray
    nucleoli: np.ndarray  # (N, N_NUCLEOLI, 3): row, col (fractions of the axes), depth

    def __len__(self) -> int:
        return len(self.row)

    def take(self, index) -> Nuclei:
        """Subset of nuclei (index array or boolean mask)."""
        return Nuclei(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _signed_depth(u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (px) from a point to an ellipse's outline along the ray from its centre; > 0 inside."""
    radius = np.sqrt(u * u + v * v)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    boundary = np.where(rho > 1e-6, radius / np.maximum(rho, 1e-6), b)
    return boundary - radius


def render_nuclei(
    nuclei: Nuclei, rows: np.ndarray, cols: np.ndarray, bank: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate each nucleus on its own grid.

    Parameters
    ----------
    nuclei : Nuclei
        N nuclei; ``row``/``col`` are in the same coordinates as the grids.
    rows : ndarray of shape (N, H)
        Row coordinate of each grid row, per nucleus.
    cols : ndarray of shape (N, W)
        Column coordinate of each grid column, per nucleus.
    bank : ndarray of shape (K, S, S)
        Texture tiles.

    Returns
    -------
    intensity : ndarray of shape (N, H, W), dtype float32
        Photons per pixel (before blur and noise).
    inside : ndarray of shape (N, H, W), dtype bool
        Ground-truth mask of the nucleus.
    """
    chunk = max(1, _CHUNK_PIXELS // (rows.shape[1] * cols.shape[1]))
    parts = [
        _render_chunk(nuclei.take(slice(i, i + chunk)), rows[i : i + chunk], cols[i : i + chunk], bank)
        for i in range(0, len(nuclei), chunk)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _render_chunk(nuclei: Nuclei, rows: np.ndarray, cols: np.ndarray, bank: np.ndarray):
    n = len(nuclei)

    def col3(x):
        return np.asarray(x, dtype=np.float32).reshape(n, 1, 1)

    dy = (rows.astype(np.float32) - col3(nuclei.row)[:, :, 0])[:, :, None]
    dx = (cols.astype(np.float32) - col3(nuclei.col)[:, :, 0])[:, None, :]
    cos, sin = col3(np.cos(nuclei.angle_rad)), col3(np.sin(nuclei.angle_rad))
    u = dx * cos + dy * sin  # along the major axis
    v = dy * cos - dx * sin  # along the minor axis
    a, b, offset = col3(nuclei.semi_major), col3(nuclei.semi_minor), col3(nuclei.lobe_offset)

    depth = _signed_depth(u, v - offset, a, b)
    if np.any(nuclei.lobe_offset > 0):
        depth = np.maximum(depth, _signed_depth(u, v + offset, a, b))

    scale = col3(nuclei.texture_scale)
    tile = np.asarray(nuclei.texture_tile, dtype=np.intp).reshape(n, 1, 1)
    texture = sample_texture(bank, tile, v * scale + 7.0 * tile, u * scale + 13.0 * tile)

    depth = depth + col3(nuclei.edge_roughness) * texture
    coverage = np.clip(0.5 + depth / col3(nuclei.edge_width), 0.0, 1.0)
    chromatin = np.maximum(0.0, 1.0 + col3(nuclei.texture_contrast) * (texture - col3(nuclei.texture_threshold)))
    intensity = col3(nuclei.brightness) * coverage * chromatin

    nucleoli = np.asarray(nuclei.nucleoli, dtype=np.float32)
    if np.any(nucleoli[:, :, 2] > 0):
        sigma2 = 2 * (0.22 * b) ** 2
        dark = np.ones_like(intensity)
        for k in range(nucleoli.shape[1]):
            nu = col3(nucleoli[:, k, 1]) * a * 0.6
            nv = col3(nucleoli[:, k, 0]) * b * 0.6
            dark -= col3(nucleoli[:, k, 2]) * np.exp(-((u - nu) ** 2 + (v - nv) ** 2) / sigma2)
        intensity *= dark
    return intensity.astype(np.float32, copy=False), depth > 0


def paste_add(canvas: np.ndarray, patches: np.ndarray, top: np.ndarray, left: np.ndarray) -> None:
    """Add patches into one image at integer positions, clipping at its borders.

    Parameters
    ----------
    canvas : ndarray of shape (Y, X)
        Modified in place.
    patches : ndarray of shape (N, H, W)
    top, left : ndarray of shape (N,), dtype int
        Canvas row and column of each patch's first pixel.
    """
    height, width = canvas.shape[-2:]
    ph, pw = patches.shape[-2:]
    for patch, r, c in zip(patches, top, left, strict=True):
        r0, c0 = max(r, 0), max(c, 0)
        r1, c1 = min(r + ph, height), min(c + pw, width)
        if r1 > r0 and c1 > c0:
            canvas[r0:r1, c0:c1] += patch[r0 - r : r1 - r, c0 - c : c1 - c]
