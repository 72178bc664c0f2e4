"""Nuclei segmentation: one label image per frame, ids unique across the movie.

Each frame is smoothed, thresholded (one Otsu level per frame, or a local
threshold for uneven illumination), cleaned, split where nuclei touch (seeds
at nucleus-sized blobs), cleared of faint texture and filtered by area. Every size is set in micrometres in
:class:`~napari_cellstate.core.config.SegmentationConfig` and converted with
its ``pixel_size_um``. Movies are read one frame at a time, so numpy, dask and
zarr movies larger than memory can be segmented into a zarr ``out`` array.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_local, threshold_otsu
from skimage.segmentation import watershed

from .config import SegmentationConfig, ThresholdMethod
from .movie import check_movie
from .progress import Progress, run_to_completion

__all__ = [
    "DEFAULT_NUCLEUS_DIAMETER_UM",
    "NoCellsFoundError",
    "config_for_nucleus_diameter",
    "detection_scores",
    "iter_segment_movie",
    "point_detection_scores",
    "segment_frame",
    "segment_movie",
]

# Where the boundary of a nucleus is drawn, as a fraction of the height of
# Otsu's level above the background. Otsu's level splits bright textured
# nuclei from background but cuts into their dim rims and nucleoli (C-shaped
# masks, later over-split); 0.6 follows the blurred edge (tuned on the
# built-in synthetic movie: F1 0.99 at IoU >= 0.5).
_LEVEL_FRACTION = 0.6
# The threshold is never below background + this many standard deviations of
# the smoothed noise, so a frame of pure noise yields no nucleus.
_NOISE_FLOOR_SD = 4.0
# Seeds of touching nuclei: Laplacian-of-Gaussian blobs of sigma
# min_separation / 1.5 (about a third of a nucleus diameter), at least 0.6
# min_separation apart. A nucleus must rise this many robust standard
# deviations above the background's texture at the nucleus scale. Chosen on
# two real images with hand-checked nuclei (HT29 Hoechst, Drosophila
# H2B-GFP; benchmarks/real_segmentation.py) and the synthetic movie.
_LOG_SIGMA_PER_SEPARATION = 1.5
_SEED_SPACING = 0.6
_CONTRAST_SD = 8.0
# Touching nuclei are split only where the border between them lies this
# fraction of the way down from a piece's peak to the component's dimmest pixel.
_MIN_DIP = 0.2
_VALLEY_SMOOTHING = 0.4


# The nucleus diameter the size settings of SegmentationConfig are made for (µm).
DEFAULT_NUCLEUS_DIAMETER_UM = 9.0


def config_for_nucleus_diameter(
    diameter_px: float, pixel_size_um: float | None = None, **settings
) -> SegmentationConfig:
    """Default settings for nuclei ``diameter_px`` across.

    Every size setting is in µm, made for nuclei of ``DEFAULT_NUCLEUS_DIAMETER_UM``. Without
    ``pixel_size_um``, a pixel size that makes the given diameter that many µm scales them all
    (smoothing, seed spacing, area limits, the local threshold's neighbourhood) to the user's
    nuclei; with it, the movie keeps its real pixel size and the size settings are scaled
    instead, which gives the same settings in pixels. ``settings`` override any other field.

    >>> cfg = config_for_nucleus_diameter(30, pixel_size_um=0.3)  # nuclei 9 µm across: the defaults
    >>> cfg.pixel_size_um, cfg.min_separation_um
    (0.3, 5.0)
    """
    if not diameter_px > 0:
        raise ValueError(f"The nucleus diameter must be a positive number of pixels, got {diameter_px}.")
    if pixel_size_um is None:
        return SegmentationConfig(pixel_size_um=DEFAULT_NUCLEUS_DIAMETER_UM / diameter_px, **settings)
    scale = diameter_px * pixel_size_um / DEFAULT_NUCLEUS_DIAMETER_UM
    defaults = SegmentationConfig(pixel_size_um=pixel_size_um)
    scaled = {name: getattr(defaults, name) * scale for name in _LENGTH_SETTINGS}
    scaled |= {name: getattr(defaults, name) * scale**2 for name in _AREA_SETTINGS}
    return SegmentationConfig(pixel_size_um=pixel_size_um, **{**scaled, **settings})


# The size settings of SegmentationConfig, scaled with the nucleus: lengths (µm) and areas (µm²).
_LENGTH_SETTINGS = ("smoothing_um", "local_block_um", "min_separation_um")
_AREA_SETTINGS = ("min_area_um2", "max_area_um2")


class NoCellsFoundError(ValueError):
    """No nucleus was found in the whole movie; the message names the settings to change."""


def _odd(n: float) -> int:
    """The odd integer nearest to ``n`` (at least 3)."""
    return max(3, 2 * round((n - 1) / 2) + 1)


def _noise_sd(frame: np.ndarray) -> float:
    """Robust standard deviation of pixel noise from differences of neighbouring pixels."""
    diff = np.diff(frame, axis=1).ravel()
    sd = 1.4826 * float(np.median(np.abs(diff - np.median(diff)))) / np.sqrt(2)
    if sd == 0:  # quantised, nearly noise-free data
        sd = float(diff.std()) / np.sqrt(2)
    return sd


def _smoothed_noise_sd(frame: np.ndarray, cfg: SegmentationConfig) -> float:
    """Standard deviation of the pixel noise of ``frame`` after the Gaussian smoothing."""
    sigma_px = cfg.smoothing_um / cfg.pixel_size_um
    if sigma_px <= 0:
        return _noise_sd(frame)
    radius = int(4 * sigma_px + 0.5)
    delta = np.zeros(2 * radius + 1)
    delta[radius] = 1.0
    kernel = ndi.gaussian_filter1d(delta, sigma_px, truncate=4.0)
    # white noise through a separable 2D kernel: sd shrinks by sqrt(sum k2d^2) = sum k1d^2
    return _noise_sd(frame) * float((kernel**2).sum())


def _otsu_levels(image: np.ndarray) -> tuple[float, float]:
    """Otsu's level of ``image`` and its background (the median of the pixels below it)."""
    otsu = float(threshold_otsu(image))
    below = image[image <= otsu]
    return otsu, float(np.median(below)) if below.size else float(image.min())


def _local_background(smoothed: np.ndarray, otsu: float, block: int) -> np.ndarray:
    """Gaussian-weighted local mean of the background pixels (those below Otsu's level).

    A normalised convolution: nuclei are left out of both the sum and the
    weights, so a crowded neighbourhood does not raise its own background.
    """
    is_background = (smoothed <= otsu).astype(np.float32)
    weights = threshold_local(is_background, block, method="gaussian", mode="reflect")
    sums = threshold_local(smoothed * is_background, block, method="gaussian", mode="reflect")
    fallback = float(np.median(smoothed[is_background > 0])) if is_background.any() else float(smoothed.min())
    return np.where(weights > 1e-3, sums / np.maximum(weights, 1e-3), fallback).astype(np.float32)


def _foreground(smoothed: np.ndarray, frame: np.ndarray, cfg: SegmentationConfig) -> np.ndarray:
    """Boolean mask of the nuclear pixels of one smoothed frame.

    The threshold is ``base + height``. OTSU: ``base`` is the background (the
    median of the pixels below Otsu's level) and ``height`` is
    ``threshold_scale * _LEVEL_FRACTION`` times the height of Otsu's level
    above it. LOCAL: ``base`` is a local background map (Gaussian-weighted
    mean of the background pixels over ``local_block_um``, via
    ``threshold_local``), and the same rule is applied to the frame with that
    map subtracted, so dim nuclei in a dark corner are judged against their
    own surroundings. ``height`` is at least ``_NOISE_FLOOR_SD`` noise sd.
    """
    otsu, background = _otsu_levels(smoothed)
    if cfg.threshold == ThresholdMethod.LOCAL:
        background_map = _local_background(smoothed, otsu, _odd(cfg.local_block_um / cfg.pixel_size_um))
        otsu, offset = _otsu_levels(smoothed - background_map)
        base = background_map + offset
        height = otsu - offset
    else:
        base = background
        height = otsu - background
    height = max(cfg.threshold_scale * _LEVEL_FRACTION * height, _NOISE_FLOOR_SD * _smoothed_noise_sd(frame, cfg))
    return smoothed > base + height


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background region that does not reach the frame's edge filled.

    Same result as ``ndi.binary_fill_holes`` (4-connected background), by one
    labelling of the background instead of repeated dilations.
    """
    regions, n = ndi.label(~mask)
    if n == 0:
        return mask
    edge = np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]])
    outside = np.zeros(n + 1, bool)
    outside[edge] = True
    outside[0] = True  # label 0 is the mask itself
    return mask | ~outside[regions]


def _remove_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    """Drop connected components of ``mask`` with fewer than ``min_px`` pixels."""
    components, n = ndi.label(mask)
    if n == 0:
        return mask
    areas = np.bincount(components.ravel())
    keep = areas >= min_px
    keep[0] = False
    return keep[components]


def _split(
    mask: np.ndarray, image: np.ndarray, smoothed: np.ndarray, cfg: SegmentationConfig, min_px: float
) -> np.ndarray:
    """Label ``mask``, splitting touching nuclei with a watershed seeded at nucleus-sized blobs.

    Seeds are maxima of the Laplacian of Gaussian at the nucleus scale (sigma
    ``min_separation_um / _LOG_SIGMA_PER_SEPARATION``, at least
    ``_SEED_SPACING * min_separation_um`` apart): two touching nuclei give two
    blobs even where their outlines make one convex shape, which the
    distance map cannot split. Only components holding several seeds are
    examined further, in their bounding box: a watershed of the smoothed
    intensity from the seeds, where a piece smaller than ``min_area_um2``
    is merged into its neighbour.
    """
    components, n = ndi.label(mask)
    if n == 0 or not cfg.split_touching:
        return components
    separation_px = cfg.min_separation_um / cfg.pixel_size_um
    blobs = -ndi.gaussian_laplace(image, separation_px / _LOG_SIGMA_PER_SEPARATION)
    # valleys are judged on the image smoothed over a fifth of a nucleus, so that texture inside one
    # nucleus (nucleoli, chromocentres) is not taken for the gap between two
    broad = ndi.gaussian_filter(image, separation_px * _VALLEY_SMOOTHING, mode="nearest")
    floor = float(blobs.min())
    peaks = peak_local_max(
        np.where(mask, blobs, floor),
        min_distance=max(1, round(_SEED_SPACING * separation_px)),
        exclude_border=False,
    )
    peaks = peaks[mask[tuple(peaks.T)]]
    owner = components[tuple(peaks.T)]
    counts = np.bincount(owner, minlength=n + 1)
    counts[0] = 0
    several = np.flatnonzero(counts > 1)
    labels = components.copy()
    next_id = n + 1
    boxes = ndi.find_objects(components)
    for c in several:
        box = boxes[c - 1]
        own = components[box] == c
        local = peaks[owner == c] - np.array([box[0].start, box[1].start])
        markers = np.zeros(own.shape, np.int32)
        markers[tuple(local.T)] = np.arange(1, len(local) + 1)
        seeds = np.arange(1, len(local) + 1)
        basins = None
        intensity = smoothed[box]
        depth = ndi.distance_transform_edt(own)
        while seeds.size > 1:
            basins = watershed(-intensity, np.where(np.isin(markers, seeds), markers, 0), mask=own)
            areas = np.bincount(basins.ravel(), minlength=int(seeds.max()) + 1)[seeds]
            if areas.min() < min_px:  # merge the smallest piece into its neighbour
                seeds = np.delete(seeds, np.argmin(areas))
                continue
            # a valley of intensity, or a neck of the outline (flat nuclei pressed together)
            dips = np.maximum(_dips(basins, broad[box], seeds), _dips(basins, depth, seeds))
            if dips.min() >= _MIN_DIP:
                break
            seeds = np.delete(seeds, np.argmin(dips))  # no valley towards a neighbour: one nucleus
        if seeds.size < 2:
            continue
        view = labels[box]
        for seed in seeds[1:]:  # the first basin keeps the component's id
            view[basins == seed] = next_id
            next_id += 1
    return labels


def _dips(basins: np.ndarray, intensity: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """For each basin: how far its border with other basins lies below its peak (1 - border / peak).

    Two touching nuclei meet in a valley of intensity; the pieces of one flat
    or ragged nucleus meet at nearly their own brightness.
    """
    grown = ndi.grey_dilation(basins, size=3)
    shrunk = -ndi.grey_dilation(-np.where(basins > 0, basins, basins.max() + 1), size=3)
    border = (basins > 0) & ((grown != basins) | (shrunk != basins))
    inside = basins > 0
    peaks = ndi.maximum(intensity, np.where(inside, basins, 0), seeds)
    floor = float(intensity[inside].min())
    edge = ndi.maximum(intensity, np.where(border & (grown > 0) & (shrunk <= basins.max()), basins, 0), seeds)
    height = np.maximum(np.asarray(peaks) - floor, 1e-6)
    return 1.0 - (np.asarray(edge) - floor) / height


def _block_gaussian(image: np.ndarray, block: int, sigma_px: float) -> np.ndarray:
    """A wide Gaussian blur of ``image`` computed on means of ``block`` x ``block`` pixels, then repeated back."""
    rows, cols = image.shape
    padded = np.pad(image, ((0, -rows % block), (0, -cols % block)), mode="edge")
    means = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block).mean(axis=(1, 3))
    blurred = ndi.gaussian_filter(means, sigma_px / block, mode="nearest")
    return np.repeat(np.repeat(blurred, block, axis=0), block, axis=1)[:rows, :cols]


def _drop_faint(labels: np.ndarray, image: np.ndarray, cfg: SegmentationConfig) -> np.ndarray:
    """Remove objects that do not stand out of the background's texture at the nucleus scale.

    Both the image and the background are judged after smoothing over half a
    nucleus (``min_separation_um / 2``): clusters of bright cytoplasmic
    granules or speckle pass a pixel threshold, but at that scale they are
    within the background's own spread, while a nucleus rises far above it
    (``_CONTRAST_SD`` robust standard deviations of the smoothed background,
    measured a nucleus away from every object).
    """
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return labels
    separation_px = cfg.min_separation_um / cfg.pixel_size_um
    coarse = ndi.gaussian_filter(image, separation_px / 2, mode="nearest")
    away = ~ndi.binary_dilation(labels > 0, iterations=max(1, round(separation_px)))
    if away.sum() < 100:  # objects everywhere: no background to judge against
        return labels
    # the background around each place: a normalised convolution of the pixels away from every object, over
    # two nuclei; it varies slowly, so it is computed on blocks of half a nucleus (a wide Gaussian is costly)
    block = max(1, int(separation_px // 2))
    weight = _block_gaussian(away.astype(np.float32), block, 4 * separation_px)
    level = _block_gaussian(np.where(away, coarse, 0).astype(np.float32), block, 4 * separation_px)
    coarse = coarse - np.where(weight > 1e-3, level / np.maximum(weight, 1e-3), float(np.median(coarse[away])))
    background = coarse[away]
    centre = float(np.median(background))
    spread = 1.4826 * float(np.median(np.abs(background - centre)))
    peak = ndi.maximum(coarse, labels, ids)
    faint = ids[peak < centre + _CONTRAST_SD * spread]
    labels = labels.copy()
    labels[np.isin(labels, faint)] = 0
    return labels


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Renumber the non-zero labels 1..n in order of their current ids (int32)."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[labels]


def segment_frame(frame: np.ndarray, cfg: SegmentationConfig | None = None) -> np.ndarray:
    """Segment the nuclei of one frame.

    Steps: Gaussian smoothing (``smoothing_um``); a threshold; holes filled
    (``fill_holes``); objects under ``min_area_um2`` removed; touching nuclei
    split by a watershed from nucleus-sized blobs where a valley of intensity or
    a neck of the outline divides them (``split_touching``; the nucleus scale is
    twice ``min_separation_um``); objects that do not rise above the
    background's texture at that scale removed; objects over ``max_area_um2``
    removed. For nuclei of another size, :func:`config_for_nucleus_diameter`
    scales every size setting.

    The threshold is set as a height above the background (the median of the
    pixels below Otsu's level; with ``ThresholdMethod.LOCAL`` a map of the
    local background over ``local_block_um``). The height is 0.6 times that of
    Otsu's level, which follows the blurred edge of a nucleus rather than
    cutting into its dim rim, times ``threshold_scale``: 2 puts it above
    Otsu's level, 0.5 halfway down. It is never below 4 standard deviations of
    the smoothed noise, so a frame of pure noise yields no nucleus.

    Parameters
    ----------
    frame : ndarray of shape (Y, X)
        Intensities (any integer or float type).
    cfg : SegmentationConfig, default=None
        Settings; ``None`` uses the defaults.

    Returns
    -------
    ndarray of shape (Y, X), dtype int32
        Labels; 0 is background, nuclei are numbered 1..n.

    Raises
    ------
    ValueError
        If ``frame`` is not 2D or holds NaN or infinite values.

    Examples
    --------
    Two bright discs 10 µm across on a dark background, 0.5 µm per pixel:

    >>> import numpy as np
    >>> rows, cols = np.mgrid[:80, :80]
    >>> frame = np.full((80, 80), 100.0)
    >>> frame[(rows - 20) ** 2 + (cols - 20) ** 2 < 100] = 400
    >>> frame[(rows - 55) ** 2 + (cols - 50) ** 2 < 100] = 400
    >>> labels = segment_frame(frame, SegmentationConfig(pixel_size_um=0.5))
    >>> labels.dtype.name, labels.max()
    ('int32', np.int32(2))
    """
    cfg = cfg or SegmentationConfig()
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"segment_frame needs one 2D (Y, X) frame, got shape {frame.shape}.")
    image = frame.astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError("The frame contains NaN or infinite values; replace them with the background value first.")
    if image.max() == image.min():
        return np.zeros(image.shape, np.int32)
    sigma_px = cfg.smoothing_um / cfg.pixel_size_um
    smoothed = ndi.gaussian_filter(image, sigma_px, mode="nearest") if sigma_px > 0 else image
    mask = _foreground(smoothed, image, cfg)
    if cfg.fill_holes:
        mask = _fill_holes(mask)
    px_area_um2 = cfg.pixel_size_um**2
    mask = _remove_small(mask, cfg.min_area_um2 / px_area_um2)
    labels = _split(mask, image, smoothed, cfg, cfg.min_area_um2 / px_area_um2)
    labels = _drop_faint(labels, image, cfg)
    drop = np.bincount(labels.ravel()) > cfg.max_area_um2 / px_area_um2
    drop[0] = False
    labels[drop[labels]] = 0
    return _relabel(labels)


def iter_segment_movie(movie, cfg: SegmentationConfig | None = None, out=None) -> Generator[Progress, None, np.ndarray]:
    """Segment a movie frame by frame, yielding progress; returns the labels.

    Frames are read one at a time (``np.asarray(movie[t])``), so a dask or
    zarr movie is never loaded whole; give a zarr ``out`` to keep the labels
    out of memory too. Object ids are unique across the stack: each frame's
    ids continue from the largest id of the frames before it.

    Parameters
    ----------
    movie : array-like of shape (T, Y, X)
        numpy, dask or zarr array, single channel.
    cfg : SegmentationConfig, default=None
        Settings; ``None`` uses the defaults.
    out : array-like of shape (T, Y, X), default=None
        Where to write the labels (anything with ``__setitem__``, such as a
        zarr array of dtype int32); ``None`` makes a numpy int32 array.

    Yields
    ------
    Progress
        After each frame; ``metrics`` holds ``n_objects`` of that frame.

    Returns
    -------
    array of shape (T, Y, X), dtype int32
        ``out`` if given, else a new numpy array; 0 is background.

    Raises
    ------
    MovieError
        If the movie is not a usable (T, Y, X) time-lapse (see ``check_movie``).
    NoCellsFoundError
        If no frame holds a nucleus.
    ValueError
        If ``out`` has another shape than the movie.
    """
    cfg = cfg or SegmentationConfig()
    check_movie(movie)
    shape = tuple(movie.shape)
    if out is None:
        out = np.zeros(shape, np.int32)
    elif tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)} but the movie has shape {shape}.")
    n_frames = shape[0]
    offset = 0
    for t in range(n_frames):
        labels = segment_frame(np.asarray(movie[t]), cfg)
        n = int(labels.max())
        if offset + n > np.iinfo(np.int32).max:
            raise ValueError("More objects than int32 label ids can number; segment the movie in parts.")
        labels[labels > 0] += offset
        out[t] = labels
        offset += n
        yield Progress(
            step=t + 1,
            total=n_frames,
            message=f"frame {t + 1}/{n_frames}: {n} nuclei",
            metrics={"n_objects": float(n)},
        )
    if offset == 0:
        raise NoCellsFoundError(
            f"No nucleus was found in any of the {n_frames} frames. Try a lower threshold_scale "
            f"(now {cfg.threshold_scale:g}), a smaller min_area_um2 (now {cfg.min_area_um2:g} µm²), "
            f"check pixel_size_um (now {cfg.pixel_size_um:g} µm; nuclei must cover "
            f"{cfg.min_area_um2:g}–{cfg.max_area_um2:g} µm²), or less smoothing_um (now {cfg.smoothing_um:g} µm)."
        )
    return out


def segment_movie(movie, cfg: SegmentationConfig | None = None, out=None):
    """Blocking form of :func:`iter_segment_movie`.

    Examples
    --------
    >>> from napari_cellstate.core.config import SimulationConfig
    >>> from napari_cellstate.core.simulate import simulate_movie
    >>> sample = simulate_movie(SimulationConfig(shape_yx=(128, 128), n_frames=2, n_cells=4, n_divisions=0))
    >>> labels = segment_movie(sample.movie)
    >>> labels.shape, labels.dtype.name
    ((2, 128, 128), 'int32')
    >>> detection_scores(sample.labels, labels)["f1"] > 0.8
    True
    """
    return run_to_completion(iter_segment_movie(movie, cfg, out))


def _match_frame(true: np.ndarray, pred: np.ndarray, iou_threshold: float):
    """One-to-one matches of one frame: (true ids, pred ids, IoUs, all true ids, all pred ids)."""
    true = np.asarray(true).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    true_ids, true_area = np.unique(true[true > 0], return_counts=True)
    pred_ids, pred_area = np.unique(pred[pred > 0], return_counts=True)
    empty = np.zeros(0, np.int64)
    both = (true > 0) & (pred > 0)
    if not both.any():
        return empty, empty, np.zeros(0), true_ids, pred_ids
    # one integer per (true, pred) pair of overlapping pixels: a contingency table without lexsort
    span = int(pred_ids[-1]) + 1
    keys, inter = np.unique(true[both] * span + pred[both], return_counts=True)
    pairs = np.stack([keys // span, keys % span])
    a_true = true_area[np.searchsorted(true_ids, pairs[0])]
    a_pred = pred_area[np.searchsorted(pred_ids, pairs[1])]
    iou = inter / (a_true + a_pred - inter)
    order = np.argsort(-iou, kind="stable")
    order = order[iou[order] >= iou_threshold]
    if iou_threshold > 0.5:  # each object overlaps at most one partner by more than half
        chosen = order
    else:  # greedy by decreasing IoU
        used_true, used_pred, chosen_list = set(), set(), []
        for k in order:
            a, b = int(pairs[0, k]), int(pairs[1, k])
            if a not in used_true and b not in used_pred:
                used_true.add(a)
                used_pred.add(b)
                chosen_list.append(k)
        chosen = np.asarray(chosen_list, dtype=np.int64)
    return pairs[0, chosen], pairs[1, chosen], iou[chosen], true_ids, pred_ids


def detection_scores(true_labels, pred_labels, iou_threshold: float = 0.5) -> dict[str, float]:
    """Object detection scores of a segmentation against a ground truth.

    Objects are matched one-to-one within each frame when their
    intersection over union is at least ``iou_threshold``. Ids need not
    agree between the two label images, nor be unique across frames.

    Parameters
    ----------
    true_labels : array-like of shape (Y, X) or (T, Y, X), dtype int
        Ground-truth labels; 0 is background.
    pred_labels : array-like of the same shape, dtype int
        Predicted labels; 0 is background.
    iou_threshold : float, default=0.5
        Smallest intersection over union of a match.

    Returns
    -------
    dict of str to float
        ``tp``, ``fp``, ``fn`` (counts), ``precision``, ``recall``, ``f1`` and
        ``iou_mean`` (mean IoU of the matches). A ratio with a zero
        denominator is 1.0 (nothing to find, or nothing found wrongly), so
        two empty label images score 1.0.

    Raises
    ------
    ValueError
        If the shapes differ or are not 2D or 3D.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.zeros((10, 10), int)
    >>> truth[1:5, 1:5], truth[6:9, 6:9] = 1, 2
    >>> pred = np.zeros((10, 10), int)
    >>> pred[1:5, 1:4] = 7
    >>> scores = detection_scores(truth, pred)
    >>> scores["tp"], scores["fn"], scores["fp"], scores["recall"]
    (1.0, 1.0, 0.0, 0.5)
    """
    shape = tuple(np.shape(true_labels))
    if shape != tuple(np.shape(pred_labels)) or len(shape) not in (2, 3):
        raise ValueError(
            f"Expected two label images of the same (Y, X) or (T, Y, X) shape, got {shape} "
            f"and {tuple(np.shape(pred_labels))}."
        )
    if len(shape) == 2:
        true_labels, pred_labels = [true_labels], [pred_labels]
    tp = n_true = n_pred = 0
    iou_sum = 0.0
    for true, pred in zip(true_labels, pred_labels, strict=True):
        _, _, ious, true_ids, pred_ids = _match_frame(true, pred, iou_threshold)
        tp += len(ious)
        iou_sum += float(ious.sum())
        n_true += len(true_ids)
        n_pred += len(pred_ids)
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * tp / (n_true + n_pred) if n_true + n_pred else 1.0
    return {
        "tp": float(tp),
        "fp": float(n_pred - tp),
        "fn": float(n_true - tp),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "iou_mean": iou_sum / tp if tp else 0.0,
    }


def point_detection_scores(reference_yx, predicted_yx, radius_px: float, shape=None, margin_px: float = 0.0):
    """Detection scores of object centres: one-to-one matches (Hungarian) within ``radius_px``.

    Reference centres closer than ``margin_px`` to the edge of an image of
    ``shape`` are left out, with the detections matched to them; unmatched
    detections in the margin are left out too (a nucleus cut by the edge is
    counted by some annotators and not others). Returns ``tp``, ``fp``, ``fn``, ``precision``,
    ``recall`` and ``f1`` as in :func:`detection_scores`.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    reference, predicted = (np.asarray(p, float).reshape(-1, 2) for p in (reference_yx, predicted_yx))
    inside_ref, inside_pred = (np.ones(len(p), bool) for p in (reference, predicted))
    if shape is not None and margin_px > 0:
        high = np.asarray(shape[:2], float) - margin_px
        inside_ref, inside_pred = (((p >= margin_px) & (p < high)).all(axis=1) for p in (reference, predicted))
    tp = 0
    if len(reference) and len(predicted):
        distance = cdist(reference, predicted)
        cost = np.where(distance <= radius_px, distance, 1e9)
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] < 1e9
        rows, cols = rows[ok], cols[ok]
        # a detection matched to a reference centre in the margin is left out with it
        inside_pred[cols] = inside_ref[rows]
        tp = int(inside_ref[rows].sum())
    n_ref, n_pred = int(inside_ref.sum()), int(inside_pred.sum())
    return {
        "tp": float(tp),
        "fp": float(n_pred - tp),
        "fn": float(n_ref - tp),
        "precision": tp / n_pred if n_pred else 1.0,
        "recall": tp / n_ref if n_ref else 1.0,
        "f1": 2 * tp / (n_ref + n_pred) if n_ref + n_pred else 1.0,
    }
