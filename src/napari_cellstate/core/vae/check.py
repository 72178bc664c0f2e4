"""Does a β-TCVAE suit a project's crops? Reconstruction error against the model card's, and latent names.

A model trained on other crops (the packaged one saw synthetic crops only) may reconstruct a project's crops
poorly; its latents then miss what the project's cells show. After encoding, :func:`encoding_report` compares the
reconstruction error on the project's crops with the error the model card records for the model's own data and
recommends fine-tuning when it is clearly worse (:data:`RECONSTRUCTION_RATIO_BAR`). The CLI's ``encode`` and the
Latent explorer show the same report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..objects import latent_name, latent_name_list

__all__ = [
    "RECONSTRUCTION_RATIO_BAR",
    "EncodingReport",
    "card_reconstruction_mse",
    "encoding_report",
    "reconstruction_mse",
]

#: A project's reconstruction error above this multiple of the card's recommends fine-tuning.
RECONSTRUCTION_RATIO_BAR = 1.3
#: Crops scored for the reconstruction error (a random sample; the error is a mean, so a few hundred suffice).
RECONSTRUCTION_SAMPLE = 512


def reconstruction_mse(model, crops, *, max_crops: int = RECONSTRUCTION_SAMPLE, seed: int = 0) -> float:
    """Mean squared error of decoding the latent means of (up to ``max_crops`` random) standardised crops.

    Parameters
    ----------
    crops : array of shape (N, S, S)
        Standardised crops, numpy or zarr.
    """
    import torch

    n = len(crops)
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:max_crops])
    sample = np.asarray(crops[rows] if isinstance(crops, np.ndarray) else np.stack([crops[i] for i in rows]))
    model = model.cpu().eval()
    with torch.inference_mode():
        x = torch.from_numpy(sample.astype(np.float32))[:, None]
        recon = model.decode(model.encode(x)[0]).float().numpy()[:, 0]
    return float(np.mean((recon - sample) ** 2))


def card_reconstruction_mse(card: dict) -> float:
    """The reconstruction error a model card records for the model's own held-out data (NaN if none).

    The packaged card's is measured on fresh synthetic crops (``metrics.synthetic``); a fine-tuned model's on the
    project crops it did not train on (``metrics.held_out``).
    """
    metrics = card.get("metrics") or {}
    for key in ("held_out", "synthetic"):
        value = (metrics.get(key) or {}).get("reconstruction_mse")
        if value is not None:
            return float(value)
    return math.nan


@dataclass
class EncodingReport:
    """What encoding a project showed.

    Attributes
    ----------
    n_crops : int
    names : list of str
        Latent names, most strongly tied first (empty when they cannot be given).
    naming_note : str or None
        Why latents have no names (too few measured cells, nothing varies), else None.
    reconstruction_mse : float
        On the project's crops.
    card_mse : float
        The model card's (NaN when the card has none).
    """

    n_crops: int
    names: list[str] = field(default_factory=list)
    naming_note: str | None = None
    reconstruction_mse: float = math.nan
    card_mse: float = math.nan

    @property
    def ratio(self) -> float:
        """Project error / card error (NaN without a card error)."""
        return self.reconstruction_mse / self.card_mse if self.card_mse > 0 else math.nan

    @property
    def needs_fine_tuning(self) -> bool:
        """Whether the project's crops are clearly worse reconstructed than the model's own."""
        return bool(self.ratio > RECONSTRUCTION_RATIO_BAR)

    def recommendation(self, project: str = "PROJECT") -> str | None:
        """The fine-tuning command to run, or None when the model suits the crops."""
        if not self.needs_fine_tuning:
            return None
        return (
            f"the model reconstructs these crops {self.ratio:.1f}x worse than its own data: fine-tune it on them, "
            f"`napari-cellstate train-vae --project {project} --start-from packaged --out MODEL`, then encode "
            "with --vae MODEL"
        )

    def lines(self, project: str = "PROJECT") -> list[str]:
        """The report as lines of text."""
        lines = [
            f"reconstruction MSE {self.reconstruction_mse:.3f} on this project's crops, "
            + (f"{self.card_mse:.3f} on the model's own ({self.ratio:.2f}x)" if self.card_mse > 0 else "no card MSE")
        ]
        if self.names:
            lines.append("latents: " + "; ".join(self.names))
        else:
            lines.append(f"latents not named: {self.naming_note}")
        advice = self.recommendation(project)
        return lines + ([f"recommended: {advice}"] if advice else [])


def encoding_report(objects: pd.DataFrame, model, card: dict, crops, *, top: int = 4) -> EncodingReport:
    """Name the latents of an encoded objects table and compare the reconstruction error with the card's.

    Parameters
    ----------
    objects : DataFrame
        The encoded objects table (``z0..`` columns and the ``crop_morphology`` group, as
        :func:`~napari_cellstate.core.vae.encode.iter_encode_project` returns it).
    model : BetaTCVAE
    card : dict
        Its model card.
    crops : array of shape (N, S, S)
        The project's crops.
    top : int, default=4
        Names kept, most strongly tied first.
    """
    from ..crop_morphology import morphology_table
    from .naming import LatentNamingError, latent_names, name_latents

    report = EncodingReport(
        n_crops=len(objects),
        reconstruction_mse=reconstruction_mse(model, crops),
        card_mse=card_reconstruction_mse(card),
    )
    mu = objects[latent_name_list(model.cfg.n_latents)].to_numpy()
    table = morphology_table(objects)
    if table is None:
        report.naming_note = "the crops' nuclei are not measured (encode again to measure them)"
        return report
    try:
        named = name_latents(mu, table)
    except LatentNamingError as err:
        report.naming_note = str(err)
        return report
    labels = latent_names(named)
    best = np.argsort(-np.abs(named["r"].to_numpy()))[:top]
    report.names = [labels[j] for j in best if labels[j] != latent_name(j)]
    if not report.names:
        report.naming_note = "no latent correlates with a measured quantity (|r| >= 0.3)"
    return report
