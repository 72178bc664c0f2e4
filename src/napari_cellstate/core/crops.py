"""Single-cell crops around each object of a movie, vectorised per frame.

Conventions (``docs/method.md``): a square crop of ``size_px`` around the
object centre ``(round(y), round(x))``, reflect padding where the crop window
leaves the frame, then per-crop standardisation (subtract the mean, divide by
the standard deviation) and clipping to ``±clip``.

Geometry. Without rescaling the window is ``size_px`` wide and the object's
centre pixel lands on crop pixel ``(size_px // 2, size_px // 2)``: rows
``round(y) - size_px // 2`` to ``round(y) - size_px // 2 + size_px - 1``.
With rescaling the window is ``W = round(size_px * target / source)`` pixels
wide, placed the same way (rows from ``round(y) - W // 2``), and resized to
``size_px`` exactly as ``skimage.transform.resize(window, (size_px, size_px),
order=1, mode="reflect", anti_aliasing=W > size_px)`` does: bilinear
interpolation, after a Gaussian anti-aliasing filter (sigma ``(W / size_px -
1) / 2``) when shrinking. Because every window of a run has the same size, that
resize is one linear map ``R`` (``size_px x W``) applied to all windows at once,
``R @ window @ R.T``. The crops' actual pixel size is ``source * W / size_px``
(recorded in :attr:`CropResult.settings` as ``pixel_size_um``).

Neighbour masking happens on the window at the movie's resolution, before the
resize and the standardisation.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from .config import CropConfig
from .progress import Progress, run_to_completion

__all__ = ["CropResult", "check_crop_window", "extract_crops", "iter_extract_crops", "standardise_crops"]


@dataclass
class CropResult:
    """Crops of a set of objects and how they were made.

    Attributes
    ----------
    crops : ndarray of shape (N, S, S), dtype float32, or None
        One crop per row of ``objects``, in the same order; ``S`` is ``size_px``. None when the crops were
        streamed to a sink (:func:`iter_extract_crops`).
    objects : DataFrame
        A copy of the input rows (same index and order) with a bool column
        ``crop_at_border``: the crop window left the frame and was
        reflect-padded.
    settings : dict
        What was done, for the dataset metadata: ``size_px``, ``window_px``
        (side of the window cut from the movie, px), ``source_pixel_size_um``
        (the movie's), ``target_pixel_size_um`` (requested), ``pixel_size_um``
        (the crops' actual pixel size, or None if unknown), ``standardise``,
        ``clip`` (None when not applied), ``mask_neighbours``, ``padding``,
        ``resize`` and ``movie_shape`` (T, Y, X).
    """

    crops: np.ndarray | None
    objects: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


def standardise_crops(crops: np.ndarray, clip: float | None = None) -> np.ndarray:
    """Standardise each crop in place (mean 0, std 1) and clip to ``±clip``.

    A uniform crop (std 0) becomes all zeros.

    Parameters
    ----------
    crops : ndarray of shape (N, S, S), dtype float32
        Modified in place.
    clip : float or None, default=None
        Clip the standardised values to ``[-clip, clip]``; None does not clip.

    Returns
    -------
    ndarray of shape (N, S, S)
        ``crops``.

    Examples
    --------
    >>> crops = np.array([[[0, 0], [0, 4]], [[3, 3], [3, 3]]], dtype=np.float32)
    >>> standardise_crops(crops, clip=1.5).tolist()
    [[[-0.5773502588272095, -0.5773502588272095], [-0.5773502588272095, 1.5]], [[0.0, 0.0], [0.0, 0.0]]]
    """
    if len(crops) == 0:
        return crops
    n_pixels = crops.shape[1] * crops.shape[2]
    mean = crops.sum(axis=(1, 2), dtype=np.float64) / n_pixels
    crops -= mean.astype(crops.dtype)[:, None, None]
    centred = crops.reshape(len(crops), -1)
    std = np.sqrt(np.einsum("nk,nk->n", centred, centred, dtype=np.float64) / n_pixels)
    std[~(std > 0)] = 1.0  # uniform (or non-finite) crops: only subtract the mean
    crops *= (1.0 / std).astype(crops.dtype)[:, None, None]
    if clip is not None:
        np.clip(crops, -clip, clip, out=crops)
    return crops


def _resize_matrix(window_px: int, size_px: int) -> np.ndarray:
    """The (size_px, window_px) linear map that ``skimage.transform.resize`` applies along one axis."""
    from skimage.transform import resize

    # Resizing the identity along axis 0 only gives the map's columns: resize is separable and linear.
    eye = np.eye(window_px, dtype=np.float64)
    matrix = resize(
        eye, (size_px, window_px), order=1, mode="reflect", anti_aliasing=window_px > size_px, preserve_range=True
    )
    return matrix.astype(np.float32)


def _resize_windows(windows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``matrix @ window @ matrix.T`` for every window, as two large matrix products (not n small ones)."""
    n, window, _ = windows.shape
    size = len(matrix)
    along_x = (windows.reshape(n * window, window) @ matrix.T).reshape(n, window, size)
    along_y = matrix @ along_x.transpose(1, 0, 2).reshape(window, n * size)
    return np.ascontiguousarray(along_y.reshape(size, n, size).transpose(1, 0, 2))


def _median_of_background(windows: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Median of the ``background`` pixels of each window; NaN where a window has none. Shape (n,)."""
    n = len(windows)
    values = np.where(background, windows, np.nan).reshape(n, -1)
    values.sort(axis=1)  # NaN sorts last
    count = background.reshape(n, -1).sum(axis=1)
    rows = np.arange(n)
    low = values[rows, np.maximum(count - 1, 0) // 2]
    high = values[rows, count // 2]
    return np.where(count > 0, 0.5 * (low + high), np.nan).astype(windows.dtype)


def check_crop_window(cfg: CropConfig, shape_yx: tuple[int, int], pixel_size_um: float | None = None) -> int:
    """The side of the movie window each crop is cut from, refused when larger than the frame.

    Checked before any work (the CLI calls it before segmenting), so a crop size that cannot fit never grows a
    padded frame or a stack of crops beyond memory.

    Parameters
    ----------
    cfg : CropConfig
        Crop size and optional target pixel size.
    shape_yx : tuple of int
        Frame size (rows, columns) in px.
    pixel_size_um : float, optional
        The movie's pixel size in micrometres, for rescaled crops.

    Returns
    -------
    int
        The window side in movie pixels.

    Raises
    ------
    ValueError
        If the window is larger than the frame's shorter side.

    Examples
    --------
    >>> check_crop_window(CropConfig(size_px=64), (512, 512))
    64
    >>> check_crop_window(CropConfig(size_px=64, pixel_size_um=0.66), (100, 100), 0.33)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Crops of 64 px at 0.66 um/px need a 128 px window of the movie, larger than its 100 x 100 px ...
    """
    size = cfg.size_px
    rescaled = cfg.pixel_size_um is not None and pixel_size_um is not None
    window = max(1, round(size * cfg.pixel_size_um / pixel_size_um)) if rescaled else size
    if window > min(shape_yx):
        at = f" at {cfg.pixel_size_um:g} um/px" if rescaled else ""
        raise ValueError(
            f"Crops of {size} px{at} need a {window} px window of the movie, larger than its {shape_yx[0]} x "
            f"{shape_yx[1]} px frames: choose a crop size of at most {min(shape_yx)} px (a nucleus needs about "
            "64 px at 0.33 um/px)."
        )
    return window


def _check_inputs(movie, objects: pd.DataFrame, cfg: CropConfig, labels, pixel_size_um) -> None:
    shape = tuple(getattr(movie, "shape", ()))
    if len(shape) != 3:
        raise ValueError(f"Crops need a (T, Y, X) movie; got shape {shape}.")
    missing = sorted({"t", "y", "x"} - set(objects.columns))
    if missing:
        raise ValueError(f"The objects table lacks columns {missing}; crops need t, y and x.")
    if cfg.pixel_size_um is not None and pixel_size_um is None:
        raise ValueError(
            f"CropConfig.pixel_size_um={cfg.pixel_size_um} asks to rescale the crops, so the movie's pixel size "
            "is needed: pass pixel_size_um=... (micrometres per pixel of the movie), or set "
            "CropConfig.pixel_size_um=None to keep the movie's resolution."
        )
    if pixel_size_um is not None and not pixel_size_um > 0:
        raise ValueError(f"pixel_size_um must be positive, got {pixel_size_um}.")
    if cfg.mask_neighbours:
        if labels is None:
            raise ValueError(
                "mask_neighbours=True needs the label image (labels=..., shape (T, Y, X), one id per nucleus) "
                "to know which pixels belong to neighbours; pass it or set mask_neighbours=False."
            )
        label_shape = tuple(getattr(labels, "shape", ()))
        if label_shape != shape:
            raise ValueError(
                f"mask_neighbours=True needs labels of the movie's shape {shape}; got labels of shape "
                f"{label_shape}. Use the segmentation of this movie."
            )
        if "object_id" not in objects.columns:
            raise ValueError(
                "mask_neighbours=True needs an object_id column (each object's id in the label image) to tell "
                "the central nucleus from its neighbours."
            )

    t = pd.to_numeric(objects["t"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad_t = ~(np.isfinite(t) & (t == np.round(t)) & (t >= 0) & (t < shape[0]))
    if bad_t.any():
        rows = objects.index[bad_t]
        listing = ", ".join(
            f"row {r} (t={v})" for r, v in zip(rows[:10], objects["t"].iloc[np.flatnonzero(bad_t)[:10]], strict=True)
        )
        more = f" and {bad_t.sum() - 10} more" if bad_t.sum() > 10 else ""
        raise ValueError(
            f"{bad_t.sum()} object(s) refer to frames outside the movie (frames 0 to {shape[0] - 1}): "
            f"{listing}{more}. Use the objects table of this movie."
        )
    for axis, size in (("y", shape[1]), ("x", shape[2])):
        pos = pd.to_numeric(objects[axis], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~(np.isfinite(pos) & (np.rint(pos) >= 0) & (np.rint(pos) <= size - 1))
        if bad.any():
            rows = list(objects.index[bad][:10])
            raise ValueError(
                f"{bad.sum()} object(s) have no valid {axis} position inside the frame (0 to {size - 1} px), "
                f"e.g. rows {rows}. Positions are in pixels, (y, x) = (row, column)."
            )


def iter_extract_crops(
    movie,
    objects: pd.DataFrame,
    cfg: CropConfig | None = None,
    *,
    labels=None,
    pixel_size_um: float | None = None,
    sink: Callable[[np.ndarray], None] | None = None,
) -> Generator[Progress, None, CropResult]:
    """Cut a square crop around every object, one frame at a time, reporting progress.

    Each frame is read once, reflect-padded once, and all its crops are
    gathered with one fancy-indexing operation; masking, resizing and
    standardisation are array operations over that frame's crops.

    Parameters
    ----------
    movie : array-like of shape (T, Y, X)
        numpy, dask or zarr array; one frame is read at a time.
    objects : DataFrame
        One row per crop, with ``t`` (frame index), ``y`` and ``x`` (centre
        row and column, px); ``object_id`` is needed for ``mask_neighbours``.
    cfg : CropConfig, default=CropConfig()
        Crop size, optional rescaling, standardisation, clipping, masking.
    labels : array-like of shape (T, Y, X), dtype int, optional
        Label image whose ids are the objects' ``object_id``; 0 is background.
        Needed only for ``cfg.mask_neighbours``: pixels of any other nonzero
        label in a crop are replaced by the crop's background level (median of
        its label-0 pixels; the frame's when the crop has none).
    pixel_size_um : float, optional
        The movie's pixel size in micrometres; needed when
        ``cfg.pixel_size_um`` asks for rescaling.
    sink : callable, optional
        Receives each frame's crops, in table order, instead of keeping them: memory stays bounded by one
        frame whatever the movie's length (e.g. a crop store's ``append``). ``objects`` must then be sorted by
        frame, and the result's ``crops`` is None.

    Yields
    ------
    Progress
        One event per frame holding objects.

    Returns
    -------
    CropResult
        Crops in the order of ``objects``.

    Raises
    ------
    ValueError
        Rescaling without the movie's pixel size; masking without labels or
        with labels of another shape; objects in frames outside the movie or
        centred outside the frame.
    """
    cfg = CropConfig() if cfg is None else cfg
    _check_inputs(movie, objects, cfg, labels, pixel_size_um)
    n_frames, height, width = (int(s) for s in movie.shape)
    size = cfg.size_px
    window = check_crop_window(cfg, (height, width), pixel_size_um)
    resize = _resize_matrix(window, size) if window != size else None
    half = window // 2

    t = pd.to_numeric(objects["t"]).to_numpy().astype(np.int64)
    rows = np.rint(objects["y"].to_numpy(dtype=np.float64)).astype(np.int64) - half  # window's first row
    cols = np.rint(objects["x"].to_numpy(dtype=np.float64)).astype(np.int64) - half
    at_border = (rows < 0) | (cols < 0) | (rows + window > height) | (cols + window > width)
    own_ids = objects["object_id"].to_numpy(dtype=np.int64) if cfg.mask_neighbours else None

    if sink is not None and np.any(np.diff(t) < 0):
        raise ValueError("Streaming crops (sink=...) needs the objects sorted by frame: sort them by 't' first.")
    crops = np.empty((len(objects), size, size), dtype=np.float32) if sink is None else None
    frames = np.unique(t)
    for step, frame_index in enumerate(frames, start=1):
        picks = np.flatnonzero(t == frame_index)
        frame = np.asarray(movie[int(frame_index)], dtype=np.float32)
        padded = np.pad(frame, half, mode="reflect")
        windows = sliding_window_view(padded, (window, window))[rows[picks] + half, cols[picks] + half]
        if cfg.mask_neighbours:
            frame_labels = np.asarray(labels[int(frame_index)])
            label_windows = sliding_window_view(np.pad(frame_labels, half, mode="reflect"), (window, window))[
                rows[picks] + half, cols[picks] + half
            ]
            neighbour = (label_windows != 0) & (label_windows != own_ids[picks, None, None])
            has_neighbour = neighbour.any(axis=(1, 2))
            if has_neighbour.any():
                level = _median_of_background(windows[has_neighbour], label_windows[has_neighbour] == 0)
                if np.isnan(level).any():  # a crop with no background pixel: use the frame's background
                    frame_background = frame[frame_labels == 0]
                    level[np.isnan(level)] = np.median(frame_background) if frame_background.size else frame.min()
                windows[has_neighbour] = np.where(
                    neighbour[has_neighbour], level[:, None, None], windows[has_neighbour]
                )
        if resize is not None:
            windows = _resize_windows(windows, resize)
        if cfg.standardise:
            standardise_crops(windows, cfg.clip)
        if sink is None:
            crops[picks] = windows
        else:
            sink(np.ascontiguousarray(windows, dtype=np.float32))
        yield Progress(step, len(frames), f"frame {int(frame_index)}: {len(picks)} crops")

    table = objects.copy()
    table["crop_at_border"] = at_border
    effective = None if pixel_size_um is None else float(pixel_size_um) * window / size
    settings = {
        "size_px": size,
        "window_px": window,
        "source_pixel_size_um": None if pixel_size_um is None else float(pixel_size_um),
        "target_pixel_size_um": cfg.pixel_size_um,
        "pixel_size_um": effective,
        "standardise": cfg.standardise,
        "clip": cfg.clip if cfg.standardise else None,
        "mask_neighbours": cfg.mask_neighbours,
        "padding": "reflect",
        "resize": "none" if resize is None else "bilinear, anti-aliased (skimage.transform.resize, order=1)",
        "movie_shape": [n_frames, height, width],
    }
    return CropResult(crops=crops, objects=table, settings=settings)


def extract_crops(
    movie,
    objects: pd.DataFrame,
    cfg: CropConfig | None = None,
    *,
    labels=None,
    pixel_size_um: float | None = None,
) -> CropResult:
    """Cut a square crop around every object; the blocking form of :func:`iter_extract_crops`.

    Parameters
    ----------
    movie : array-like of shape (T, Y, X)
        numpy, dask or zarr array.
    objects : DataFrame
        One row per crop with ``t``, ``y``, ``x`` (px); ``object_id`` for masking.
    cfg : CropConfig, default=CropConfig()
    labels : array-like of shape (T, Y, X), dtype int, optional
        Needed for ``cfg.mask_neighbours``.
    pixel_size_um : float, optional
        The movie's pixel size in micrometres; needed for rescaling.

    Returns
    -------
    CropResult

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from napari_cellstate.core.config import CropConfig
    >>> movie = np.zeros((2, 100, 100), dtype=np.uint16)
    >>> movie[1, 40, 60] = 7
    >>> objects = pd.DataFrame({"t": [1, 0], "y": [40.2, 3.0], "x": [59.8, 50.0]})
    >>> result = extract_crops(movie, objects, CropConfig(size_px=16, standardise=False))
    >>> result.crops.shape, float(result.crops[0, 8, 8])
    ((2, 16, 16), 7.0)
    >>> result.objects["crop_at_border"].tolist()
    [False, True]
    """
    return run_to_completion(iter_extract_crops(movie, objects, cfg, labels=labels, pixel_size_um=pixel_size_um))
