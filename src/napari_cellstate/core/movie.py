"""Check a user's movie before any work starts, with messages that say how to fix it."""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_INTENSITY", "MovieError", "check_label_image", "check_movie", "max_project_z"]

#: Largest pixel magnitude accepted: far above any camera (16-bit counts, photon numbers) yet far below where
#: float32 arithmetic (standardising crops, squared differences) overflows to infinity.
MAX_INTENSITY = 1e15


class MovieError(ValueError):
    """The movie cannot be processed as given; the message names the fix."""


def max_project_z(movie, z_axis: int = 1):
    """Maximum-intensity projection over Z of a (T, Z, Y, X) movie: numpy, dask or zarr (lazily, through dask).

    Parameters
    ----------
    movie : array-like of shape (T, Z, Y, X)
        numpy, dask or zarr array (a zarr array, e.g. from ``read_movie``, has no ``max``: it is wrapped in dask,
        one chunk per frame, so the projection reads one frame at a time).
    z_axis : int, default=1
        The Z axis.

    Returns
    -------
    array of shape (T, Y, X)
        numpy for numpy input, else a lazy dask array.

    Raises
    ------
    MovieError
        If the movie does not have 4 axes.

    Examples
    --------
    >>> max_project_z(np.arange(8).reshape(1, 2, 2, 2)).tolist()
    [[[4, 5], [6, 7]]]
    """
    shape = tuple(getattr(movie, "shape", ()))
    if len(shape) != 4:
        raise MovieError(
            f"--max-project / max_project_z needs a (T, Z, Y, X) movie with 4 axes; got shape {shape}. Leave the "
            "projection off for a (T, Y, X) movie."
        )
    if isinstance(movie, np.ndarray) or type(movie).__module__.startswith("dask"):
        return movie.max(axis=z_axis)
    import dask.array as da

    return da.from_array(movie, chunks=(1, *shape[1:])).max(axis=z_axis)


def _read_frame(movie, t: int, what: str) -> np.ndarray:
    """Frame ``t`` as a numpy array; damage in the file (a bad chunk, a cut-off file) becomes a MovieError."""
    try:
        return np.asarray(movie[t])
    except MemoryError:
        raise
    except Exception as err:  # codecs (zstd, blosc), zarr and tifffile each raise their own types
        raise MovieError(
            f"Frame {t} of the {what} could not be read: the file is damaged or truncated ({type(err).__name__}: "
            f"{err}). Copy it again from the source, or re-export it."
        ) from err


def _check_values(frame: np.ndarray, t: int, what: str) -> None:
    """Refuse NaN, infinity and values too large for float32 arithmetic, each with its own message."""
    if frame.dtype.kind != "f" and not (frame.dtype.kind in "iu" and frame.dtype.itemsize == 8):
        return
    if frame.dtype.kind == "f":
        if np.isnan(frame).any():
            raise MovieError(
                f"Frame {t} of the {what} contains NaN values. Replace them (e.g. with the background value) first."
            )
        if np.isinf(frame).any():
            raise MovieError(f"Frame {t} of the {what} contains infinite values. Replace them first.")
    peak = float(np.abs(frame).max(initial=0))
    if peak > MAX_INTENSITY:
        raise MovieError(
            f"Frame {t} of the {what} holds values too large ({peak:.3g}; at most {MAX_INTENSITY:.0e} is accepted): "
            "rescale the intensities (e.g. divide by a constant) or convert to 16-bit first."
        )


def check_movie(movie, *, rgb: bool = False, sample_frames: int | None = None):
    """Return ``movie`` if it is a usable (T, Y, X) single-channel time-lapse, else raise.

    Every frame is read once (one at a time, so dask and zarr movies larger than memory stay lazy) to look for
    damaged data, NaN, infinity, values too large and blank frames; ``sample_frames`` reads fewer.

    Parameters
    ----------
    movie : array-like of shape (T, Y, X)
        numpy, dask or zarr array.
    rgb : bool, default=False
        Whether the viewer shows it as RGB(A) (napari's ``layer.rgb``).
    sample_frames : int, optional
        Read only this many frames, evenly spaced (a quick look); all frames when None.

    Raises
    ------
    MovieError
        For a single 2D frame, RGB data, an extra axis (Z or channels), frames that cannot be read (a damaged
        file), NaN, infinity, values too large, or a blank (uniform) frame.

    Examples
    --------
    >>> movie = np.random.default_rng(0).random((3, 32, 32))
    >>> check_movie(movie) is movie
    True
    >>> movie[1] = 0
    >>> check_movie(movie)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.movie.MovieError: Frame 1 is uniform (every pixel is 0): ...
    """
    shape = tuple(getattr(movie, "shape", ()))
    if rgb or (len(shape) in (3, 4) and shape[-1] in (3, 4) and len(shape) >= 3 and shape[-2] > 4):
        raise MovieError(
            f"The image looks like RGB colour data (shape {shape}). Chromatin movies are single-channel: "
            "split the channels (napari: right-click the layer > Split RGB) and choose the H2B channel."
        )
    if len(shape) == 2:
        raise MovieError(
            f"Got a single 2D frame (shape {shape}); a time-lapse (T, Y, X) is needed for tracking. "
            "Open the whole movie, or stack the frames into one (T, Y, X) layer."
        )
    if len(shape) == 4:
        raise MovieError(
            f"Got 4 axes (shape {shape}); expected (T, Y, X). If axis 1 is Z, use a maximum projection "
            "(max_project=True / --max-project); if it is channels, pick the H2B channel first."
        )
    if len(shape) != 3:
        raise MovieError(f"Expected a (T, Y, X) movie, got shape {shape}.")
    if min(shape[1:]) < 16:
        raise MovieError(f"Frames of {shape[1]} x {shape[2]} px are too small to hold cells.")
    dtype = np.dtype(movie.dtype)
    if dtype.kind not in "uif":
        raise MovieError(f"Pixel type {dtype} is not an intensity; expected integers or floats.")
    n = shape[0] if sample_frames is None else min(sample_frames, shape[0])
    for t in np.unique(np.linspace(0, shape[0] - 1, n).astype(int)):
        frame = _read_frame(movie, int(t), "movie")
        _check_values(frame, int(t), "movie")
        if frame.max() == frame.min():
            raise MovieError(
                f"Frame {t} is uniform (every pixel is {frame.min():g}): the movie is empty or all dark there. "
                "Check the channel and the exposure, or drop the blank frames."
            )
    return movie


def check_label_image(labels, movie_shape: tuple[int, ...] | None = None):
    """Return ``labels`` if it is a usable (T, Y, X) label image (whole non-negative ids, 0 = background), else raise.

    Every frame is read once: a float image is accepted only if every value is a finite whole number (as when a
    label image was saved as float), so NaN or fractional ids never reach relabelling.

    Parameters
    ----------
    labels : array-like of shape (T, Y, X)
        numpy, dask or zarr array.
    movie_shape : tuple of int, optional
        The movie's shape; the labels must have the same.

    Returns
    -------
    array-like
        ``labels``, unchanged.

    Raises
    ------
    MovieError
        Another shape, a non-numeric dtype, unreadable frames, NaN, infinity, fractional or negative ids, or ids
        beyond 2**31 - 1.

    Examples
    --------
    >>> check_label_image(np.zeros((2, 16, 16), np.float32)).dtype
    dtype('float32')
    >>> check_label_image(np.full((2, 16, 16), 0.5))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.movie.MovieError: Frame 0 of the label image holds fractional ids ...
    """
    shape = tuple(getattr(labels, "shape", ()))
    if len(shape) != 3:
        raise MovieError(f"A label image must be (T, Y, X), one id per nucleus; got shape {shape}.")
    if movie_shape is not None and shape != tuple(movie_shape):
        raise MovieError(
            f"The labels have shape {shape} but the movie has {tuple(movie_shape)}: use the segmentation of this "
            "movie (the same frames and frame size)."
        )
    dtype = np.dtype(labels.dtype)
    if dtype.kind not in "biuf":
        raise MovieError(f"Label ids of type {dtype} are not numbers: a label image holds whole numbers per pixel.")
    for t in range(shape[0]):
        frame = _read_frame(labels, t, "label image")
        if dtype.kind == "f":
            if not np.isfinite(frame).all():
                raise MovieError(
                    f"Frame {t} of the label image contains NaN or infinite values: a label image holds whole "
                    "numbers (0 = background). Re-export the segmentation as integers."
                )
            if (frame != np.round(frame)).any():
                raise MovieError(
                    f"Frame {t} of the label image holds fractional ids (e.g. {frame[frame != np.round(frame)][0]:g}): "
                    "this is an intensity image, not labels. Pass the segmentation (whole-number ids, 0 = "
                    "background)."
                )
        if dtype.kind != "b" and (frame.min(initial=0) < 0 or frame.max(initial=0) > np.iinfo(np.int32).max):
            raise MovieError(
                f"Frame {t} of the label image holds ids outside 0 to {np.iinfo(np.int32).max} (min "
                f"{frame.min():g}, max {frame.max():g}): 0 is background and ids are positive whole numbers."
            )
    return labels
