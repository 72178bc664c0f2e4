"""Attack cells of one scheme in image or latent space and keep everything a person inspects.

For each attacked cell: the scores before and after, flipped or not, the perturbation, the perturbed crop (or
latents) and its β-TCVAE reconstruction; for latent attacks the decoded perturbed latents and their difference
from the decoded original latents (the image-space picture of a latent perturbation).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..progress import Progress, run_to_completion
from .fgsm import CROP_BOUNDS, check_epsilon, fgsm, pgd
from .minimal import MAX_EPSILON, minimal_epsilon
from .models import AttackError, SchemeModel

__all__ = ["DEFAULT_EPSILON", "SPACES", "AttackResult", "attack_cells", "freeze_mask", "iter_attack_cells"]

SPACES = ("image", "latent")
#: The paper's figures: ε = 0.5 on standardised crops, 1.0 on latents.
DEFAULT_EPSILON = {"image": 0.5, "latent": 1.0}
#: "minimal" searches the smallest FGSM step that flips each cell, "minimal_pgd" the smallest PGD radius.
METHODS = ("fgsm", "pgd", "minimal", "minimal_pgd")


@dataclass
class AttackResult:
    """Attacked cells of one scheme.

    Attributes
    ----------
    scheme : int
        1-4.
    model_name : str
    space : str
        "image" or "latent".
    method : str
        "fgsm", "pgd", "minimal" (the smallest FGSM ε that flips each cell) or "minimal_pgd" (the smallest PGD ε).
    frozen : list of int
        Latents held fixed (latent attacks).
    cells : DataFrame
        One row per attacked cell: the identifying columns given (e.g. ``object_id``, ``t``, ``y``, ``x``), then
        ``epsilon`` (NaN: a minimal search found none), ``score_before``, ``score_after``, ``flipped``.
    crops : ndarray of shape (N, S, S)
        The crops attacked (or encoded).
    perturbation : ndarray of shape (N, S, S) or (N, D)
        Perturbed minus original: pixels (image space) or latents (latent space).
    perturbed : ndarray of shape (N, S, S) or (N, D)
        The perturbed crops or latents.
    reconstruction : ndarray of shape (N, S, S)
        β-TCVAE reconstruction of the perturbed crop (image space) or decoded perturbed latents (latent space).
    image_difference : ndarray of shape (N, S, S) or None
        Latent space: decoded perturbed latents minus decoded original latents. None in image space.
    """

    scheme: int
    model_name: str
    space: str
    method: str
    frozen: list[int]
    cells: pd.DataFrame
    crops: np.ndarray
    perturbation: np.ndarray
    perturbed: np.ndarray
    reconstruction: np.ndarray
    image_difference: np.ndarray | None = None

    @property
    def flip_rate(self) -> float:
        """Share of attacked cells whose class changed."""
        return float(self.cells["flipped"].mean()) if len(self.cells) else float("nan")

    def image_maps(self) -> np.ndarray:
        """The perturbation as images (N, S, S): pixels in image space, the decoded difference in latent space."""
        return self.perturbation if self.space == "image" else self.image_difference

    def perturbed_crops(self) -> np.ndarray:
        """Perturbed crops (image space) or decoded perturbed latents (latent space), (N, S, S)."""
        return self.perturbed if self.space == "image" else self.reconstruction

    def title(self, row: int) -> str:
        """A name for one attacked cell: its object id (or row), the scheme and the space."""
        cell = self.cells.iloc[row]
        ident = f"cell {int(cell['object_id'])}" if "object_id" in self.cells else f"row {row}"
        return f"{ident} · Scheme {self.scheme} ({self.model_name}) · {self.space}"


def freeze_mask(n_latents: int, frozen: Sequence[int]) -> torch.Tensor:
    """A (D,) 0/1 mask with zeros at the frozen latents; refuses indices out of range and freezing them all.

    >>> freeze_mask(4, [0, 2]).tolist()
    [0.0, 1.0, 0.0, 1.0]
    """
    frozen = sorted({int(j) for j in frozen})
    bad = [j for j in frozen if not 0 <= j < n_latents]
    if bad:
        raise AttackError(f"Latents {bad} do not exist: this model reads z0..z{n_latents - 1}.")
    if len(frozen) >= n_latents:
        raise AttackError(
            f"All {n_latents} latents are frozen: nothing is left to perturb. Freeze fewer (the paper froze 4)."
        )
    mask = torch.ones(n_latents)
    mask[frozen] = 0.0
    return mask


def _check_request(scheme: SchemeModel, space: str, method: str, frozen: Sequence[int]) -> None:
    if space not in SPACES:
        raise AttackError(f"Unknown attack space {space!r}: choose 'image' or 'latent'.")
    if method not in METHODS:
        raise AttackError(f"Unknown attack method {method!r}: choose one of {METHODS}.")
    if space == "latent":
        scheme.latent_model()  # refuses Scheme 1
    elif frozen:
        raise AttackError("Frozen latents apply to latent-space attacks only: use --space latent, or freeze none.")


def iter_attack_cells(
    scheme: SchemeModel,
    crops,
    *,
    space: str = "image",
    epsilon: float | None = None,
    method: str = "fgsm",
    frozen: Sequence[int] = (),
    cells: pd.DataFrame | None = None,
    batch_size: int = 64,
    max_epsilon: float = MAX_EPSILON,
) -> Generator[Progress, None, AttackResult]:
    """Attack every crop with ``scheme``'s model, a batch at a time.

    Parameters
    ----------
    scheme : SchemeModel
        The model (any torch module of the scheme's signature) and its β-TCVAE.
    crops : array of shape (N, S, S)
        Standardised crops (numpy or zarr).
    space : {"image", "latent"}, default="image"
        Latent attacks perturb the posterior means (Schemes 2-4 only).
    epsilon : float, optional
        FGSM/PGD step (L∞ radius); default :data:`DEFAULT_EPSILON` of the space. Ignored by the minimal searches.
    method : {"fgsm", "pgd", "minimal", "minimal_pgd"}, default="fgsm"
    frozen : sequence of int
        Latents to hold fixed (latent space).
    cells : DataFrame, optional
        N rows identifying the cells (e.g. ``object_id``, ``t``, ``y``, ``x``), copied into the result.
    batch_size : int, default=64
    max_epsilon : float, default=2.0
        Largest ε of the minimal search.

    Yields
    ------
    Progress
        One event per batch; closing the generator stops between batches.

    Raises
    ------
    AttackError
        ε <= 0, an unknown space or method, a latent attack on Scheme 1, frozen latents in image space,
        freezing every latent, no crops.
    """
    _check_request(scheme, space, method, frozen)
    epsilon = check_epsilon(DEFAULT_EPSILON[space] if epsilon is None else epsilon)
    n = len(crops)
    if n == 0:
        raise AttackError("No cells to attack: choose at least one cell that has a crop.")
    if cells is not None and len(cells) != n:
        raise AttackError(f"{len(cells)} cell rows for {n} crops: give one row per crop.")
    model = scheme.latent_model() if space == "latent" else scheme.image_model()
    mask = None
    if space == "latent":
        n_latents = int(scheme.encode(np.asarray(crops[:1], dtype=np.float32)).shape[1])
        mask = freeze_mask(n_latents, frozen)
    bounds = CROP_BOUNDS if space == "image" else (-np.inf, np.inf)

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("crops", "x", "xt", "eps", "before", "after", "rec", "diff")}
    for start in range(0, n, batch_size):
        batch = torch.as_tensor(np.asarray(crops[start : start + batch_size], dtype=np.float32))
        x = scheme.encode(batch) if space == "latent" else batch
        if method.startswith("minimal"):
            search = "pgd" if method == "minimal_pgd" else "fgsm"
            eps, xt = minimal_epsilon(model, x, attack=search, bounds=bounds, mask=mask, max_epsilon=max_epsilon)
        else:
            attack = fgsm if method == "fgsm" else pgd
            xt, eps = attack(model, x, epsilon, bounds=bounds, mask=mask), np.full(len(x), epsilon)
        with torch.no_grad():
            before, after = model(x), model(xt)
        if scheme.vae is not None:
            rec = scheme.decode(xt) if space == "latent" else scheme.decode(scheme.encode(xt))
        else:
            rec = torch.full_like(batch, float("nan"))
        parts["diff"].append((rec - scheme.decode(x)).numpy() if space == "latent" else np.zeros(0))
        for key, value in zip(
            ("crops", "x", "xt", "before", "after", "rec"), (batch, x, xt, before, after, rec), strict=True
        ):
            parts[key].append(value.numpy())
        parts["eps"].append(eps)
        done = min(start + batch_size, n)
        yield Progress(done, n, f"attacked {done}/{n} cells (Scheme {scheme.number}, {space}, {method})")

    joined = {k: np.concatenate(v) for k, v in parts.items()}
    table = (cells.reset_index(drop=True).copy() if cells is not None else pd.DataFrame(index=range(n))).assign(
        epsilon=joined["eps"],
        score_before=joined["before"].astype(np.float64),
        score_after=joined["after"].astype(np.float64),
    )
    table["flipped"] = (table["score_before"] >= 0) != (table["score_after"] >= 0)
    return AttackResult(
        scheme=scheme.number,
        model_name=scheme.name,
        space=space,
        method=method,
        frozen=sorted({int(j) for j in frozen}),
        cells=table,
        crops=joined["crops"],
        perturbation=joined["xt"] - joined["x"],
        perturbed=joined["xt"],
        reconstruction=joined["rec"],
        image_difference=joined["diff"] if space == "latent" else None,
    )


def attack_cells(scheme: SchemeModel, crops, **kwargs) -> AttackResult:
    """Blocking :func:`iter_attack_cells`."""
    return run_to_completion(iter_attack_cells(scheme, crops, **kwargs))
