"""Tracking with btrack, and the check that its compiled library loads.

btrack ships a C++ library built against a recent libstdc++; where the system's
is older (Debian 12, Ubuntu 22.04) it cannot load. Every tracking call checks
first and raises :class:`BtrackUnavailableError`, which names the command that
rebuilds the library (``napari-cellstate doctor --fix-btrack``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import itertools
import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_TRACKER_CONFIG",
    "FIX_BTRACK_COMMAND",
    "BtrackUnavailableError",
    "TrackingResult",
    "btrack_library_path",
    "check_btrack_library",
    "check_tracker_config",
    "lineage_agreement",
    "return_misplaced_daughters",
    "track_objects",
]

FIX_BTRACK_COMMAND = "napari-cellstate doctor --fix-btrack"
DEFAULT_TRACKER_CONFIG = Path(__file__).parent / "data" / "btrack_cell_config.json"


class BtrackUnavailableError(RuntimeError):
    """btrack is missing or its compiled library cannot be loaded."""


def btrack_library_path() -> Path:
    """Where the installed btrack keeps ``libtracker.so`` (btrack is not imported)."""
    spec = importlib.util.find_spec("btrack")
    if spec is None or not spec.submodule_search_locations:
        raise BtrackUnavailableError("btrack is not installed: pip install btrack")
    suffix = {"darwin": ".dylib", "win32": ".DLL"}.get(sys.platform, ".so")
    return Path(next(iter(spec.submodule_search_locations))) / "libs" / f"libtracker{suffix}"


def check_btrack_library() -> tuple[bool, str]:
    """Try to load btrack's library; return (loads, one-line explanation)."""
    try:
        path = btrack_library_path()
    except BtrackUnavailableError as err:
        return False, str(err)
    if not path.exists():
        return False, f"btrack's library is missing at {path}"
    try:
        ctypes.CDLL(str(path))
    except OSError as err:
        return False, f"btrack's library does not load: {err}"
    return True, f"btrack's library loads ({path})"


def _import_btrack():
    """Import btrack after checking its library, with its console logging quietened."""
    loads, why = check_btrack_library()
    if not loads:
        raise BtrackUnavailableError(f"{why}. Rebuild it for this machine with: {FIX_BTRACK_COMMAND}")
    import btrack

    logger = logging.getLogger("btrack")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.WARNING)
    return btrack


def check_tracker_config(path: os.PathLike | str) -> None:
    """Refuse a btrack configuration file that is missing or not btrack's JSON, with the reason."""
    import json

    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"The btrack configuration {path} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"The btrack configuration {path} is not valid JSON: {err}.") from None
    tracker = content.get("TrackerConfig") if isinstance(content, dict) else None
    if not isinstance(tracker, dict) or "MotionModel" not in tracker:
        raise ValueError(
            f"{path} is not a btrack configuration: it needs a TrackerConfig with a MotionModel "
            f"(start from the packaged one: {DEFAULT_TRACKER_CONFIG})."
        )


@contextmanager
def quiet_native_output(enabled: bool = True):
    """Send C-level stdout/stderr (GLPK, btrack's C++) to a temporary file while active."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@dataclass
class TrackingResult:
    """Tracks of a set of objects.

    Attributes
    ----------
    objects : DataFrame
        The input rows with ``track_id`` and ``parent_track_id`` (0 = none) added.
    graph : dict of int to list of int
        Division graph in napari Tracks form: ``{daughter: [parent]}``.
    """

    objects: pd.DataFrame
    graph: dict[int, list[int]]


def track_objects(
    objects: pd.DataFrame,
    shape_yx: tuple[int, int],
    *,
    config_path: os.PathLike | str | None = None,
    max_search_radius_px: float = 50.0,
    division_radius_px: float | None = 18.0,
    verbose: bool = False,
) -> TrackingResult:
    """Link objects into tracks with btrack, keeping divisions.

    Parameters
    ----------
    objects : DataFrame
        One row per object with columns ``t`` (frame) and ``y``, ``x`` (px).
    shape_yx : tuple of int
        Frame size (rows, columns) in px.
    config_path : path, optional
        A btrack JSON configuration; the packaged cell model by default.
    max_search_radius_px : float, default=50.0
        How far an object may move between frames.
    division_radius_px : float or None, default=18.0
        Recover divisions btrack missed (see :func:`recover_divisions`), after taking back daughters it gave to
        the wrong mother (:func:`return_misplaced_daughters`); None keeps btrack's alone.
    verbose : bool, default=False
        Show the optimiser's console output.

    Returns
    -------
    TrackingResult
        Every object gets a track id of 1 or more; objects of a single-frame input (nothing to link) each get
        their own single-frame track.
    """
    missing = {"t", "y", "x"} - set(objects.columns)
    if missing:
        raise ValueError(f"objects lacks columns {sorted(missing)}; it needs t, y and x.")
    if objects["t"].nunique() < 2:  # one frame: nothing to link; each object is its own single-frame track
        return TrackingResult(_own_tracks(objects.copy(), np.ones(len(objects), bool)), {})
    config_path = Path(config_path or DEFAULT_TRACKER_CONFIG)
    check_tracker_config(config_path)
    btrack = _import_btrack()
    localizations = {
        "t": objects["t"].to_numpy(int),
        "x": objects["x"].to_numpy(float),
        "y": objects["y"].to_numpy(float),
        "z": np.zeros(len(objects)),
    }
    with quiet_native_output(not verbose), btrack.BayesianTracker(verbose=verbose) as tracker:
        tracker.configure(str(config_path))
        tracker.max_search_radius = max_search_radius_px
        tracker.tracking_updates = ["MOTION"]
        tracker.append(localizations)
        tracker.volume = ((0, shape_yx[1]), (0, shape_yx[0]))
        tracker.track(step_size=100)
        tracker.optimize()
        tracklets = list(tracker.tracks)

    track_id = np.zeros(len(objects), np.int64)
    parent_of: dict[int, int] = {}
    for tracklet in tracklets:
        refs = np.asarray(tracklet.refs)
        track_id[refs[refs >= 0]] = tracklet.ID
        if tracklet.parent != tracklet.ID:
            parent_of[tracklet.ID] = int(tracklet.parent)
    result = objects.copy()
    result["track_id"] = track_id
    result["parent_track_id"] = result["track_id"].map(parent_of).fillna(0).astype(np.int64)
    result = _own_tracks(result, track_id == 0)  # objects btrack left out: never share the id 0
    if division_radius_px:
        result = recover_divisions(return_misplaced_daughters(result), division_radius_px)
    parents = result.drop_duplicates("track_id").set_index("track_id")["parent_track_id"]
    return TrackingResult(objects=result, graph={int(d): [int(p)] for d, p in parents.items() if p > 0})


NUCLEI_PER_MOVE = 1.5  # default search and division radii, in nucleus diameters


def nucleus_diameter_px(objects: pd.DataFrame) -> float:
    """The movie's typical nucleus diameter: the median equivalent diameter of its objects (px)."""
    area = pd.to_numeric(objects.get("area"), errors="coerce") if "area" in objects else pd.Series(dtype=float)
    area = area[np.isfinite(area) & (area > 0)]
    if area.empty:
        raise ValueError("The objects have no area, so the nucleus size is unknown: give the radii explicitly.")
    return float(2 * np.sqrt(area.median() / np.pi))


def tracking_radii_px(objects: pd.DataFrame, pixel_size_um: float, cfg) -> tuple[float, float | None]:
    """The search and division radii in px: the configured ones, or 1.5 nucleus diameters each."""
    diameter = None

    def default() -> float:
        nonlocal diameter
        diameter = diameter or nucleus_diameter_px(objects)
        return NUCLEI_PER_MOVE * diameter

    search = cfg.max_search_radius_um / pixel_size_um if cfg.max_search_radius_um else default()
    if not cfg.recover_divisions:
        return search, None
    division = cfg.division_radius_um / pixel_size_um if cfg.division_radius_um else default()
    return search, division


def _own_tracks(table: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """Give each of ``rows`` a new track of its own (ids after the largest one), with no parent."""
    first = int(table["track_id"].max()) + 1 if "track_id" in table.columns and len(table) else 1
    if "track_id" not in table.columns:
        table["track_id"] = np.zeros(len(table), np.int64)
        table["parent_track_id"] = np.zeros(len(table), np.int64)
    table.loc[rows, "track_id"] = np.arange(first, first + int(rows.sum()), dtype=np.int64)
    table.loc[rows, "parent_track_id"] = 0
    return table


def recover_divisions(objects: pd.DataFrame, radius_px: float, min_frames: int = 3) -> pd.DataFrame:
    """Split tracks where a sister appears beside them: the divisions a linker misses.

    When chromatin separates, a frame-to-frame linker keeps the mother's track
    on one daughter and starts a new track for the other. Where a track that
    lasts ``min_frames`` or more starts (after the first frame, with no parent)
    within ``radius_px`` of where another track was one frame earlier, and that
    track goes on for ``min_frames`` or more, that track is cut there: its
    earlier part becomes the mother and both pieces after the cut her daughters.

    Objects btrack left unassigned (``track_id`` 0) are neither mothers nor daughters.

    Parameters
    ----------
    objects : DataFrame
        Columns ``t, y, x, track_id, parent_track_id``.
    """
    table = objects.copy()
    first_frame = table["t"].min()
    spans = table[table["track_id"] > 0].groupby("track_id")["t"].agg(["min", "size"])
    candidates = spans[(spans["min"] > first_frame) & (spans["size"] >= min_frames)].sort_values("min")
    next_id = int(table["track_id"].max()) + 1
    for track, (start, _size) in candidates.iterrows():
        rows = table["track_id"] == track
        if (table.loc[rows, "parent_track_id"] > 0).any():
            continue
        origin = table.loc[rows & (table["t"] == start), ["y", "x"]].to_numpy()[0]
        before = table[(table["t"] == start - 1) & (table["track_id"] != track) & (table["track_id"] > 0)]
        if before.empty:
            continue
        distance = np.hypot(before["y"].to_numpy() - origin[0], before["x"].to_numpy() - origin[1])
        mother = int(before["track_id"].iloc[int(np.argmin(distance))])
        continuation = (table["track_id"] == mother) & (table["t"] >= start)
        if distance.min() > radius_px or continuation.sum() < min_frames:
            continue
        grandchildren = table["parent_track_id"] == mother
        table.loc[grandchildren, "parent_track_id"] = next_id
        table.loc[continuation, "track_id"] = next_id
        table.loc[continuation | rows, "parent_track_id"] = mother
        next_id += 1
    return table


def return_misplaced_daughters(objects: pd.DataFrame) -> pd.DataFrame:
    """Undo a division whose daughter is better explained as the sister of a neighbour's daughter.

    Daughters appear either side of where their mother was: the midpoint of the two lies near her last position.
    Where one daughter of a two-daughter division, taken with where a neighbouring track goes on in the same frame,
    has a midpoint nearer that neighbour's previous position than the two daughters' midpoint is to their mother,
    the linker gave a neighbour's daughter to the wrong mother. That daughter loses her parent (for
    :func:`recover_divisions` to place), and her sister goes on as the mother's own track.

    Parameters
    ----------
    objects : DataFrame
        Columns ``t, y, x, track_id, parent_track_id``.
    """
    table = objects.copy()
    starts = table.sort_values("t").drop_duplicates("track_id").set_index("track_id")
    for mother, daughters in starts[starts["parent_track_id"] > 0].groupby("parent_track_id"):
        before = table[(table["track_id"] == mother) & (table["t"] < daughters["t"].min())].sort_values("t")
        if len(daughters) != 2 or daughters["t"].nunique() != 1 or before.empty:
            continue
        t, last = int(daughters["t"].iloc[0]), before.iloc[-1]
        here = daughters[["y", "x"]].to_numpy(float)
        own = np.hypot(*(here.mean(axis=0) - last[["y", "x"]].to_numpy(float)))
        then = table[(table["t"] == last["t"]) & ~table["track_id"].isin([mother, 0])].set_index("track_id")
        now = table[(table["t"] == t) & ~table["track_id"].isin([0, *daughters.index])].set_index("track_id")
        neighbours = then.index.intersection(now.index)
        if neighbours.empty:
            continue
        went = now.loc[neighbours, ["y", "x"]].to_numpy(float)
        was = then.loc[neighbours, ["y", "x"]].to_numpy(float)
        # each daughter taken as a neighbour's: how far the best such pair's midpoint lies from that neighbour
        theirs = [np.hypot(*((went + point) / 2 - was).T).min() for point in here]
        k = int(np.argmin(theirs))
        if theirs[k] >= own:
            continue
        daughter, sister = daughters.index[k], daughters.index[1 - k]
        table.loc[table["track_id"] == daughter, "parent_track_id"] = 0
        table.loc[table["parent_track_id"] == sister, "parent_track_id"] = mother
        table.loc[table["track_id"] == sister, ["track_id", "parent_track_id"]] = (
            mother,
            int(before["parent_track_id"].iloc[0]),
        )
    return table


def _division_events(table: pd.DataFrame) -> pd.DataFrame:
    """One row per mother: her track, the frame her first daughter starts and where she was the frame before."""
    starts = table.sort_values("t").drop_duplicates("track_id")
    daughters = starts[starts["parent_track_id"] > 0]
    rows = []
    for mother, group in daughters.groupby("parent_track_id"):
        t = int(group["t"].min())
        before = table[(table["track_id"] == mother) & (table["t"] < t)].sort_values("t")
        if len(before):
            rows.append((int(mother), t, *before[["y", "x"]].to_numpy()[-1]))
    return pd.DataFrame(rows, columns=["mother", "t", "y", "x"])


def _one_to_one(
    reference: pd.DataFrame, tracked: pd.DataFrame, radius_px: float, match: list[tuple[int, ...]], own_free: np.ndarray
) -> None:
    """Match the reference rows still unmatched in ``match`` frame by frame (Hungarian within ``radius_px``)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    free = reference[[not m for m in match]]
    for t, ref_rows in free.groupby("t").groups.items():
        own = tracked.index[(tracked["t"] == t).to_numpy() & own_free]
        if len(own) == 0:
            continue
        cost = cdist(free.loc[ref_rows, ["y", "x"]], tracked.loc[own, ["y", "x"]])
        rows, cols = linear_sum_assignment(np.where(cost <= radius_px, cost, 1e9))
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] <= radius_px:
                match[ref_rows[r]] = (int(own[c]),)


def _split_figures(single: pd.DataFrame, pairs: pd.DataFrame, single_free, pair_free, radius_px: float):
    """Where one table still has a dividing figure as one object and the other already has its two daughters.

    A ``single`` row on a mother's track (before her division) is paired with two sister rows of ``pairs`` in the
    same frame (daughters of one mother, on two tracks) whose midpoint lies within ``radius_px`` and nearer to it
    than any one row of ``pairs``: the figure's two halves, not a nucleus beside it. Only rows still free
    (``single_free``, ``pair_free``: boolean arrays) take part. Yields (single row, (sister rows)), nearest
    midpoint first, each row used once.
    """
    from scipy.spatial.distance import cdist

    mothers = set(pairs["parent_track_id"].unique()) - {0}
    firsts = single.sort_values("t").drop_duplicates("track_id")
    splits = firsts[firsts["parent_track_id"] > 0].groupby("parent_track_id")["t"].min()  # her daughters' frame
    dividing = (single["t"] < single["track_id"].map(splits)).to_numpy() & single_free
    candidates = []
    for t, group in single[dividing].groupby("t"):
        where = group[["y", "x"]].to_numpy(float)
        nearest = cdist(where, pairs.loc[pairs["t"] == t, ["y", "x"]].to_numpy(float)).min(axis=1, initial=np.inf)
        sisters = pairs[(pairs["t"] == t) & pair_free & pairs["parent_track_id"].isin(mothers)]
        for _, family in sisters.groupby("parent_track_id"):
            for a, b in itertools.combinations(family.index, 2):
                if family.at[a, "track_id"] == family.at[b, "track_id"]:
                    continue
                middle = (family.loc[a, ["y", "x"]].to_numpy(float) + family.loc[b, ["y", "x"]].to_numpy(float)) / 2
                distance = np.hypot(*(where - middle).T)
                ok = (distance <= radius_px) & (distance < nearest)
                candidates += [(d, s, (a, b)) for d, s in zip(distance[ok], group.index[ok], strict=True)]
    used_single: set[int] = set()
    used_pairs: set[int] = set()
    for _, s, sisters in sorted(candidates, key=lambda c: c[0]):
        if s not in used_single and not used_pairs & set(sisters):
            used_single.add(s)
            used_pairs.update(sisters)
            yield s, sisters


def lineage_agreement(
    reference: pd.DataFrame,
    tracked: pd.DataFrame,
    radius_px: float,
    frame_tolerance: int = 2,
    *,
    split_figures: bool = True,
) -> dict[str, float]:
    """How well tracks keep a reference lineage: division recall and precision, and links kept.

    Objects are matched frame by frame (Hungarian, within ``radius_px``).
    When a chromatin figure divides, where its two halves become two objects
    is a judgement on which annotators and segmentations differ by a few
    frames. So a reference object on a dividing mother's track is first
    matched to two sister objects (daughters of one tracked mother) whose
    midpoint lies within ``radius_px`` and nearer to it than any single
    object (the tracked figure split earlier), and two reference sisters
    likewise to one object of a tracked mother (it split later). A reference
    frame-to-frame link (along a track, or from a mother's last object to a
    daughter's first) is kept when both ends are matched and every tracked
    object of the later end shares a track with, or is the daughter of, a
    tracked object of the earlier end: identity measures whether the lineage
    is right. A division (the first frame of a mother's daughters, where she
    was the frame before) is found when a tracked division lies within
    ``frame_tolerance`` frames and ``radius_px``, or when the two are the same
    figure split at different frames (matched as above). Both tables have
    ``t, y, x, track_id, parent_track_id``. ``split_figures=False`` matches
    one to one only, so a figure split at another frame than the
    reference's costs links and possibly the division.

    Returns
    -------
    dict
        ``links``, ``links_kept``, ``identity`` (their ratio), ``divisions``,
        ``divisions_found``, ``division_recall``, ``division_precision``.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    reference = reference.reset_index(drop=True)
    tracked = tracked.reset_index(drop=True)
    match: list[tuple[int, ...]] = [()] * len(reference)
    ref_free, own_free = np.ones(len(reference), bool), np.ones(len(tracked), bool)
    early, late = [], []
    if split_figures:
        early = list(_split_figures(reference, tracked, ref_free, own_free, radius_px))  # tracked figure split first
        for row, sisters in early:
            match[row] = sisters
            ref_free[row], own_free[list(sisters)] = False, False
        late = list(_split_figures(tracked, reference, own_free, ref_free, radius_px))  # reference's split first
        for row, sisters in late:
            for sister in sisters:
                match[sister] = (row,)
            own_free[row], ref_free[list(sisters)] = False, False
    _one_to_one(reference, tracked, radius_px, match, own_free)
    track = tracked["track_id"].to_numpy()
    parent = tracked["parent_track_id"].to_numpy()
    ordered = reference.sort_values(["track_id", "t"])
    links = [(a, b) for _, g in ordered.groupby("track_id") for a, b in zip(g.index[:-1], g.index[1:], strict=True)]
    first = ordered.drop_duplicates("track_id", keep="first")
    last = ordered.drop_duplicates("track_id", keep="last").set_index("track_id")["t"]
    for row in first[first["parent_track_id"] > 0].itertuples():
        mother = ordered[(ordered["track_id"] == row.parent_track_id) & (ordered["t"] < row.t)]
        if len(mother) and row.parent_track_id in last.index:
            links.append((mother.index[-1], row.Index))
    kept = sum(
        bool(match[a] and match[b])
        and all(any(track[j] == track[i] or parent[j] == track[i] > 0 for i in match[a]) for j in match[b])
        for a, b in links
    )
    truth, found = _division_events(reference), _division_events(tracked)
    hits = 0
    if len(truth) and len(found):
        near = (np.abs(truth["t"].to_numpy()[:, None] - found["t"].to_numpy()[None]) <= frame_tolerance) & (
            cdist(truth[["y", "x"]], found[["y", "x"]]) <= radius_px
        )
        # the same figure split at different frames (mother matched to sisters, or sisters to a mother), where the
        # two mothers are one cell: they share a matched object
        same = {(reference.at[row, "track_id"], parent[sisters[0]]) for row, sisters in early}
        same |= {(reference.at[sisters[0], "parent_track_id"], track[row]) for row, sisters in late}
        ref_track = reference["track_id"].to_numpy()
        same &= {(ref_track[r], track[i]) for r, matched in enumerate(match) for i in matched}
        near |= np.array([[(m, f) in same for f in found["mother"]] for m in truth["mother"]], bool)
        rows, cols = linear_sum_assignment(-near.astype(float))
        hits = int(near[rows, cols].sum())
    return {
        "links": float(len(links)),
        "links_kept": float(kept),
        "identity": kept / len(links) if links else 1.0,
        "divisions": float(len(truth)),
        "divisions_found": float(hits),
        "division_recall": hits / len(truth) if len(truth) else 1.0,
        "division_precision": hits / len(found) if len(found) else 1.0,
    }
