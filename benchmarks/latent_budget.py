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
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _generator import add_generator_options, generator_from

from napari_cellstate.core.heads.compare import finite_neighbour_distance
from napari_cellstate.core.heads.crossval import baseline_scores, cv_folds, iter_cross_validate
from napari_cellstate.core.heads.data import synthetic_head_data
from napari_cellstate.core.progress import run_to_completion

FACTOR_SETS = {
    "nucleus shape (area, eccentricity)": ["area", "eccentricity"],
    "nucleus shape + brightness": ["area", "eccentricity", "brightness"],
    "nucleus texture (contrast, edge roughness)": ["texture_contrast", "edge_roughness"],
    "neighbourhood (count, nearest distance)": ["neighbour_count", "nearest_neighbour_px"],
}


def l1_logistic(c: float):
    """A class-balanced L1 logistic regression (scikit-learn 1.8 names the penalty by ``l1_ratio`` alone)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    penalty = {"l1_ratio": 1.0}
    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 8):
        penalty = {"penalty": "l1"}
    return LogisticRegression(C=c, solver="saga", class_weight="balanced", max_iter=5000, **penalty)


def cv_baseline(data, x: np.ndarray, folds: list[np.ndarray]) -> float:
    """Mean test accuracy over the folds of Table 1's baseline (logistic regression, C = 1) on the columns ``x``."""
    rows = np.arange(len(x))
    return float(
        np.mean([baseline_scores(data, "dense", np.setdiff1d(rows, t), t, inputs=x)["accuracy"] for t in folds])
    )


def cv_l1(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], c: float) -> float:
    """Mean test accuracy over the folds of a standardised, class-balanced L1 logistic regression."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        fitted = make_pipeline(StandardScaler(), l1_logistic(c)).fit(x[train], y[train])
        scores.append(float(np.mean(fitted.predict(x[test]) == y[test])))
    return float(np.mean(scores))


def l1_path(x: np.ndarray, y: np.ndarray, folds, grid) -> list[tuple[int, float]]:
    """(latents kept when fitted on every row, cross-validated accuracy) at each penalty of ``grid``."""
    from sklearn.preprocessing import StandardScaler

    standard = StandardScaler().fit_transform(x)
    path = []
    for c in grid:
        kept = int(np.count_nonzero(l1_logistic(c).fit(standard, y).coef_))
        path.append((kept, cv_l1(x, y, folds, c)))
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

    runs = run_to_completion(iter_cross_validate(data, ["sparse"], range(args.seeds), k=5))
    read, accuracy = runs["n_inputs"].to_numpy(), float(runs["accuracy"].mean())
    budget = int(np.median(read))
    print(f"{args.n} synthetic cells, 5 folds, {args.seeds} seeds ({time.perf_counter() - start:.0f} s so far)")
    print(f"sparse head: {100 * accuracy:.1f} % reading {budget} latents (median; {min(read)}-{max(read)})")

    path = l1_path(data.latents, y, folds, np.geomspace(0.001, 0.1, 9))
    print("\nL1 logistic regression path | latents kept | cross-validated accuracy")
    for kept, acc in path:
        print(f"  {kept:2d} | {100 * acc:.1f} %")
    at_budget = max((acc for kept, acc in path if kept <= budget), default=float("nan"))
    print(
        f"best L1 logistic regression with at most {budget} latents: {100 * at_budget:.1f} % "
        f"(sparse head / it: {accuracy / at_budget:.3f})"
    )
    print(f"logistic regression on all {data.latents.shape[1]} latents: {100 * runs['baseline_accuracy'].mean():.1f} %")

    print("\nlogistic regression on the generating factors (what the crops hold):")
    factors = data.factors.copy()
    if "nearest_neighbour_px" in factors:
        factors["nearest_neighbour_px"] = finite_neighbour_distance(factors["nearest_neighbour_px"])
    for name, columns in FACTOR_SETS.items():
        print(f"  {name}: {100 * cv_baseline(data, factors[columns].to_numpy(dtype=float), folds):.1f} %")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
