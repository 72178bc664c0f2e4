"""How well a formula's score separates the classes: the losses the search, the calibration and the choice share.

Labels are noisy (a few cells mislabelled, a few % of rows), and a plain logistic loss lets the mislabelled rows
far from the boundary pull it: their loss grows without bound with the distance. Two remedies, used together:

* the threshold of a score is the cut with the fewest (weighted) errors, which no single row can pull far;
* the likelihood of a label is ``ε + (1 - 2ε)·sigmoid(s·f)``: a mislabelled row costs at most −log ε, and ε (the
  noise level) is fitted with the scale s.

Rows count equally by default, which puts the boundary where symmetric label noise leaves the true one;
``balanced=True`` weighs each class half, for a rare class with clean labels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NOISE_START", "best_cut", "class_weights", "noisy_logistic_loss"]

#: Initial label-noise level ε of the likelihood (fitted afterwards).
NOISE_START = 0.02


def class_weights(labels: np.ndarray, balanced: bool = False) -> np.ndarray:
    """Weight of each row in a loss: 1, or class-balanced (each class weighs half); they average to 1.

    >>> class_weights(np.array([0, 0, 0, 1]), balanced=True).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    y = np.asarray(labels, dtype=np.float64)
    positive = y.mean()
    if positive in (0.0, 1.0):
        raise ValueError("The labels hold one class only.")
    if not balanced:
        return np.ones_like(y)
    return np.where(y == 1, 0.5 / positive, 0.5 / (1 - positive))


def best_cut(score: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> tuple[float, float, int]:
    """``(error, threshold, direction)``: the cut of ``score`` with the least weighted error rate.

    ``direction`` +1 predicts class 1 where score >= threshold, −1 where score <= threshold; the threshold lies
    halfway between two neighbouring distinct scores. Non-finite scores sort to the ends (NaN as 0).

    >>> best_cut(np.array([3.0, 1.0, 2.0, 4.0]), np.array([1, 0, 0, 1]), np.ones(4))
    (0.0, 2.5, 1)
    """
    s = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0, posinf=np.inf, neginf=-np.inf)
    order = np.argsort(s, kind="stable")
    s, w = s[order], np.asarray(weights, dtype=np.float64)[order]
    positive = np.where(np.asarray(labels)[order] == 1, w, 0.0)
    negative = w - positive
    total = w.sum()
    # a cut before sorted position k (k = 0..n): rows k.. predicted 1
    missed = np.concatenate([[0.0], np.cumsum(positive)])  # positives below the cut
    false = negative.sum() - np.concatenate([[0.0], np.cumsum(negative)])  # negatives at or above it
    distinct = np.concatenate([[True], s[1:] != s[:-1], [True]])  # cuts only between distinct scores
    errors = np.where(distinct, missed + false, np.inf)
    reversed_errors = np.where(distinct, total - missed - false, np.inf)  # class 1 below the cut
    up, down = int(np.argmin(errors)), int(np.argmin(reversed_errors))
    direction = 1 if errors[up] <= reversed_errors[down] else -1
    k = up if direction == 1 else down
    low = s[k - 1] if k > 0 else s[0] - 1.0
    high = s[k] if k < len(s) else s[-1] + 1.0
    threshold = float(0.5 * (low + high)) if np.isfinite(low + high) else float(low if np.isfinite(low) else high)
    return float(min(errors[up], reversed_errors[down]) / total), threshold, direction


def noisy_logistic_loss(logit: np.ndarray, labels: np.ndarray, noise: float, weights: np.ndarray) -> float:
    """Mean weighted −log likelihood of the labels under ``ε + (1 − 2ε)·sigmoid(logit)``, ε = ``noise``.

    >>> round(noisy_logistic_loss(np.array([30.0, -30.0]), np.array([1, 0]), 0.02, np.ones(2)), 4)
    0.0202
    """
    z = np.clip(np.nan_to_num(np.asarray(logit, dtype=np.float64)), -30, 30)
    p = noise + (1 - 2 * noise) / (1 + np.exp(-z))
    y = np.asarray(labels, dtype=np.float64)
    return float((weights * -(y * np.log(p) + (1 - y) * np.log1p(-p))).mean())
