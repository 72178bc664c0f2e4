"""The heads: an MLP with a 0/1 mask per weight matrix (Schemes 2 and 3), and a CNN in front of it (Scheme 1).

Scheme 2 and Scheme 3 share one class, :class:`MLPHead`: a dense head has all-one masks, a sparse head has
masks with few ones. Weights outside the mask are kept at exactly zero (:meth:`MLPHead.apply_masks`), so the
forward pass uses the weights as they are and ``loss.backward()`` gives the dense gradient that RigL grows
connections by. The masks are buffers: they travel with ``state_dict`` into checkpoints and model files.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ..config import Activation, CNNConfig, HeadConfig
from ..vae._model import conv_block

__all__ = ["CNNClassifier", "MLPHead"]

_ACTIVATIONS = {Activation.SILU: nn.SiLU, Activation.RELU: nn.ReLU, Activation.TANH: nn.Tanh, Activation.ELU: nn.ELU}


class MLPHead(nn.Module):
    """``n_inputs → hidden… → 1`` MLP returning one score per row; score >= 0 means metaphase.

    Examples
    --------
    >>> head = MLPHead(HeadConfig())
    >>> head.active_weights(), tuple(head(torch.zeros(5, 32)).shape)
    (1040, (5,))
    """

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg.model_copy(deep=True)
        sizes = (cfg.n_inputs, *cfg.hidden, 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.activation = _ACTIVATIONS[Activation(cfg.activation)]()
        for i, layer in enumerate(self.layers):
            self.register_buffer(f"mask{i}", torch.ones_like(layer.weight))

    @property
    def masks(self) -> list[Tensor]:
        """One 0/1 tensor per layer, shaped like its weight (out, in)."""
        return [getattr(self, f"mask{i}") for i in range(len(self.layers))]

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.cfg.n_inputs:
            raise ValueError(
                f"This head takes {self.cfg.n_inputs} inputs per cell; got an array of shape {tuple(x.shape)}."
            )
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x).squeeze(-1)

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero every weight outside its mask (the invariant the forward pass relies on)."""
        for layer, mask in zip(self.layers, self.masks, strict=True):
            layer.weight.mul_(mask)

    @torch.no_grad()
    def set_masks(self, masks: list[Tensor]) -> None:
        """Replace the masks (0/1 tensors shaped like the weights) and zero the weights outside them."""
        for old, new in zip(self.masks, masks, strict=True):
            if new.shape != old.shape:
                raise ValueError(f"A mask of shape {tuple(new.shape)} cannot replace one of shape {tuple(old.shape)}.")
            old.copy_((new != 0).to(old.dtype))
        self.apply_masks()

    def active_weights(self) -> int:
        """Connections in use (biases not counted, as in the paper's Table 1)."""
        return int(sum(int(mask.sum()) for mask in self.masks))

    def used_inputs(self) -> list[int]:
        """Indices of the inputs with at least one active connection."""
        return torch.nonzero(self.mask0.sum(dim=0)).flatten().tolist()


class CNNClassifier(nn.Module):
    """Scheme 1: conv blocks reduce a crop to ``head.n_inputs`` numbers, then an :class:`MLPHead`.

    Examples
    --------
    >>> model = CNNClassifier(CNNConfig(crop_size_px=32, channels=(4, 8)), HeadConfig())
    >>> tuple(model(torch.zeros(3, 32, 32)).shape)
    (3,)
    """

    def __init__(self, cnn: CNNConfig, head: HeadConfig):
        super().__init__()
        self.cfg = cnn.model_copy(deep=True)
        size, n_blocks = cnn.crop_size_px, len(cnn.channels)
        if n_blocks < 1 or size < 2**n_blocks:
            raise ValueError(f"{n_blocks} conv blocks halve a {size} px crop {n_blocks} times: use fewer blocks.")
        blocks: list[nn.Module] = []
        for c_in, c_out in zip([1, *cnn.channels[:-1]], cnn.channels, strict=True):
            blocks += [*conv_block(c_in, c_out), nn.MaxPool2d(2)]
        flat = cnn.channels[-1] * (size >> n_blocks) ** 2
        self.features = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(flat, head.n_inputs), nn.SiLU())
        self.head = MLPHead(head)

    def forward(self, crops: Tensor) -> Tensor:
        size = self.cfg.crop_size_px
        if crops.ndim == 3:
            crops = crops.unsqueeze(1)
        if crops.ndim != 4 or crops.shape[1:] != (1, size, size):
            raise ValueError(f"This CNN takes {size}x{size} px crops; got an array of shape {tuple(crops.shape)}.")
        return self.head(self.features(crops))
