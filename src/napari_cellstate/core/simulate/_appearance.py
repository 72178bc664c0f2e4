"""How a nucleus looks in each state: per-cell traits and the state-to-shape map.

Sizes and brightness follow real H2B crops at about 0.33 um/px (the table in
docs/method.md, "Real and synthetic crops in numbers"): interphase nuclei
8-17 um long with aspect ratio 1.0-1.6, metaphase plates 10.2-12.2 x 3.8-4.7 um
and 1.4-1.8x brighter per pixel. Some plates are seen end-on (small and round), some face-on
(a round rosette of chromosome clumps as large as a young interphase nucleus), and
newborn daughters are small and bright, so morphology is informative but not perfect.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..states import CellState
from ._render import N_NUCLEOLI, Nuclei

_INTER = CellState.INTERPHASE.code
_PRO = CellState.PROPHASE.code
_PROMETA = CellState.PROMETAPHASE.code
_META = CellState.METAPHASE.code
_ANA = CellState.ANAPHASE.code
_TELO = CellState.TELOPHASE.code


@dataclass
class CellTraits:
    """Properties a cell keeps for life (arrays of shape (N,), lengths in px)."""

    area_birth: np.ndarray
    aspect: np.ndarray
    angle_rad: np.ndarray
    brightness_gain: np.ndarray
    texture_tile: np.ndarray
    edge_width: np.ndarray
    nucleoli: np.ndarray  # (N, N_NUCLEOLI, 3)
    plate_length: np.ndarray
    plate_width: np.ndarray
    plate_gain: np.ndarray
    plate_angle_rad: np.ndarray
    end_on: np.ndarray
    face_on: np.ndarray

    def __len__(self) -> int:
        return len(self.aspect)

    def take(self, index) -> CellTraits:
        """Subset of cells (index array or boolean mask)."""
        return CellTraits(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concatenate(parts: list[CellTraits]) -> CellTraits:
        """Join trait sets in order."""
        return CellTraits(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(CellTraits)})


def sample_traits(
    rng: np.random.Generator,
    n: int,
    pixel_size_um: float,
    end_on_fraction: float,
    n_tiles: int,
    face_on_fraction: float = 0.0,
) -> CellTraits:
    """Draw ``n`` cells' traits; a plate is seen end-on, face-on or (mostly) from the side."""
    um = 1.0 / pixel_size_um
    # long axis just before mitosis: real nuclei vary in size beyond what growth explains
    length_max = np.clip(rng.lognormal(np.log(14.4), 0.12, n), 11.0, 19.0) * um
    aspect = rng.uniform(1.0, 1.6, n)
    area_max = np.pi * (length_max / 2) ** 2 / aspect
    nucleoli = np.stack(
        [
            rng.uniform(-0.8, 0.8, (n, N_NUCLEOLI)),
            rng.uniform(-0.8, 0.8, (n, N_NUCLEOLI)),
            rng.uniform(0.1, 0.35, (n, N_NUCLEOLI)) * (rng.random((n, N_NUCLEOLI)) < 0.8),
        ],
        axis=-1,
    )
    return CellTraits(
        area_birth=area_max / 2,
        aspect=aspect,
        angle_rad=rng.uniform(-np.pi / 2, np.pi / 2, n),
        brightness_gain=np.clip(rng.normal(1.0, 0.12, n), 0.7, 1.3),
        texture_tile=rng.integers(0, n_tiles, n),
        edge_width=rng.uniform(0.8, 2.5, n),
        nucleoli=nucleoli,
        plate_length=rng.uniform(10.2, 12.2, n) * um,
        plate_width=rng.uniform(3.8, 4.7, n) * um,
        plate_gain=rng.uniform(1.4, 1.8, n),
        plate_angle_rad=rng.uniform(-np.pi / 2, np.pi / 2, n),
        end_on=(view := rng.random(n)) < end_on_fraction,
        face_on=(view >= end_on_fraction) & (view < end_on_fraction + face_on_fraction),
    )


def spacing_radius(traits: CellTraits, nuclei: Nuclei, growth: np.ndarray) -> np.ndarray:
    """Radius (px) a cell keeps clear around its centre, in every state.

    A mitotic cell rounds up but keeps its cell body, so spacing follows the
    interphase size the cell had reached, or the drawn nucleus if larger.
    """
    area = traits.area_birth * (1 + np.clip(growth, 0, 1))
    cell = np.sqrt(area * traits.aspect / np.pi)
    drawn = np.maximum(nuclei.semi_major, nuclei.lobe_offset + nuclei.semi_minor)
    return np.maximum(cell, drawn) + 3 * nuclei.edge_roughness


def appearance(
    traits: CellTraits,
    state: np.ndarray,
    progress: np.ndarray,
    growth: np.ndarray,
    photons_per_pixel: float,
) -> Nuclei:
    """Drawing parameters of each cell in its current state (centred at 0, 0).

    Parameters
    ----------
    traits : CellTraits
        N cells.
    state : ndarray of shape (N,), dtype int
        ``CellState.code`` of each cell.
    progress : ndarray of shape (N,)
        Fraction of the current mitotic phase elapsed, in [0, 1].
    growth : ndarray of shape (N,)
        Fraction of interphase elapsed, in [0, 1]; the area grows as ``1 + growth``.
    photons_per_pixel : float
        Interphase chromatin brightness.
    """
    n = len(traits)
    p = np.asarray(progress, dtype=float)
    g = np.clip(np.asarray(growth, dtype=float), 0.0, 1.0)
    state = np.asarray(state)

    area = traits.area_birth * (1 + g)
    aspect = traits.aspect.copy()
    angle = traits.angle_rad.copy()
    # newborn nuclei are compact: brighter for the first percent or so of the cycle
    gain = traits.brightness_gain * (1 + 0.45 * np.exp(-g / 0.02))
    contrast = np.full(n, 0.24)
    threshold = np.zeros(n)
    scale = np.full(n, 0.8)
    roughness = np.full(n, 0.25)
    nucleoli_depth = np.ones(n)
    lobe_offset = np.zeros(n)
    semi_major = semi_minor = None

    area_max = traits.area_birth * 2
    is_pro = state == _PRO
    aspect[is_pro] = 1 + (aspect[is_pro] - 1) * (1 - 0.6 * p[is_pro])
    area[is_pro] = area_max[is_pro] * (1 - 0.2 * p[is_pro])
    gain[is_pro] = traits.brightness_gain[is_pro] * (1 + 0.5 * p[is_pro])
    contrast[is_pro] = 0.4 + 0.8 * p[is_pro]
    threshold[is_pro] = 0.35 * p[is_pro]
    scale[is_pro] = 0.8 + 0.4 * p[is_pro]
    roughness[is_pro] = 0.25 + 1.8 * p[is_pro]
    nucleoli_depth[is_pro] = 1 - p[is_pro]

    is_prometa = state == _PROMETA
    area[is_prometa] = area_max[is_prometa] * 0.5
    aspect[is_prometa] = 1.15
    angle[is_prometa] = traits.plate_angle_rad[is_prometa]
    gain[is_prometa] = traits.brightness_gain[is_prometa] * 1.9
    contrast[is_prometa] = 1.3
    threshold[is_prometa] = 0.45
    scale[is_prometa] = 1.2
    roughness[is_prometa] = 2.5

    semi_major = np.sqrt(area * aspect / np.pi)
    semi_minor = np.sqrt(area / (np.pi * aspect))

    plate = (state == _META) | (state == _ANA)
    semi_major[plate] = traits.plate_length[plate] / 2
    semi_minor[plate] = traits.plate_width[plate] / 2
    end_on = plate & traits.end_on
    semi_major[end_on] = semi_minor[end_on] = traits.plate_width[end_on] * 0.55
    angle[plate] = traits.plate_angle_rad[plate]
    gain[plate] = traits.brightness_gain[plate] * traits.plate_gain[plate]
    contrast[plate] = 0.35
    scale[plate] = 0.9
    roughness[plate] = 1.0
    # seen along the spindle, the plate is a rosette of chromosome clumps: round, as wide as the plate is long
    face_on = (state == _META) & traits.face_on & ~traits.end_on
    semi_major[face_on] = semi_minor[face_on] = traits.plate_length[face_on] * 0.45
    gain[face_on] = traits.brightness_gain[face_on] * traits.plate_gain[face_on] * 0.6
    contrast[face_on] = 1.3
    threshold[face_on] = 0.45
    scale[face_on] = 1.2
    roughness[face_on] = 2.5

    is_ana = state == _ANA
    semi_major[is_ana] *= 0.9
    lobe_offset[is_ana] = semi_minor[is_ana] + 1.0 + 6.0 * p[is_ana]

    is_telo = state == _TELO  # a newborn daughter decondensing
    telo_area = traits.area_birth[is_telo] * (0.35 + 0.65 * p[is_telo])
    telo_aspect = 1.3 - 0.1 * p[is_telo]
    semi_major[is_telo] = np.sqrt(telo_area * telo_aspect / np.pi)
    semi_minor[is_telo] = np.sqrt(telo_area / (np.pi * telo_aspect))
    angle[is_telo] = traits.plate_angle_rad[is_telo]
    gain[is_telo] = traits.brightness_gain[is_telo] * (
        traits.plate_gain[is_telo] * (1 - p[is_telo]) + 1.45 * p[is_telo]
    )
    contrast[is_telo] = 0.7 - 0.4 * p[is_telo]
    threshold[is_telo] = 0.2 * (1 - p[is_telo])
    scale[is_telo] = 0.8 - 0.3 * p[is_telo]
    roughness[is_telo] = 1.2

    mitotic = state != _INTER
    nucleoli_depth[mitotic & ~is_pro] = 0.0
    nucleoli = traits.nucleoli.copy()
    nucleoli[:, :, 2] *= nucleoli_depth[:, None]

    zeros = np.zeros(n)
    return Nuclei(
        row=zeros,
        col=zeros.copy(),
        angle_rad=angle,
        semi_major=semi_major,
        semi_minor=semi_minor,
        lobe_offset=lobe_offset,
        brightness=photons_per_pixel * gain,
        texture_tile=traits.texture_tile,
        texture_scale=scale,
        texture_contrast=contrast,
        texture_threshold=threshold,
        edge_width=traits.edge_width,
        edge_roughness=roughness,
        nucleoli=nucleoli,
    )
