"""The synthetic H2B time-lapse: lineages, motion, rendering and ground truth."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import SimulationConfig
from ..objects import MEASUREMENTS, measure_frame
from ..progress import Progress, run_to_completion
from ..states import CellState, state_names
from ._appearance import CellTraits, appearance, sample_traits, spacing_radius
from ._imaging import expose, illumination_field
from ._render import Nuclei, paste_add, render_nuclei
from ._textures import make_texture_bank

PATCH_PX = 64
# minutes spent in each mitotic phase; the mother track ends after anaphase and
# two daughter tracks start in telophase
_PHASE_MINUTES = {
    CellState.PROPHASE: 12.0,
    CellState.PROMETAPHASE: 8.0,
    CellState.METAPHASE: 16.0,
    CellState.ANAPHASE: 6.0,
    CellState.TELOPHASE: 8.0,
}
_MOTHER_PHASES = (CellState.PROPHASE, CellState.PROMETAPHASE, CellState.METAPHASE, CellState.ANAPHASE)
_GAP_PX = 2.0


@dataclass
class SimulationResult:
    """A simulated movie with complete ground truth.

    Attributes
    ----------
    movie : ndarray of shape (T, Y, X), dtype uint16
    labels : ndarray of shape (T, Y, X), dtype int32
        Ground-truth segmentation; each nucleus is labelled with its track id.
    objects : DataFrame
        One row per nucleus per frame: ``track_id, parent_track_id, t, y, x,
        state, area, axis_major_length, axis_minor_length, eccentricity,
        orientation, intensity_mean, neighbour_count`` (lengths in px,
        orientation in radians as in ``skimage.measure.regionprops``).
    lineage : dict of int to int
        Daughter track id to parent track id (napari Tracks ``graph`` form
        is ``{daughter: [parent]}``).
    config : SimulationConfig
    """

    movie: np.ndarray
    labels: np.ndarray
    objects: pd.DataFrame
    lineage: dict[int, int]
    config: SimulationConfig = field(repr=False)


@dataclass
class _Track:
    track_id: int
    parent_id: int
    trait: int  # row in the traits table
    born: int
    growth_at_birth: float
    mitosis_start: int | None = None
    row: float = 0.0
    col: float = 0.0
    division_axis: tuple[float, float] = (0.0, 0.0)


def _phase_frames(cfg: SimulationConfig) -> dict[CellState, int]:
    return {s: max(1, round(m * 60 / cfg.frame_interval_s)) for s, m in _PHASE_MINUTES.items()}


def _state_of(track: _Track, t: int, phases: dict[CellState, int], cycle_frames: float):
    """Return (state, progress, growth) of a track at frame t."""
    if track.mitosis_start is not None and t >= track.mitosis_start:
        elapsed = t - track.mitosis_start
        for state in _MOTHER_PHASES:
            if elapsed < phases[state]:
                return state, elapsed / phases[state], 1.0
            elapsed -= phases[state]
        return None  # divided
    if track.parent_id and t - track.born < phases[CellState.TELOPHASE]:
        return CellState.TELOPHASE, (t - track.born) / phases[CellState.TELOPHASE], 0.0
    start = track.born + (phases[CellState.TELOPHASE] if track.parent_id else 0)
    return CellState.INTERPHASE, 0.0, track.growth_at_birth + (t - start) / cycle_frames


def _relax(
    pos: np.ndarray,
    radius: np.ndarray,
    exclusion: np.ndarray,
    mobility: np.ndarray,
    siblings: np.ndarray,
    shape_yx: tuple[int, int],
) -> np.ndarray:
    """Push nuclei apart until none overlaps and mitotic exclusion zones are clear."""
    pos = pos.copy()
    need = radius[:, None] + radius[None, :] + _GAP_PX
    need = need + np.where(siblings, 0.0, np.maximum(exclusion[:, None], exclusion[None, :]))
    np.fill_diagonal(need, 0.0)
    upper = np.array(shape_yx, dtype=float) - 1
    for _ in range(200):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((delta**2).sum(-1)) + np.eye(len(pos))
        overlap = np.clip(need - dist, 0, None)
        if overlap.max(initial=0.0) < 0.05:
            break
        share = mobility[:, None] / (mobility[:, None] + mobility[None, :])
        push = (overlap * share / dist)[:, :, None] * delta * 1.05
        pos += push.sum(axis=1)
        np.clip(pos, 0, upper, out=pos)
    return pos


def iter_simulate_movie(cfg: SimulationConfig | None = None) -> Generator[Progress, None, SimulationResult]:
    """Simulate the movie frame by frame, yielding progress; returns the result.

    >>> from napari_cellstate.core.config import SimulationConfig
    >>> cfg = SimulationConfig(shape_yx=(96, 96), n_frames=2, n_cells=3, n_divisions=0)
    >>> result = run_to_completion(iter_simulate_movie(cfg))
    >>> result.movie.shape, result.movie.dtype.name
    ((2, 96, 96), 'uint16')
    """
    cfg = cfg or SimulationConfig()
    rng_layout, rng_texture, rng_noise = np.random.default_rng(cfg.seed).spawn(3)
    px = 1.0 / cfg.pixel_size_um
    phases = _phase_frames(cfg)
    cycle_frames = cfg.cell_cycle_h * 3600 / cfg.frame_interval_s
    mitosis_frames = sum(phases[s] for s in _MOTHER_PHASES)
    shape = tuple(cfg.shape_yx)

    bank = make_texture_bank(rng_texture)
    traits = sample_traits(
        rng_layout, cfg.n_cells, cfg.pixel_size_um, cfg.end_on_plate_fraction, len(bank), cfg.face_on_plate_fraction
    )

    tracks: list[_Track] = []
    dividers = set(rng_layout.choice(cfg.n_cells, size=min(cfg.n_divisions, cfg.n_cells), replace=False).tolist())
    starts = rng_layout.integers(-phases[CellState.PROPHASE], max(1, cfg.n_frames - mitosis_frames // 2), cfg.n_cells)
    for i in range(cfg.n_cells):
        track = _Track(track_id=i + 1, parent_id=0, trait=i, born=0, growth_at_birth=rng_layout.uniform(0, 0.9))
        if i in dividers:
            track.mitosis_start = int(starts[i])
            track.growth_at_birth = float(np.clip(1 - track.mitosis_start / cycle_frames, 0, 1))
        tracks.append(track)
    # sequential placement: far enough apart for the largest interphase nucleus
    start_radius = np.sqrt(traits.area_birth * 2 * traits.aspect / np.pi)
    placed: list[np.ndarray] = []
    for track in tracks:
        for _attempt in range(500):
            candidate = rng_layout.uniform(0, 1, 2) * (np.array(shape) - 1)
            if all(np.hypot(*(candidate - q)) > start_radius[track.trait] * 2 for q in placed):
                break
        placed.append(candidate)
        track.row, track.col = candidate

    drift = np.asarray(cfg.drift_um) * px
    step_sd = cfg.motility_um * px
    exclusion_px = cfg.neighbour_exclusion_um * px * cfg.neighbour_exclusion_strength

    movie = np.zeros((cfg.n_frames, *shape), np.uint16)
    labels = np.zeros((cfg.n_frames, *shape), np.int32)
    illumination = illumination_field(shape, cfg.imaging.illumination_falloff, rng_noise)
    states_per_frame: list[pd.DataFrame] = []
    alive = list(tracks)
    lineage: dict[int, int] = {}

    for t in range(cfg.n_frames):
        # divisions: a mother past anaphase becomes two telophase daughters
        next_alive: list[_Track] = []
        for track in alive:
            if _state_of(track, t, phases, cycle_frames) is not None:
                next_alive.append(track)
                continue
            mother = traits.take([track.trait])
            children = sample_traits(
                rng_layout, 2, cfg.pixel_size_um, cfg.end_on_plate_fraction, len(bank), cfg.face_on_plate_fraction
            )
            children.area_birth[:] = mother.area_birth[0]
            children.plate_angle_rad[:] = mother.plate_angle_rad[0]
            children.angle_rad[:] = mother.plate_angle_rad[0] + rng_layout.normal(0, 0.3, 2)
            children.plate_gain[:] = mother.plate_gain[0]
            traits = CellTraits.concatenate([traits, children])
            normal = np.array([np.cos(mother.plate_angle_rad[0]), -np.sin(mother.plate_angle_rad[0])])
            half_gap = mother.plate_width[0] / 2 + 4.0
            for k, sign in enumerate((1.0, -1.0)):
                child = _Track(
                    track_id=len(tracks) + 1,
                    parent_id=track.track_id,
                    trait=len(traits) - 2 + k,
                    born=t,
                    growth_at_birth=0.0,
                )
                child.row, child.col = np.array([track.row, track.col]) + sign * half_gap * normal
                child.division_axis = tuple(sign * normal)
                tracks.append(child)
                next_alive.append(child)
                lineage[child.track_id] = track.track_id
        alive = next_alive

        info = [_state_of(tr, t, phases, cycle_frames) for tr in alive]
        codes = np.array([s.code for s, _, _ in info])
        progress = np.array([p for _, p, _ in info])
        growth = np.array([g for _, _, g in info])
        alive_traits = traits.take([tr.trait for tr in alive])
        nuclei = appearance(alive_traits, codes, progress, growth, cfg.imaging.photons_per_pixel)

        # motion: random walk plus drift; telophase daughters move apart; then no overlaps
        pos = np.array([[tr.row, tr.col] for tr in alive], dtype=float)
        mitotic = codes != CellState.INTERPHASE.code
        if t > 0:
            steps = rng_layout.normal(0, step_sd, pos.shape) * np.where(mitotic, 0.3, 1.0)[:, None]
            pos += drift + steps
            telo = codes == CellState.TELOPHASE.code
            pos[telo] += 1.5 * np.array(
                [tr.division_axis for tr, is_t in zip(alive, telo, strict=True) if is_t]
            ).reshape(-1, 2)
        radius = spacing_radius(alive_traits, nuclei, growth)
        ramp = np.select(
            [codes == CellState.PROPHASE.code, codes == CellState.TELOPHASE.code, mitotic],
            [progress, 1 - progress, 1.0],
            0.0,
        )
        parents = np.array([tr.parent_id for tr in alive])
        siblings = (parents[:, None] == parents[None, :]) & (parents[:, None] > 0)
        pos = _relax(pos, radius, exclusion_px * ramp, np.where(mitotic, 0.15, 1.0), siblings, shape)
        for tr, (r, c) in zip(alive, pos, strict=True):
            tr.row, tr.col = r, c

        nuclei.row, nuclei.col = pos[:, 0], pos[:, 1]
        top = np.rint(pos[:, 0]).astype(int) - PATCH_PX // 2
        left = np.rint(pos[:, 1]).astype(int) - PATCH_PX // 2
        grid = np.arange(PATCH_PX)
        intensity, inside = render_nuclei(nuclei, top[:, None] + grid, left[:, None] + grid, bank)
        photons = np.zeros(shape, np.float32)
        paste_add(photons, intensity, top, left)
        ids = np.array([tr.track_id for tr in alive], dtype=np.int32)
        # nuclei never overlap, so adding ids writes each label once (a test checks it)
        paste_add(labels[t], inside * ids[:, None, None], top, left)
        bleach = 0.5 ** (t / cfg.imaging.bleach_half_life_frames)
        movie[t] = expose(photons, illumination * bleach, cfg.imaging, cfg.pixel_size_um, rng_noise)
        states_per_frame.append(
            pd.DataFrame(
                {"t": t, "track_id": ids, "parent_track_id": parents.astype(np.int32), "state": state_names(codes)}
            )
        )
        yield Progress(step=t + 1, total=cfg.n_frames, message=f"frame {t + 1}/{cfg.n_frames}")

    objects = _measure(movie, labels, pd.concat(states_per_frame, ignore_index=True), cfg.neighbour_radius_um * px)
    return SimulationResult(movie=movie, labels=labels, objects=objects, lineage=lineage, config=cfg)


def _measure(movie: np.ndarray, labels: np.ndarray, states: pd.DataFrame, radius_px: float) -> pd.DataFrame:
    """Ground-truth measurements of each labelled nucleus, joined with its state."""
    tables = []
    for t, (frame, mask) in enumerate(zip(movie, labels, strict=True)):
        # the same measurements as for a user's segmentation; here the label is the track id
        props = measure_frame(mask, frame, t).drop(columns=["track_id", "parent_track_id", "label", "t"])
        props = props.rename(columns={"object_id": "track_id"})
        centres = props[["y", "x"]].to_numpy()
        dist = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))
        props["neighbour_count"] = (dist <= radius_px).sum(axis=1) - 1
        props["t"] = t
        tables.append(props)
    measured = pd.concat(tables, ignore_index=True)
    objects = states.merge(measured, on=["t", "track_id"], how="inner", validate="one_to_one")
    columns = ["track_id", "parent_track_id", "t", "y", "x", "state", *MEASUREMENTS, "neighbour_count"]
    objects = objects[columns].sort_values(["t", "track_id"], ignore_index=True)
    objects["state"] = objects["state"].astype(pd.CategoricalDtype([s.value for s in CellState]))
    return objects


def simulate_movie(cfg: SimulationConfig | None = None) -> SimulationResult:
    """Blocking form of :func:`iter_simulate_movie`."""
    return run_to_completion(iter_simulate_movie(cfg))


__all__ = ["Nuclei", "SimulationResult", "iter_simulate_movie", "simulate_movie"]
