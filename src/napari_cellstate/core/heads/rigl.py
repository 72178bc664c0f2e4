"""RigL (Evci et al. 2020) for MLP heads, in plain PyTorch.

Sparse training keeps a fixed number of active weights and periodically rewires them:

* **Warm-up.** The head first trains dense for ``warmup_epochs``, and for at least one update interval
  (``update_every_steps``): on a hundred cells two epochs are four steps, after which the largest weights are
  still those the seed drew, and the mask (hence the latents a head reads) would differ from seed to seed.
  Then every layer keeps its largest-magnitude weights, as many as its density allows (:func:`layer_counts`:
  uniform or Erdős-Rényi-Kernel).
* **Updates.** Every ``update_every_steps`` steps until ``end_fraction`` of the sparse steps, each layer drops
  the fraction ``drop_fraction / 2 · (1 + cos(π t / T_end))`` of its active weights with the smallest magnitude
  and grows as many inactive connections with the largest dense-gradient magnitude. The drop and grow sets are
  disjoint (a dropped connection cannot come back in the same update), grown weights start at zero with their
  optimizer state reset, and the optimizer step is skipped on update steps.
* **Masks are respected.** Between updates the gradients of inactive weights are zeroed before the optimizer
  step and the weights re-masked after it, so inactive weights stay exactly zero and their Adam moments zero.

The dense gradient comes for free: :class:`~napari_cellstate.core.heads.MLPHead` multiplies by its weights
directly (inactive ones are zero), so ``loss.backward()`` fills every entry of ``weight.grad``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..config import RigLConfig, SparsityDistribution
from ._model import MLPHead

__all__ = ["RigLSchedule", "drop_fraction", "layer_counts", "sparsify_by_magnitude"]


def layer_counts(shapes: list[tuple[int, int]], density: float, distribution: SparsityDistribution) -> list[int]:
    """Active weights per layer for an overall ``density``, at least one per layer.

    ERK gives layer ``l`` a density proportional to ``(fan_in + fan_out) / (fan_in · fan_out)``, so small layers
    (the output layer) stay denser; a layer whose share would exceed 1 is made dense and the rest re-balanced.

    Examples
    --------
    >>> shapes = [(16, 32), (16, 16), (16, 16), (1, 16)]
    >>> layer_counts(shapes, 0.03, SparsityDistribution.ERK), layer_counts(shapes, 0.03, "uniform")
    ([12, 8, 8, 4], [15, 8, 8, 1])
    """
    sizes = [rows * cols for rows, cols in shapes]
    budget = density * sum(sizes)
    if SparsityDistribution(distribution) is SparsityDistribution.UNIFORM:
        densities = [density] * len(shapes)
    else:
        raw = [(rows + cols) / (rows * cols) for rows, cols in shapes]
        dense: set[int] = set()
        while True:
            free = [i for i in range(len(shapes)) if i not in dense]
            scale = (budget - sum(sizes[i] for i in dense)) / sum(raw[i] * sizes[i] for i in free)
            too_dense = {i for i in free if raw[i] * scale > 1}
            if not too_dense:
                break
            dense |= too_dense
        densities = [1.0 if i in dense else raw[i] * scale for i in range(len(shapes))]
    return [min(size, max(1, round(d * size))) for d, size in zip(densities, sizes, strict=True)]


def drop_fraction(step: int, end_step: int, initial: float) -> float:
    """The cosine-decayed fraction of active weights an update rewires at sparse step ``step``.

    >>> drop_fraction(0, 100, 0.3), round(drop_fraction(50, 100, 0.3), 3), drop_fraction(100, 100, 0.3)
    (0.3, 0.15, 0.0)
    """
    return initial / 2 * (1 + math.cos(math.pi * min(step, end_step) / end_step))


@torch.no_grad()
def sparsify_by_magnitude(head: MLPHead, counts: list[int]) -> None:
    """Keep the ``counts[l]`` largest-magnitude weights of each layer, on paths that reach the output.

    Layers are chosen from the output back: a layer's candidates are the connections into units that the next
    layer kept, so every kept weight lies on a path to the output (a layer-by-layer choice can keep weights into
    units that lead nowhere, and a head cut off from its inputs cannot learn back). Only when too few such
    candidates exist is the rest filled from the other connections. Ties are broken by position.
    """
    masks: list[torch.Tensor] = []
    live_targets = torch.ones(1, dtype=torch.bool)  # the output unit
    for layer, count in zip(reversed(head.layers), reversed(counts), strict=True):
        magnitude = layer.weight.abs()
        reaches_output = live_targets[:, None].expand_as(magnitude).flatten()
        order = torch.argsort(magnitude.flatten(), descending=True, stable=True)
        ranked = torch.cat([order[reaches_output[order]], order[~reaches_output[order]]])
        mask = torch.zeros(magnitude.numel())
        mask[ranked[:count]] = 1
        mask = mask.view_as(magnitude)
        masks.insert(0, mask)
        live_targets = mask.sum(dim=0) > 0
    head.set_masks(masks)


def _reset_optimizer_entries(optimizer: torch.optim.Optimizer, parameter: torch.Tensor, where: torch.Tensor) -> None:
    """Zero the optimizer's per-element state (e.g. Adam's moments) of ``parameter`` at ``where``."""
    for value in optimizer.state.get(parameter, {}).values():
        if torch.is_tensor(value) and value.shape == parameter.shape:
            value[where] = 0


@dataclass
class RigLSchedule:
    """Drives RigL from the training loop's hooks; see the module docstring.

    Parameters
    ----------
    head : MLPHead
        The head to train sparse (dense until the warm-up ends).
    cfg : RigLConfig
    steps_per_epoch : int
        Optimisation steps per epoch (to place the end of the warm-up).

    Attributes
    ----------
    updates : list of dict
        One entry per connectivity update: ``step``, ``fraction``, per layer the flat indices ``dropped`` and
        ``grown`` and the ``active`` count after the update. Tests and the widget read it.
    """

    head: MLPHead
    cfg: RigLConfig
    steps_per_epoch: int
    updates: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        shapes = [tuple(layer.weight.shape) for layer in self.head.layers]
        self.counts = layer_counts(shapes, self.cfg.density, self.cfg.distribution)

    @property
    def warmup_steps(self) -> int:
        """Dense steps before the head is made sparse: ``warmup_epochs``, at least one update interval (if any).

        >>> from napari_cellstate.core.config import HeadConfig
        >>> head = MLPHead(HeadConfig())
        >>> RigLSchedule(head, RigLConfig(), 57).warmup_steps, RigLSchedule(head, RigLConfig(), 2).warmup_steps
        (114, 100)
        """
        if self.cfg.warmup_epochs == 0:
            return 0
        return max(self.cfg.warmup_epochs * self.steps_per_epoch, self.cfg.update_every_steps)

    def _end_step(self, total_steps: int) -> int:
        return max(1, int(self.cfg.end_fraction * (total_steps - self.warmup_steps)))

    def after_backward(self, step: int, total_steps: int, optimizer: torch.optim.Optimizer) -> bool:
        """Sparsify after the warm-up, rewire on update steps (skipping the step), else mask the gradients."""
        if step <= self.warmup_steps:
            return False
        if step == self.warmup_steps + 1:
            sparsify_by_magnitude(self.head, self.counts)
            for layer, mask in zip(self.head.layers, self.head.masks, strict=True):
                _reset_optimizer_entries(optimizer, layer.weight, mask == 0)
        sparse_step = step - self.warmup_steps - 1
        end = self._end_step(total_steps)
        if 0 < sparse_step < end and sparse_step % self.cfg.update_every_steps == 0:
            self._update(sparse_step, end, optimizer)
            return True
        for layer, mask in zip(self.head.layers, self.head.masks, strict=True):
            if layer.weight.grad is not None:
                layer.weight.grad.mul_(mask)
        return False

    def after_optimizer_step(self, step: int, total_steps: int, optimizer: torch.optim.Optimizer) -> None:
        """Zero the weights outside the masks again (Adam's update may not be exactly zero there)."""
        if step > self.warmup_steps:
            self.head.apply_masks()

    @torch.no_grad()
    def _update(self, sparse_step: int, end: int, optimizer: torch.optim.Optimizer) -> None:
        fraction = drop_fraction(sparse_step, end, self.cfg.drop_fraction)
        record: dict = {"step": sparse_step + self.warmup_steps + 1, "fraction": fraction, "layers": []}
        masks = []
        for layer, mask in zip(self.head.layers, self.head.masks, strict=True):
            flat_mask = mask.flatten().bool()
            inactive = (~flat_mask).nonzero().flatten()
            n = min(int(fraction * int(flat_mask.sum())), len(inactive))
            active = flat_mask.nonzero().flatten()
            weight = layer.weight.flatten()
            dropped = active[torch.argsort(weight[active].abs(), stable=True)[:n]]
            gradient = layer.weight.grad.flatten() if layer.weight.grad is not None else torch.zeros_like(weight)
            grown = inactive[torch.argsort(gradient[inactive].abs(), descending=True, stable=True)[:n]]
            new_mask = flat_mask.clone()
            new_mask[dropped] = False
            new_mask[grown] = True
            masks.append(new_mask.view_as(mask))
            changed = torch.zeros_like(flat_mask)
            changed[dropped] = True
            changed[grown] = True
            _reset_optimizer_entries(optimizer, layer.weight, changed.view_as(mask))
            record["layers"].append(
                {"dropped": dropped.tolist(), "grown": grown.tolist(), "active": int(new_mask.sum())}
            )
        self.head.set_masks(masks)  # grown weights were inactive, hence zero: they start at zero
        self.updates.append(record)
