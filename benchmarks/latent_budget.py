"""How much accuracy a head can reach reading only a few latents: the sparse head against sparse baselines.

The sparse head (Scheme 3) reads a handful of the β-TCVAE's 32 latents; its Table 1 baseline, a logistic
regression, reads all 32. This prints, on the same five stratified folds of synthetic cells:

* the sparse head (default training, ``--seeds`` seeds): cross-validated accuracy and how many latents it reads;
* L1-penalised logistic regressions along their regularisation path: how many latents each keeps and its
  cross-validated accuracy (the baseline at the sparse head's budget, measured in the same run, and the ratio);
* the logistic regression on all 32 latents, and on the generating factors themselves (the nucleus's shape,
  its texture, the neighbourhood): what the crops hold against what the latents make readable.

Run: python benchmarks/latent_budget.py [--n 8000] [--seeds 2] [--exclusion-um 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _generator import add_generator_options, generator_from

from napari_cellstate.core.heads.crossval import cv_folds
from napari_cellstate.core.heads.data import synthetic_head_data
from napari_cellstate.core.heads.fit import default_training, train_head

FACTOR_SETS = {
    "nucleus shape (area, eccentricity)": ["area", "eccentricity"],
    "nucleus shape + brightness": ["area", "eccentricity", "brightness"],
    "nucleus texture (contrast, edge roughness)": ["texture_contrast", "edge_roughness"],
    "neighbourhood (count, nearest distance)": ["neighbour_count", "nearest_neighbour_px"],
}


def logistic(c: float = 1.0, l1: bool = False):
    """A class-balanced logistic regression, L1 or L2 (scikit-learn 1.8 names the penalty by ``l1_ratio`` alone)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    penalty = {"l1_ratio": 1.0 if l1 else 0.0}
    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 8):
        penalty = {"penalty": "l1" if l1 else "l2"}
    return LogisticRegression(C=c, solver="saga" if l1 else "lbfgs", class_weight="balanced", max_iter=5000, **penalty)


def cv_logistic(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], c: float = 1.0, l1: bool = False) -> float:
    """Mean test accuracy over the folds of a standardised, class-balanced logistic regression."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        fitted = make_pipeline(StandardScaler(), logistic(c, l1)).fit(x[train], y[train])
        scores.append(float(np.mean(fitted.predict(x[test]) == y[test])))
    return float(np.mean(scores))


def l1_path(x: np.ndarray, y: np.ndarray, folds, grid) -> list[tuple[int, float]]:
    """(latents kept when fitted on every row, cross-validated accuracy) at each penalty of ``grid``."""
    from sklearn.preprocessing import StandardScaler

    standard = StandardScaler().fit_transform(x)
    path = []
    for c in grid:
        kept = int(np.count_nonzero(logistic(c, l1=True).fit(standard, y).coef_))
        path.append((kept, cv_logistic(x, y, folds, c, l1=True)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--data-seed", type=int, default=0)
    add_generator_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = synthetic_head_data(args.n, seed=args.data_seed, generator=generator_from(args), keep_crops=False)
    folds = cv_folds(data, 5)
    y = data.labels.astype(int)

    read, accuracy = [], []
    for seed in range(args.seeds):
        for test in folds:
            split = np.full(len(y), "train", dtype=object)
            split[test] = "test"
            fold = dataclasses.replace(data, split=split.astype(str))
            training = default_training("sparse", seed, len(y) - len(test))
            result = train_head("sparse", fold, training=training)
            read.append(len(result.metrics["used_inputs"]))
            accuracy.append(result.metrics["accuracy"])
    budget = int(np.median(read))
    print(f"{args.n} synthetic cells, 5 folds, {args.seeds} seeds ({time.perf_counter() - start:.0f} s so far)")
    print(f"sparse head: {100 * np.mean(accuracy):.1f} % reading {budget} latents (median; {min(read)}-{max(read)})")

    path = l1_path(data.latents, y, folds, np.geomspace(0.001, 0.1, 9))
    print("\nL1 logistic regression path | latents kept | cross-validated accuracy")
    for kept, acc in path:
        print(f"  {kept:2d} | {100 * acc:.1f} %")
    at_budget = max((acc for kept, acc in path if kept <= budget), default=float("nan"))
    print(
        f"best L1 logistic regression with at most {budget} latents: {100 * at_budget:.1f} % "
        f"(sparse head / it: {np.mean(accuracy) / at_budget:.3f})"
    )
    print(
        f"logistic regression on all {data.latents.shape[1]} latents: {100 * cv_logistic(data.latents, y, folds):.1f} %"
    )

    print("\nlogistic regression on the generating factors (what the crops hold):")
    factors = data.factors.copy()
    if "nearest_neighbour_px" in factors:
        distance = factors["nearest_neighbour_px"].to_numpy(dtype=float)
        factors["nearest_neighbour_px"] = np.where(
            np.isfinite(distance), distance, np.nanmax(distance[np.isfinite(distance)])
        )
    for name, columns in FACTOR_SETS.items():
        print(f"  {name}: {100 * cv_logistic(factors[columns].to_numpy(dtype=float), y, folds):.1f} %")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
