"""Hand-written score modules standing in for trained models in the attack tests."""

import torch
from torch import nn


class FormulaHead(nn.Module):
    """A symbolic-expression stand-in (Scheme 4): z29·(z17² + z21²) − exp(exp(z3)) + c, latents (N, 32) → (N,)."""

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, 29] * (z[:, 17] ** 2 + z[:, 21] ** 2) - torch.exp(torch.exp(z[:, 3])) + self.offset


class LinearHead(nn.Module):
    """f(z) = w·z + b: FGSM with step ε moves f by ε·‖w‖₁ towards the other class, so it flips at |f|/‖w‖₁."""

    def __init__(self, weights: torch.Tensor, bias: float = 0.0) -> None:
        super().__init__()
        self.weights, self.bias = weights, bias

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.weights + self.bias


class DiskBrightness(nn.Module):
    """Scheme 1 stand-in reading the central disk only: mean brightness inside radius r minus a threshold."""

    def __init__(self, size: int, radius: float, threshold: float = 1.0) -> None:
        super().__init__()
        rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        centre = (size - 1) / 2  # the crop's centre point: the disk is the same after turns and mirror images
        self.register_buffer("disk", (((rows - centre) ** 2 + (cols - centre) ** 2) <= radius**2).float())
        self.threshold = threshold

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return (crops * self.disk).sum(dim=(-2, -1)) / self.disk.sum() - self.threshold


class CornerBrightness(nn.Module):
    """Scheme 1 stand-in reading the top-left corner: a model that looks at the surroundings, not the cell."""

    def __init__(self, corner: int = 16) -> None:
        super().__init__()
        self.corner = corner

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return crops[:, : self.corner, : self.corner].mean(dim=(-2, -1))


class BentHead(nn.Module):
    """f(z) = 0.3 − z0 + 3·z0² − 10·z0·z1: one FGSM step never flips it (z1's gradient is 0 at z = 0), PGD does."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 0.3 - z[:, 0] + 3 * z[:, 0] ** 2 - 10 * z[:, 0] * z[:, 1]
