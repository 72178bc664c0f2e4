"""Turn photons into camera counts: PSF blur, uneven illumination, noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..config import ImagingConfig

_CHUNK_PIXELS = 1 << 18


def illumination_field(shape_yx: tuple[int, int], falloff: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth vignetting: 1 at a random bright spot, ``1 - falloff`` far from it.

    Returns
    -------
    ndarray of shape (Y, X), dtype float32
    """
    rows, cols = np.ogrid[: shape_yx[0], : shape_yx[1]]
    centre = rng.uniform(0.3, 0.7, 2) * np.asarray(shape_yx)
    radius2 = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (max(shape_yx) ** 2)
    return (1 - falloff * np.clip(radius2 / 0.5, 0, 1)).astype(np.float32)


def expose(
    photons: np.ndarray,
    illumination: np.ndarray | float,
    cfg: ImagingConfig,
    pixel_size_um: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Image fluorophore photons through the microscope and camera.

    Shot noise uses the normal approximation of the Poisson distribution
    (mean = variance = expected photons), accurate here because every pixel
    receives at least the background (tens of photons) and much faster.

    Parameters
    ----------
    photons : ndarray of shape (..., Y, X)
        Expected in-focus photons per pixel.
    illumination : ndarray broadcastable to ``photons``, or float
        Relative excitation (uneven field, bleaching).

    Returns
    -------
    ndarray of the same shape, dtype uint16
    """
    sigma_px = cfg.psf_sigma_um / pixel_size_um
    height, width = photons.shape[-2:]
    stack = photons.reshape(-1, height, width)
    light = np.broadcast_to(np.asarray(illumination, dtype=np.float32), photons.shape).reshape(-1, height, width)
    out = np.empty(stack.shape, np.uint16)
    chunk = max(1, _CHUNK_PIXELS // (height * width))  # cache-sized pieces
    for i in range(0, len(stack), chunk):
        expected = ndimage.gaussian_filter(
            stack[i : i + chunk].astype(np.float32), (0, sigma_px, sigma_px), mode="nearest"
        )
        expected += cfg.background_photons
        expected *= light[i : i + chunk]
        # shot and read noise are independent and both normal: one draw with the summed variance
        counts = rng.standard_normal(expected.shape, dtype=np.float32)
        counts *= np.sqrt(expected + cfg.read_noise_counts**2)
        counts += expected + cfg.camera_offset_counts
        np.clip(np.rint(counts, out=counts), 0, np.iinfo(np.uint16).max, out=counts)
        out[i : i + chunk] = counts
    return out.reshape(photons.shape)
