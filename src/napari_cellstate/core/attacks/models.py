"""What an attack differentiates: each scheme as one torch module from its attacked input to the score f(x).

A scheme is any torch module returning one score per cell (f(x) >= 0 means metaphase). Scheme 1 reads crops
(N, S, S); Schemes 2-4 read latents (N, D) — a dense head, a sparse head or a symbolic expression written as a
module all qualify. Image-space attacks on Schemes 2-4 go through the β-TCVAE encoder's posterior mean
(:class:`EncoderThenHead`), as in the paper; latent-space attacks exist for Schemes 2-4 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["AttackError", "EncoderThenHead", "SchemeModel", "load_scheme", "scheme_number"]

#: Scheme number of each head card's ``scheme`` value.
_CARD_SCHEMES = {"cnn": 1, "dense": 2, "sparse": 3, "symbolic": 4}
SCHEME_NAMES = {1: "CNN + dense head", 2: "dense head", 3: "sparse head", 4: "symbolic expression"}


class AttackError(ValueError):
    """An attack or audit cannot run on this input; the message says what to do."""


def scheme_number(card_scheme: str | int) -> int:
    """The paper's scheme number (1-4) of a card's ``scheme`` ("cnn", "dense", "sparse", "symbolic") or a number.

    >>> scheme_number("sparse"), scheme_number(4)
    (3, 4)
    """
    if isinstance(card_scheme, int) and card_scheme in SCHEME_NAMES:
        return card_scheme
    try:
        return _CARD_SCHEMES[str(card_scheme)]
    except KeyError:
        raise AttackError(
            f"Unknown scheme {card_scheme!r}: expected one of {sorted(_CARD_SCHEMES)} or a number 1-4."
        ) from None


class EncoderThenHead(nn.Module):
    """Crops (N, S, S) → β-TCVAE posterior mean (N, D) → head → score (N,): Schemes 2-4 in image space."""

    def __init__(self, vae: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.vae, self.head = vae, head

    def forward(self, crops: Tensor) -> Tensor:
        """Scores of crops (N, S, S) or (N, 1, S, S)."""
        mu, _ = self.vae.encode(crops.unsqueeze(1) if crops.ndim == 3 else crops)
        return self.head(mu)


@dataclass
class SchemeModel:
    """A trained model of one scheme, ready to attack.

    Attributes
    ----------
    model : torch.nn.Module
        Scheme 1: crops (N, S, S) → scores (N,). Schemes 2-4: latents (N, D) → scores (N,).
    number : int
        The scheme (1-4).
    name : str
        Shown in layer names, tables and files (e.g. the head file's stem).
    vae : torch.nn.Module or None
        The β-TCVAE whose latents Schemes 2-4 read (needed for image-space attacks and reconstructions).
    """

    model: nn.Module
    number: int
    name: str
    vae: nn.Module | None = None

    def __post_init__(self) -> None:
        self.number = scheme_number(self.number)
        self.model.eval()
        if self.vae is not None:
            self.vae.eval()

    @property
    def reads_latents(self) -> bool:
        """Schemes 2-4 read latents; Scheme 1 reads crops."""
        return self.number != 1

    def image_model(self) -> nn.Module:
        """Crops (N, S, S) → scores, for image-space attacks."""
        if not self.reads_latents:
            return self.model
        if self.vae is None:
            raise AttackError(
                f"{self.name} (Scheme {self.number}) reads latents: an image-space attack needs the β-TCVAE that "
                "made them (pass vae=...)."
            )
        return EncoderThenHead(self.vae, self.model).eval()

    def latent_model(self) -> nn.Module:
        """Latents (N, D) → scores, for latent-space attacks; Scheme 1 has no latents."""
        if not self.reads_latents:
            raise AttackError(
                f"{self.name} is Scheme 1 (a CNN on crops): it has no latents to attack. Use an image-space attack "
                "(--space image), or attack a head on latents (Schemes 2-4)."
            )
        return self.model

    @torch.no_grad()
    def encode(self, crops) -> Tensor:
        """Posterior means (N, D) of crops (N, S, S)."""
        if self.vae is None:
            raise AttackError(f"{self.name} needs the β-TCVAE to encode crops (pass vae=...).")
        return self.vae.encode(torch.as_tensor(crops, dtype=torch.float32).unsqueeze(1))[0]

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """β-TCVAE images (N, S, S) of latents (N, D)."""
        if self.vae is None:
            raise AttackError(f"{self.name} needs the β-TCVAE to decode latents (pass vae=...).")
        return self.vae.decode(latents)[:, 0]

    @torch.no_grad()
    def scores_of_crops(self, crops) -> Tensor:
        """f(x) of crops (N, S, S)."""
        return self.image_model()(torch.as_tensor(crops, dtype=torch.float32))


def load_scheme(path: os.PathLike | str, vae: nn.Module | None = None) -> SchemeModel:
    """A saved head (``load_head``) or formula (``load_expression_module``) as a :class:`SchemeModel`.

    A head's card ``scheme`` gives its number; a formula is Scheme 4.

    Parameters
    ----------
    path : path-like
        The head's ``.safetensors`` / ``.json`` (or the path without suffix), or a formula's ``.json``.
    vae : torch.nn.Module, optional
        The β-TCVAE whose latents Schemes 2-4 read, and which reconstructs perturbed crops; default: the
        packaged one.

    Raises
    ------
    AttackError
        If the file is missing or not a head or formula, or the formula does not read the latents.
    """
    from ..heads import load_head
    from ..model_files import ModelFileError
    from ..symbolic.files import ExpressionFileError, is_expression_card, load_expression_module

    if is_expression_card(path):  # Scheme 4: a torch module over all latents, like a Scheme 2-3 head
        try:
            model, card = load_expression_module(path)
        except ExpressionFileError as err:
            raise AttackError(f"The formula at {path} cannot be attacked: {err}") from err
        if model.columns != [f"z{j}" for j in range(len(model.columns))]:
            raise AttackError(
                f"The formula at {path} reads the columns {model.columns[:4]}..., not the β-TCVAE's latents "
                "z0, z1, ...: only a formula discovered on a project's latents can be attacked."
            )
        number = 4
    else:
        try:
            model, card = load_head(path)
        except (ModelFileError, FileNotFoundError) as err:
            raise AttackError(
                f"No trained head at {path}: {err}. Train heads first (Train heads widget, or "
                "`napari-cellstate train-heads`)."
            ) from err
        number = scheme_number(card.get("scheme", "cnn" if type(model).__name__ == "CNNClassifier" else "dense"))
    if vae is None:  # Schemes 2-4 read its latents; every scheme's perturbed crops are shown reconstructed by it
        from ..vae.fit import load_default_vae

        vae = load_default_vae()[0]
    name = Path(path).name.removesuffix(".json").removesuffix(".safetensors").removesuffix(".txt")
    return SchemeModel(model=model, number=number, name=name, vae=vae)
