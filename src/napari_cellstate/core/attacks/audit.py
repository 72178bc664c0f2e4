"""The domain audit: whether a model obeys the domain's constraints (paper Sec. 3.1), in numbers.

For each model, on the same test cells:

1. central cell only — ``central_energy_share``: share of the image-space attack's energy (the squared loss
   gradient, the steepest L2 perturbation) on the central nucleus with its edge (the mask grown by
   :data:`~napari_cellstate.core.attacks.masks.NUCLEUS_EDGE_PX`, the region the replacement test keeps: a model
   reading the nucleus's size is sensitive on a ring across the thresholded edge), next to
   ``central_area_share``, the share a model sensitive everywhere alike would get, and ``nucleus_energy_share``,
   the share inside the thresholded mask alone (None for a model whose score no pixel moves, e.g. a sparse head
   pruned to nothing); ``outside_replaced_flip_rate``: class changes when everything
   outside the central nucleus is replaced (:func:`~napari_cellstate.core.attacks.masks.replace_outside`);
2. orientation — ``rotation_disagreement``: class changes under turns by 90/180/270° and mirror images;
3. noise — ``noise_flip_rate``: class changes under added noise at each of ``noise_levels``;
4. the shortcut test — ``frozen_central_flip_rate``: latent FGSM (ε = 1) with the central-cell latents frozen
   (None for Scheme 1, which has no latents);
5. ``median_minimal_epsilon``: median over cells of the smallest image-space ε at which PGD flips the cell (cells
   not flipped up to the search's maximum count as larger than every flipped one; None when that is most), and
   ``minimal_flipped_share``, the share flipped within the maximum; ``median_minimal_epsilon_fgsm`` and
   ``minimal_flipped_share_fgsm`` the same along one FGSM step (:mod:`~napari_cellstate.core.attacks.minimal`).

The FGSM perturbation itself has the same magnitude ε on every pixel with a non-zero gradient, so its energy
share would only measure the mask's area: the gradient's energy shows where the model is sensitive.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..objects import latent_name
from ..progress import Progress, run_to_completion
from .attack import DEFAULT_EPSILON, freeze_mask
from .fgsm import CROP_BOUNDS, fgsm, loss_gradient
from .masks import SYMMETRIES, add_noise, central_nucleus_masks, grow_masks, replace_outside
from .minimal import MINIMAL_ATTACKS, minimal_epsilon
from .models import AttackError, SchemeModel

__all__ = [
    "AUDIT_COLUMNS",
    "NOISE_LEVELS",
    "AuditCells",
    "audit_table_markdown",
    "energy_shares",
    "flip_rate_curve",
    "iter_audit",
    "prepare_audit_cells",
    "run_audit",
]

NOISE_LEVELS = (0.5, 1.0, 2.0)
#: Keys of each audit row, in order.
AUDIT_COLUMNS = (
    "scheme",
    "head",
    "n_cells",
    "central_energy_share",
    "central_area_share",
    "nucleus_energy_share",
    "outside_replaced_flip_rate",
    "rotation_disagreement",
    "noise_flip_rate",
    "frozen_central_flip_rate",
    "frozen_latents",
    "median_minimal_epsilon",
    "minimal_flipped_share",
    "median_minimal_epsilon_fgsm",
    "minimal_flipped_share_fgsm",
)


@dataclass
class AuditCells:
    """The test crops and their edited versions, made once and shared by every audited model.

    Attributes
    ----------
    crops : ndarray of shape (N, S, S)
    nuclei : ndarray of shape (N, S, S), bool
        Central nucleus of each crop.
    regions : ndarray of shape (N, S, S), bool
        Each central nucleus with its edge (:func:`~napari_cellstate.core.attacks.masks.grow_masks`).
    replaced : ndarray of shape (N, S, S)
        Crops with everything outside the central nucleus replaced.
    turned : dict of str to ndarray of shape (N, S, S)
        Each of :data:`~napari_cellstate.core.attacks.masks.SYMMETRIES` applied.
    noisy : dict of float to ndarray of shape (N, S, S)
        Crops with noise at each level.
    central_latents : list of int
        Latents describing the central cell (frozen in the shortcut test).
    """

    crops: np.ndarray
    nuclei: np.ndarray
    regions: np.ndarray
    replaced: np.ndarray
    turned: dict[str, np.ndarray]
    noisy: dict[float, np.ndarray]
    central_latents: list[int]


def prepare_audit_cells(
    crops, central_latents: Sequence[int], *, noise_levels: Sequence[float] = NOISE_LEVELS, seed: int = 0
) -> AuditCells:
    """Find the central nuclei and make the edited crops (same seed, same crops)."""
    crops = np.asarray(crops, dtype=np.float32)
    if len(crops) < 2:
        raise AttackError(f"The audit needs at least two test cells with crops; got {len(crops)}.")
    nuclei = central_nucleus_masks(crops)
    return AuditCells(
        crops=crops,
        nuclei=nuclei,
        regions=grow_masks(nuclei),
        replaced=replace_outside(crops, nuclei, seed=seed),
        turned={name: np.ascontiguousarray(turn(crops)) for name, turn in SYMMETRIES.items()},
        noisy={float(level): add_noise(crops, level, seed=seed + k) for k, level in enumerate(noise_levels)},
        central_latents=sorted(int(j) for j in central_latents),
    )


def _batches(n: int, size: int):
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


@torch.no_grad()
def _classes(model, crops: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([(model(torch.from_numpy(crops[b])) >= 0).numpy() for b in _batches(len(crops), batch_size)])


def iter_audit(
    scheme: SchemeModel,
    cells: AuditCells,
    *,
    n_minimal: int = 100,
    batch_size: int = 64,
) -> Generator[Progress, None, dict]:
    """Audit one model on prepared cells; returns one row (:data:`AUDIT_COLUMNS`).

    Parameters
    ----------
    scheme : SchemeModel
    cells : AuditCells
        From :func:`prepare_audit_cells`.
    n_minimal : int, default=100
        Cells (the first ones) searched for their minimal ε, a per-cell search (PGD, then FGSM).
    """
    image = scheme.image_model()
    crops = cells.crops
    n = len(crops)
    steps = 4 + len(MINIMAL_ATTACKS)
    yield Progress(0, steps, f"Scheme {scheme.number} ({scheme.name}): classes of the edited crops")
    base = _classes(image, crops, batch_size)

    def flip_rate(edited: np.ndarray) -> float:
        return float(np.mean(_classes(image, edited, batch_size) != base))

    outside = flip_rate(cells.replaced)
    turned = float(np.mean([flip_rate(edited) for edited in cells.turned.values()]))
    noise = [flip_rate(edited) for edited in cells.noisy.values()]

    yield Progress(2, steps, f"Scheme {scheme.number}: where the attack's energy lies")
    shares = energy_shares(image, crops, {"central": cells.regions, "nucleus": cells.nuclei}, batch_size)

    yield Progress(3, steps, f"Scheme {scheme.number}: latent attacks with the central-cell latents frozen")
    frozen_rate = None
    if scheme.reads_latents:
        latents = torch.cat([scheme.encode(crops[b]) for b in _batches(n, batch_size)])
        mask = freeze_mask(latents.shape[1], cells.central_latents)
        model = scheme.latent_model()
        attacked = fgsm(model, latents, DEFAULT_EPSILON["latent"], mask=mask)
        with torch.no_grad():
            frozen_rate = float(np.mean(((model(attacked) >= 0).numpy()) != base))

    chosen = torch.from_numpy(crops[:n_minimal])
    minimal = {}
    for k, attack in enumerate(MINIMAL_ATTACKS):
        yield Progress(4 + k, steps, f"Scheme {scheme.number}: minimal {attack.upper()} ε of {len(chosen)} cells")
        searched = minimal_epsilon(image, chosen, attack=attack, bounds=CROP_BOUNDS)[0] if len(chosen) else []
        minimal[attack] = _median_minimal(np.asarray(searched, dtype=float))
    yield Progress(steps, steps, f"Scheme {scheme.number}: audited")
    return {
        "scheme": scheme.number,
        "head": scheme.name,
        "n_cells": n,
        "central_energy_share": shares["central"],
        "central_area_share": float(cells.regions.mean()),
        "nucleus_energy_share": shares["nucleus"],
        "outside_replaced_flip_rate": outside,
        "rotation_disagreement": turned,
        "noise_flip_rate": noise,
        "frozen_central_flip_rate": frozen_rate,
        "frozen_latents": [latent_name(j) for j in cells.central_latents] if scheme.reads_latents else [],
        "median_minimal_epsilon": minimal["pgd"][0],
        "minimal_flipped_share": minimal["pgd"][1],
        "median_minimal_epsilon_fgsm": minimal["fgsm"][0],
        "minimal_flipped_share_fgsm": minimal["fgsm"][1],
    }


def energy_shares(
    image_model: nn.Module, crops: np.ndarray, regions: dict[str, np.ndarray], batch_size: int = 64
) -> dict[str, float | None]:
    """Mean share of each cell's image-space attack energy (its squared loss gradient) in each region.

    ``regions`` maps names to (N, S, S) boolean masks. Cells whose score no pixel moves (a pruned-away head, a
    saturated score) have no share to give; a region gets None when no cell has one.
    """
    energy = np.concatenate(
        [loss_gradient(image_model, torch.from_numpy(crops[b])).numpy() ** 2 for b in _batches(len(crops), batch_size)]
    )
    total = energy.sum(axis=(1, 2))
    moved = total > 0
    result = {}
    for name, masks in regions.items():
        shares = (energy[moved] * masks[moved]).sum(axis=(1, 2)) / total[moved]
        result[name] = float(shares.mean()) if shares.size else None
    return result


def _median_minimal(epsilon: np.ndarray) -> tuple[float | None, float | None]:
    """Median minimal ε (unflipped cells rank above every flipped one; None if they are the median) and flipped share.

    >>> _median_minimal(np.array([0.1, 0.3, np.nan]))
    (0.3, 0.6666666666666666)
    >>> _median_minimal(np.array([]))  # no cell searched
    (None, None)
    """
    if epsilon.size == 0:
        return None, None
    ranked = np.where(np.isnan(epsilon), np.inf, epsilon)
    median = float(np.median(ranked))
    return (median if np.isfinite(median) else None), float(np.mean(np.isfinite(ranked)))


def run_audit(scheme: SchemeModel, cells: AuditCells, **kwargs) -> dict:
    """Blocking :func:`iter_audit`."""
    return run_to_completion(iter_audit(scheme, cells, **kwargs))


def flip_rate_curve(
    scheme: SchemeModel,
    crops,
    epsilons: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
    *,
    space: str = "image",
    frozen: Sequence[int] = (),
) -> pd.DataFrame:
    """Flip rate of FGSM at each ε: columns ``epsilon``, ``flip_rate``, ``scheme``, ``space``."""
    crops = np.asarray(crops, dtype=np.float32)
    x = torch.from_numpy(crops)
    if space == "latent":
        model, x = scheme.latent_model(), scheme.encode(crops)
        mask, bounds = freeze_mask(x.shape[1], frozen), (-np.inf, np.inf)
    else:
        model, mask, bounds = scheme.image_model(), None, CROP_BOUNDS
    with torch.no_grad():
        base = (model(x) >= 0).numpy()
    rates = []
    for epsilon in epsilons:
        with torch.no_grad():
            after = (model(fgsm(model, x, epsilon, bounds=bounds, mask=mask)) >= 0).numpy()
        rates.append(float(np.mean(after != base)))
    return pd.DataFrame(
        {"epsilon": list(epsilons), "flip_rate": rates, "scheme": scheme.number, "space": space, "head": scheme.name}
    )


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return " / ".join(_cell(v) for v in value) if value and not isinstance(value[0], str) else ", ".join(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def audit_table_markdown(rows: Sequence[dict]) -> str:
    """The audit rows as a markdown table, one line per model."""
    columns = [c for c in AUDIT_COLUMNS if c != "frozen_latents"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
