"""The β-TCVAE network: a small convolutional VAE for (N, 1, S, S) single-cell crops.

After the lab's earlier cell VAE (docs/method.md). With S = ``cfg.crop_size_px``, channels
C_1..C_L = ``cfg.channels`` (default 8, 16, 32, 64), s = S / 2**L, H = ``cfg.dense_units`` and
D = ``cfg.n_latents``; shapes for the defaults (S = 64) in brackets::

    encoder   x (N, 1, S, S)                                                        [N, 1, 64, 64]
              L blocks: 3x3 conv (C_k) + GroupNorm + SiLU, 2x2 max-pool  -> (N, C_L, s, s)   [N, 64, 4, 4]
              flatten -> dense H + SiLU                                   -> (N, H)          [N, 256]
              two dense heads                                             -> mu, logvar (N, D)   [N, 32]
    sample    z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)              -> (N, D)
    decoder   dense H + SiLU, dense C_L*s*s + SiLU, reshape               -> (N, C_L, s, s)  [N, 64, 4, 4]
              L blocks: 2x nearest up-sampling, 3x3 conv + GroupNorm + SiLU, channels
              C_{L-1}, ..., C_1, C_1                                      -> (N, C_1, S, S)  [N, 8, 64, 64]
              1x1 conv, linear output                                     -> x_hat (N, 1, S, S)

About 0.6 million parameters (2.4 MB of float32) for the defaults.

Design decision: GroupNorm, not the lab's batch-norm. GroupNorm normalises each crop on its own, so the output for
a crop never depends on the other crops of its batch: a distributed run (torchrun, a global batch split across
processes) computes exactly what a single process computes on the same global batch, and training and inference
behave the same (no running statistics, no train/eval switch). Batch-norm statistics would differ per process
and per batch size. Groups hold 4 to 8 channels (at most 8 groups).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import VAEConfig

__all__ = ["BetaTCVAE"]


def _n_groups(channels: int) -> int:
    """Number of GroupNorm groups: groups of at least 4 channels, at most 8 groups."""
    for groups in range(min(8, channels // 4), 1, -1):
        if channels % groups == 0:
            return groups
    return 1


def conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    """3x3 convolution, GroupNorm (not BatchNorm: exact under DDP), SiLU."""
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.GroupNorm(_n_groups(c_out), c_out), nn.SiLU()]


class BetaTCVAE(nn.Module):
    """Convolutional VAE with a diagonal Gaussian posterior, trained with the β-TCVAE loss.

    Parameters
    ----------
    cfg : VAEConfig
        Architecture (``crop_size_px``, ``channels``, ``dense_units``, ``n_latents``); kept as ``self.cfg``.

    Raises
    ------
    ValueError
        If ``cfg.crop_size_px`` is not a power of two or is too small for ``len(cfg.channels)`` poolings, or a
        block has no filter.

    Examples
    --------
    >>> import torch
    >>> model = BetaTCVAE(VAEConfig(crop_size_px=32, n_latents=4, channels=(4, 8), dense_units=16))
    >>> x_hat, mu, logvar, z = model(torch.zeros(2, 1, 32, 32))
    >>> tuple(x_hat.shape), tuple(mu.shape)
    ((2, 1, 32, 32), (2, 4))
    """

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        size, n_blocks = cfg.crop_size_px, len(cfg.channels)
        if size & (size - 1):
            raise ValueError(f"crop_size_px must be a power of two (16, 32, 64, ...); got {size}.")
        if any(c < 1 for c in cfg.channels):
            raise ValueError(f"Every encoder block needs at least one filter; got channels={cfg.channels}.")
        if n_blocks < 1 or size < 2**n_blocks:
            raise ValueError(
                f"{n_blocks} encoder blocks halve a {size} px crop {n_blocks} times: use fewer channels entries "
                f"or a crop of at least {2**n_blocks} px."
            )
        self.cfg = cfg.model_copy(deep=True)
        channels = list(cfg.channels)
        self._bottleneck = (channels[-1], size >> n_blocks, size >> n_blocks)
        flat = channels[-1] * (size >> n_blocks) ** 2

        encoder: list[nn.Module] = []
        for c_in, c_out in zip([1, *channels[:-1]], channels, strict=True):
            encoder += [*conv_block(c_in, c_out), nn.MaxPool2d(2)]
        self.encoder = nn.Sequential(*encoder, nn.Flatten(), nn.Linear(flat, cfg.dense_units), nn.SiLU())
        self.mu_head = nn.Linear(cfg.dense_units, cfg.n_latents)
        self.logvar_head = nn.Linear(cfg.dense_units, cfg.n_latents)

        self.decoder_dense = nn.Sequential(
            nn.Linear(cfg.n_latents, cfg.dense_units), nn.SiLU(), nn.Linear(cfg.dense_units, flat), nn.SiLU()
        )
        decoder: list[nn.Module] = []
        outs = [*channels[-2::-1], channels[0]]
        for c_in, c_out in zip(channels[::-1], outs, strict=True):
            decoder += [nn.Upsample(scale_factor=2, mode="nearest"), *conv_block(c_in, c_out)]
        self.decoder = nn.Sequential(*decoder, nn.Conv2d(channels[0], 1, kernel_size=1))

    def _check_crops(self, x: Tensor) -> None:
        size = self.cfg.crop_size_px
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"Expected crops of shape (N, 1, {size}, {size}); got {tuple(x.shape)}.")
        if x.shape[-2:] != (size, size):
            raise ValueError(
                f"This model was built for {size}x{size} px crops but got {x.shape[-2]}x{x.shape[-1]} px crops: "
                f"rescale the crops to {size} px (CropConfig.size_px, with CropConfig.pixel_size_um set to the "
                f"model's pixel size) or use a model trained for {x.shape[-2]} px crops."
            )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters of crops.

        Parameters
        ----------
        x : Tensor of shape (N, 1, S, S)
            Standardised crops, S = ``cfg.crop_size_px``.

        Returns
        -------
        mu, logvar : Tensor of shape (N, D)
            Mean and log-variance of q(z | x).
        """
        self._check_crops(x)
        hidden = self.encoder(x)
        return self.mu_head(hidden), self.logvar_head(hidden)

    @staticmethod
    def reparameterise(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw z = mu + exp(logvar / 2)·eps with eps ~ N(0, I), differentiably.

        Parameters
        ----------
        mu, logvar : Tensor of shape (N, D)
        generator : torch.Generator, optional
            Source of eps (on the tensors' device), for reproducible draws.

        Returns
        -------
        Tensor of shape (N, D)
        """
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Tensor) -> Tensor:
        """Reconstruct crops from latents.

        Parameters
        ----------
        z : Tensor of shape (N, D)

        Returns
        -------
        Tensor of shape (N, 1, S, S)
        """
        if z.ndim != 2 or z.shape[1] != self.cfg.n_latents:
            raise ValueError(f"Expected latents of shape (N, {self.cfg.n_latents}); got {tuple(z.shape)}.")
        hidden = self.decoder_dense(z).view(z.shape[0], *self._bottleneck)
        return self.decoder(hidden)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample one z per crop and decode.

        Parameters
        ----------
        x : Tensor of shape (N, 1, S, S)
        generator : torch.Generator, optional
            Source of the reparameterisation noise.

        Returns
        -------
        x_hat : Tensor of shape (N, 1, S, S)
        mu, logvar, z : Tensor of shape (N, D)
        """
        mu, logvar = self.encode(x)
        z = self.reparameterise(mu, logvar, generator)
        return self.decode(z), mu, logvar, z
