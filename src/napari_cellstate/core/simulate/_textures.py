"""Periodic, smooth random fields used as chromatin texture."""

from __future__ import annotations

import numpy as np

TEXTURE_SIZE = 64  # a power of two: wrapping is a bit mask


def make_texture_bank(rng: np.random.Generator, n_textures: int = 32, size: int = TEXTURE_SIZE) -> np.ndarray:
    """Return ``n_textures`` periodic band-limited noise tiles.

    Periodic tiles let the renderer wrap coordinates without seams.

    Returns
    -------
    ndarray of shape (n_textures, size, size), dtype float32
        Zero mean, unit standard deviation per tile.
    """
    noise = rng.standard_normal((n_textures, size, size))
    freq = np.fft.fftfreq(size)
    radius2 = freq[:, None] ** 2 + freq[None, :] ** 2
    spectrum = np.exp(-radius2 / (2 * 0.08**2))
    tiles = np.fft.ifft2(np.fft.fft2(noise) * spectrum).real
    tiles -= tiles.mean(axis=(1, 2), keepdims=True)
    tiles /= tiles.std(axis=(1, 2), keepdims=True)
    return tiles.astype(np.float32)


def sample_texture(bank: np.ndarray, tile: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear lookup with wrap-around.

    Parameters
    ----------
    bank : ndarray of shape (K, S, S)
        S must be a power of two.
    tile : ndarray of shape (N, 1, 1), dtype int
        Which tile each nucleus uses.
    rows, cols : ndarray of shape (N, H, W)
        Texture coordinates in tile pixels (any real value).
    """
    size = bank.shape[-1]
    padded = np.pad(bank, ((0, 0), (0, 1), (0, 1)), mode="wrap").ravel()
    stride = size + 1
    r_floor = np.floor(rows)
    c_floor = np.floor(cols)
    fr = (rows - r_floor).astype(np.float32)
    fc = (cols - c_floor).astype(np.float32)
    mask = size - 1
    flat = (r_floor.astype(np.int32) & mask) * stride + (c_floor.astype(np.int32) & mask)
    flat += (tile * (stride * stride)).astype(np.int32)
    top = padded.take(flat)
    top += (padded.take(flat + 1) - top) * fc
    bottom = padded.take(flat + stride)
    bottom += (padded.take(flat + stride + 1) - bottom) * fc
    top += (bottom - top) * fr
    return top
