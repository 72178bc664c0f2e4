"""The two post-training pruning steps of a sparse head.

1. :func:`prune_connections`: remove active connections, weakest first, as long as the validation accuracy
   does not fall by more than a tolerance. RigL keeps a fixed budget of weights; the trained network usually
   needs fewer.
2. :func:`prune_units`: remove what can no longer matter, exactly (predictions unchanged up to rounding): a unit
   with no active input outputs a constant, which is folded into the biases of the units it feeds; a unit whose
   output reaches nothing has its input connections removed. Repeated until nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._model import MLPHead

__all__ = ["PruneReport", "prune_connections", "prune_head", "prune_units"]


@dataclass
class PruneReport:
    """What pruning removed: weights before/after each step and the validation accuracies."""

    weights_before: int
    weights_after_connections: int
    weights_after_units: int
    accuracy_before: float
    accuracy_after: float

    def as_dict(self) -> dict[str, float]:
        """For the model card."""
        return dict(self.__dict__)


def _balanced_accuracy(head: MLPHead, x: torch.Tensor, y: torch.Tensor) -> float:
    predicted = head(x) >= 0
    truth = y.bool()
    recalls = [(predicted[truth == c] == c).float().mean() for c in (False, True) if bool((truth == c).any())]
    return float(torch.stack(recalls).mean())


@torch.no_grad()
def prune_connections(head: MLPHead, x: torch.Tensor, y: torch.Tensor, tolerance: float = 0.0) -> float:
    """Greedily remove the weakest active connections while balanced accuracy on (x, y) stays within tolerance.

    Returns the balanced accuracy after pruning. ``x, y`` must be validation data, not the test set.
    """
    baseline = _balanced_accuracy(head, x, y)
    candidates = [
        (float(layer.weight[row, col].abs()), index, row, col)
        for index, (layer, mask) in enumerate(zip(head.layers, head.masks, strict=True))
        for row, col in mask.nonzero().tolist()
    ]
    accuracy = baseline
    for _, index, row, col in sorted(candidates):
        layer, mask = head.layers[index], head.masks[index]
        if int(mask.sum()) <= 1:
            continue  # keep every layer connected
        weight = float(layer.weight[row, col])
        mask[row, col] = 0
        layer.weight[row, col] = 0
        trial = _balanced_accuracy(head, x, y)
        if trial >= baseline - tolerance:
            accuracy = trial
        else:
            mask[row, col] = 1
            layer.weight[row, col] = weight
    return accuracy


@torch.no_grad()
def prune_units(head: MLPHead) -> None:
    """Fold constant units into the next biases and cut units whose output is unused (exact)."""
    changed = True
    while changed:
        changed = False
        for index in range(len(head.layers) - 1):
            layer, mask = head.layers[index], head.masks[index]
            following, following_mask = head.layers[index + 1], head.masks[index + 1]
            has_input = mask.sum(dim=1) > 0
            has_output = following_mask.sum(dim=0) > 0
            for unit in torch.nonzero(~has_input & has_output).flatten().tolist():
                constant = head.activation(layer.bias[unit : unit + 1])
                following.bias += following.weight[:, unit] * constant
                following_mask[:, unit] = 0
                changed = True
            for unit in torch.nonzero(has_input & ~has_output).flatten().tolist():
                mask[unit, :] = 0
                changed = True
        head.apply_masks()


def prune_head(head: MLPHead, x: torch.Tensor, y: torch.Tensor, tolerance: float = 0.0) -> PruneReport:
    """Both pruning steps on a trained head, with validation data ``x, y`` (labels 0/1)."""
    head.eval()
    before = head.active_weights()
    accuracy_before = _balanced_accuracy(head, x, y)
    prune_connections(head, x, y, tolerance)
    after_connections = head.active_weights()
    prune_units(head)
    return PruneReport(
        weights_before=before,
        weights_after_connections=after_connections,
        weights_after_units=head.active_weights(),
        accuracy_before=accuracy_before,
        accuracy_after=_balanced_accuracy(head, x, y),
    )
