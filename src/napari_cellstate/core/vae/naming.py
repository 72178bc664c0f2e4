"""Give latents names a biologist can read, and score disentanglement.

``name_latents`` correlates every latent with measured morphology ("z29 ↔
area, r = 0.93"). Orientation is circular, so it is compared through cos 2θ
and sin 2θ. Orientation-free quantities such as eccentricity may be carried
by a *pair* of latents (as e·cos 2θ and e·sin 2θ): ``best_pairs`` scores each
pair's radius against the quantity and its angle against 2θ.
``mutual_information_gap`` is the MIG of Chen et al. (2018), for data whose
generating factors are known (the synthetic crops).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ..objects import latent_name, latent_name_list

__all__ = [
    "MIN_CELLS_TO_NAME",
    "MORPHOLOGY",
    "LatentNamingError",
    "best_pairs",
    "latent_names",
    "mutual_information_gap",
    "name_latents",
    "name_latents_within",
]

#: Measured quantities latents are named after (objects-table / crop-factor columns).
MORPHOLOGY = (
    "area",
    "eccentricity",
    "orientation",
    "intensity_mean",
    "brightness",
    "texture_contrast",
    "neighbour_count",
)
#: Fewest cells with measured quantities worth correlating latents with (r of fewer is mostly noise).
MIN_CELLS_TO_NAME = 20


class LatentNamingError(ValueError):
    """Latents cannot be named on this data (too few measured cells, nothing that varies); the message says why."""


def _standardise(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    spread = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def _quantities(table: pd.DataFrame, columns) -> dict[str, np.ndarray]:
    """Columns to compare with, orientation split into cos 2θ and sin 2θ."""
    out = {}
    for name in columns:
        if name not in table.columns:
            continue
        values = table[name].to_numpy(dtype=float)
        if name == "orientation":
            out["orientation (cos 2θ)"] = np.cos(2 * values)
            out["orientation (sin 2θ)"] = np.sin(2 * values)
        else:
            out[name] = values
    if not out:
        raise LatentNamingError(f"The table has none of the columns {list(columns)} to name latents after.")
    return out


def _usable(latents: np.ndarray, quantities: dict[str, np.ndarray], min_cells: int):
    """Rows where every quantity is finite, and the quantities that vary on them; refuse too little data."""
    values = np.stack(list(quantities.values()), axis=1)
    finite = np.isfinite(values).all(axis=1) & np.isfinite(latents).all(axis=1)
    if finite.sum() < min_cells:
        raise LatentNamingError(
            f"Only {int(finite.sum())} of {len(finite)} cells have every measured quantity (a nucleus found in "
            f"the crop); naming latents needs at least {min_cells}: add crops, or leave the latents unnamed."
        )
    varying = {name: v[finite] for name, v in quantities.items() if np.ptp(v[finite]) > 0}
    if not varying:
        raise LatentNamingError(f"Every measured quantity ({', '.join(quantities)}) is the same for all cells.")
    return latents[finite], varying


def name_latents(
    latents: np.ndarray, table: pd.DataFrame, columns=MORPHOLOGY, *, min_cells: int = MIN_CELLS_TO_NAME
) -> pd.DataFrame:
    """Correlate each latent with each measured quantity; name it after the best match.

    Cells with a missing (NaN) quantity are left out; quantities that do not vary are not candidates.

    Parameters
    ----------
    latents : ndarray of shape (N, D)
        Latent means of N cells.
    table : DataFrame
        N rows with measured quantities (e.g. the objects table, or
        :func:`~napari_cellstate.core.crop_morphology.morphology_table`).
    min_cells : int, default=MIN_CELLS_TO_NAME
        Fewest cells with every quantity measured.

    Returns
    -------
    DataFrame
        One row per latent: ``latent`` (z0, z1, ...), ``best_match``, ``r``
        (Pearson, signed) and one column of r per quantity.

    Raises
    ------
    LatentNamingError
        Too few measured cells, or no quantity that varies: latents cannot be named.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> area = rng.uniform(100, 900, 500)
    >>> z = np.stack([rng.normal(size=500), area / 100 + rng.normal(0, 0.3, 500)], axis=1)
    >>> names = name_latents(z, pd.DataFrame({"area": area}))
    >>> names.loc[1, "best_match"], bool(names.loc[1, "r"] > 0.9)
    ('area', True)
    """
    latents = np.asarray(latents, dtype=float)
    if len(latents) != len(table):
        raise ValueError(f"{len(latents)} latent vectors but {len(table)} table rows.")
    z, quantities = _usable(latents, _quantities(table, columns), min_cells)
    z = _standardise(z)
    q = _standardise(np.stack(list(quantities.values()), axis=1))
    r = z.T @ q / len(z)
    result = pd.DataFrame(r, columns=list(quantities))
    best = np.abs(r).argmax(axis=1)
    result.insert(0, "latent", latent_name_list(latents.shape[1]))
    result.insert(1, "best_match", [list(quantities)[k] for k in best])
    result.insert(2, "r", r[np.arange(len(best)), best])
    return result


def name_latents_within(
    latents: np.ndarray, table: pd.DataFrame, groups: np.ndarray, columns=MORPHOLOGY
) -> pd.DataFrame:
    """:func:`name_latents` with correlations taken within each group (class) and averaged, weighted by size.

    With labelled cells, pooled correlations are confounded by the label: metaphase cells are small, rough and
    isolated at once, so a latent of the plate's texture also follows the neighbour count. Within a class that
    shared cause is held fixed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> label = np.repeat([0, 1], 300)
    >>> size = rng.normal(size=600) - 3 * label  # metaphase cells are small ...
    >>> crowd = rng.normal(size=600) - 3 * label  # ... and isolated
    >>> z = (size + 0.1 * rng.normal(size=600))[:, None]  # a latent of size only
    >>> table = pd.DataFrame({"area": size, "neighbour_count": crowd})
    >>> round(float(name_latents(z, table)["neighbour_count"].iloc[0]), 2)  # pooled: looks like crowding too
    0.72
    >>> round(float(name_latents_within(z, table, label)["neighbour_count"].iloc[0]), 2)
    0.05
    """
    latents = np.asarray(latents, dtype=float)
    groups = np.asarray(groups)
    parts, sizes = [], []
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        try:
            named = name_latents(latents[rows], table.iloc[rows].reset_index(drop=True), columns)
        except LatentNamingError:
            continue  # a class too small to correlate within does not vote
        parts.append(named.iloc[:, 3:])
        sizes.append(len(rows))
    if not parts:
        name_latents(latents, table, columns)  # raises with the reason, if pooled data cannot be named either
        raise LatentNamingError(f"No class has {MIN_CELLS_TO_NAME} cells with measured quantities to name latents.")
    quantities = list(dict.fromkeys(c for part in parts for c in part.columns))
    # a quantity constant within a class: r = 0 there
    total = sum(part.reindex(columns=quantities).fillna(0.0) * size for part, size in zip(parts, sizes, strict=True))
    total = total / sum(sizes)
    best = total.abs().to_numpy().argmax(axis=1)
    result = total.copy()
    result.insert(0, "latent", latent_name_list(latents.shape[1]))
    result.insert(1, "best_match", [total.columns[k] for k in best])
    result.insert(2, "r", total.to_numpy()[np.arange(len(best)), best])
    return result


def latent_names(named: pd.DataFrame, min_abs_r: float = 0.3) -> list[str]:
    """Short labels such as ``"z3 ↔ area, r = 0.93"``; weakly tied latents keep their plain name."""
    return [
        f"{row.latent} ↔ {row.best_match}, r = {row.r:.2f}" if abs(row.r) >= min_abs_r else row.latent
        for row in named.itertuples()
    ]


def best_pairs(latents: np.ndarray, table: pd.DataFrame, quantity: str = "eccentricity", top: int = 5) -> pd.DataFrame:
    """Pairs of latents whose radius tracks ``quantity`` and whose angle tracks orientation.

    For each pair (a, b) of centred latents, ``r_radius`` is the Pearson
    correlation of sqrt(za² + zb²) with the quantity, and ``r_angle`` the
    circular correlation (mean resultant length) between atan2(zb, za) and 2θ
    (needs an ``orientation`` column; NaN otherwise).
    """
    z = np.asarray(latents, dtype=float)
    z = z - z.mean(axis=0)
    target = _standardise(table[quantity].to_numpy(dtype=float))
    doubled = 2 * table["orientation"].to_numpy(dtype=float) if "orientation" in table.columns else None
    rows = []
    for a, b in itertools.combinations(range(z.shape[1]), 2):
        radius = np.hypot(z[:, a], z[:, b])
        r_radius = float(_standardise(radius) @ target / len(z))
        r_angle = np.nan
        if doubled is not None:
            angle = np.arctan2(z[:, b], z[:, a])
            # how constant the offset between the pair's angle and 2θ is, either winding direction
            r_angle = max(abs(np.mean(np.exp(1j * (angle - doubled)))), abs(np.mean(np.exp(1j * (angle + doubled)))))
        rows.append({"pair": f"{latent_name(a)}, {latent_name(b)}", "r_radius": r_radius, "r_angle": float(r_angle)})
    ranked = pd.DataFrame(rows)
    return ranked.reindex(ranked["r_radius"].abs().sort_values(ascending=False).index).head(top).reset_index(drop=True)


def _discretise(values: np.ndarray, bins: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if len(np.unique(values)) <= bins:
        return np.unique(values, return_inverse=True)[1]
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    outer = joint.sum(axis=1, keepdims=True) @ joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])).sum())


def _entropy(a: np.ndarray) -> float:
    p = np.bincount(a) / len(a)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information_gap(latents: np.ndarray, factors: pd.DataFrame, bins: int = 20) -> tuple[float, pd.DataFrame]:
    """MIG: per factor, the gap between the two latents most informative about it, over its entropy.

    Latents and continuous factors are discretised into ``bins`` equal-count
    bins (a factor with few values is used as is); orientation is binned as an
    angle, which quantile bins handle because it is uniform.

    Returns
    -------
    mig : float
        Mean gap over factors, in [0, 1]; 1 means each factor lives in one latent.
    per_factor : DataFrame
        ``factor, entropy, best_latent, second_latent, gap``.
    """
    z = np.asarray(latents, dtype=float)
    z_bins = [_discretise(z[:, j], bins) for j in range(z.shape[1])]
    rows = []
    for name in factors.columns:
        v = _discretise(factors[name].to_numpy(dtype=float), bins)
        entropy = _entropy(v)
        if entropy == 0:
            continue
        info = np.array([_mutual_information(zj, v) for zj in z_bins])
        first, second = np.argsort(info)[::-1][:2]
        rows.append(
            {
                "factor": name,
                "entropy": entropy,
                "best_latent": latent_name(first),
                "second_latent": latent_name(second),
                "gap": (info[first] - info[second]) / entropy,
            }
        )
    per_factor = pd.DataFrame(rows)
    return float(per_factor["gap"].mean()), per_factor
