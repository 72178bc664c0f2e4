"""A linear baseline for every scheme, and cross-validated accuracies for small labelled sets.

A head earns its place only if it does at least as well as a logistic regression on the same inputs — pixels for
Scheme 1, latents for Schemes 2-4 — trained and scored on the same rows (:func:`baseline_scores`).

On a hundred labelled cells a single 10 % test split holds ten cells: one misclassified cell moves the accuracy by
ten points. :func:`iter_cross_validate` trains every scheme (and its baseline) on K stratified folds, grouped by
cell (track) so that no cell is on both sides, the same folds for every scheme, and reports per-fold accuracies
with their mean and standard deviation (:func:`cv_summary`), plain and balanced. The bar (a scheme within one sd
of its baseline, or above) is judged on balanced accuracy: labelled sets are often unbalanced (a few mitotic cells
among hundreds), where plain accuracy rewards calling every cell interphase.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterable

import numpy as np
import pandas as pd

from ..config import HeadScheme, RigLConfig
from ..progress import Progress, relay
from .data import HeadData, HeadDataError
from .fit import default_training, fit_and_validation_rows, iter_train_head

__all__ = [
    "CV_COLUMNS",
    "MIN_TEST_CELLS_PER_CLASS",
    "baseline_scores",
    "cv_folds",
    "cv_summary",
    "cv_table",
    "iter_cross_validate",
    "small_test_warning",
]

#: Fewer test cells of a class than this make a single split's accuracy too coarse to compare schemes on.
MIN_TEST_CELLS_PER_CLASS = 30
#: Columns of the cross-validation runs table, one row per (scheme, seed, fold).
CV_COLUMNS = (
    "scheme",
    "seed",
    "fold",
    "accuracy",
    "balanced_accuracy",
    "active_weights",
    "n_inputs",
    "baseline_accuracy",
    "baseline_balanced_accuracy",
    "n_test",
)


def _baseline_inputs(data: HeadData, scheme: HeadScheme | str) -> np.ndarray:
    """Pixels (flattened crops) for Scheme 1, latents for the others."""
    inputs = data.inputs_for(HeadScheme.CNN if str(scheme) == HeadScheme.CNN.value else HeadScheme.DENSE)
    return inputs.reshape(len(inputs), -1)


def baseline_scores(
    data: HeadData, scheme: HeadScheme | str, train_rows: np.ndarray, test_rows: np.ndarray, *, inputs=None
) -> dict[str, float]:
    """Accuracy of a class-balanced logistic regression on the scheme's inputs, fitted on ``train_rows``.

    Inputs are standardised per feature (fitted on the training rows); L2 penalty C = 1; classes weighted by the
    inverse of their frequency, as the heads' loss is.

    Parameters
    ----------
    scheme : HeadScheme or str
        ``"cnn"``: the crops' pixels; anything else (dense, sparse, symbolic): the latents.
    inputs : ndarray of shape (N, F), optional
        The flattened inputs, when already made (cross-validation reuses them across folds).

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = _baseline_inputs(data, scheme) if inputs is None else inputs
    y = data.labels.astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000))
    model.fit(x[train_rows], y[train_rows])
    predicted = model.predict(x[test_rows])
    truth = y[test_rows]
    recalls = [float(np.mean(predicted[truth == c] == c)) for c in (0, 1) if np.any(truth == c)]
    return {"accuracy": float(np.mean(predicted == truth)), "balanced_accuracy": float(np.mean(recalls))}


def cv_folds(data: HeadData, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Test rows of each of ``k`` folds: stratified by class, grouped by cell (sklearn ``StratifiedGroupKFold``).

    Raises
    ------
    HeadDataError
        A class has fewer cells (groups) than folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    for code, name in enumerate(("interphase", "metaphase")):
        cells = len(np.unique(data.groups[data.labels == code]))
        if cells < k:
            raise HeadDataError(
                f"{cells} {name} cells (tracks) cannot fill {k} folds: use --cv {max(cells, 2)} or fewer."
            )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    rows = np.arange(len(data.labels))
    return [test for _, test in splitter.split(rows, data.labels, data.groups)]


def _with_test(data: HeadData, test_rows: np.ndarray) -> HeadData:
    split = np.full(len(data.labels), "train", dtype=object)
    split[test_rows] = "test"
    return dataclasses.replace(data, split=split.astype(str))


def iter_cross_validate(
    data: HeadData,
    schemes: Iterable[HeadScheme | str] = ("cnn", "dense", "sparse"),
    seeds: Iterable[int] = range(3),
    *,
    k: int = 5,
    fold_seed: int = 0,
    rigl: RigLConfig | None = None,
    epochs: int | None = None,
    extra: dict[str, Callable[[HeadData, int], dict]] | None = None,
) -> Generator[Progress, None, pd.DataFrame]:
    """Train every scheme with every seed on each of ``k`` folds (the same folds for all), beside its baseline.

    Parameters
    ----------
    data : HeadData
        Every labelled cell; its own train/test split is ignored.
    schemes : iterable of HeadScheme or str
    seeds : iterable of int
        Models per scheme and fold.
    k : int, default=5
    fold_seed : int, default=0
        Seed of the folds.
    rigl : RigLConfig, optional
    epochs : int, optional
        Epochs for every run in place of :func:`~napari_cellstate.core.heads.fit.default_training`'s.
    extra : dict of str to callable, optional
        Further schemes (e.g. ``"symbolic"``) as ``fit(fold_data, seed) -> metrics`` with ``accuracy``,
        ``balanced_accuracy`` and ``active_weights``; scored against the latent baseline.

    Returns
    -------
    DataFrame
        One row per scheme, seed and fold, columns :data:`CV_COLUMNS`.
    """
    schemes = [HeadScheme(s) for s in schemes]
    seeds = [int(s) for s in seeds]
    extra = extra or {}
    folds = cv_folds(data, k, fold_seed)
    names = [s.value for s in schemes] + list(extra)
    total = len(folds) * len(names) * len(seeds)
    inputs = {
        kind: _baseline_inputs(data, kind)
        for kind in {("cnn" if n == HeadScheme.CNN.value else "latents") for n in names}
    }
    rows, done = [], 0
    for fold, test_rows in enumerate(folds):
        fold_data = _with_test(data, test_rows)
        train_rows = fold_data.rows("train")
        baselines = {kind: baseline_scores(data, kind, train_rows, test_rows, inputs=x) for kind, x in inputs.items()}
        for name in names:
            baseline = baselines["cnn" if name == HeadScheme.CNN.value else "latents"]
            for seed in seeds:
                label = f"fold {fold + 1}/{len(folds)}, {name}, seed {seed}"
                if name in extra:
                    metrics = extra[name](fold_data, seed)
                else:
                    fit_rows, _ = fit_and_validation_rows(fold_data, seed=seed)
                    training = default_training(name, seed, len(fit_rows))
                    if epochs:
                        training = training.model_copy(update={"epochs": epochs})
                    steps = iter_train_head(name, fold_data, rigl=rigl, training=training)
                    metrics = (yield from relay(steps, label)).metrics
                done += 1
                rows.append(
                    {
                        "scheme": name,
                        "seed": seed,
                        "fold": fold,
                        "accuracy": float(metrics["accuracy"]),
                        "balanced_accuracy": float(metrics["balanced_accuracy"]),
                        "active_weights": int(metrics.get("active_weights", 0)),
                        "n_inputs": len(metrics.get("used_inputs", [])),
                        "baseline_accuracy": baseline["accuracy"],
                        "baseline_balanced_accuracy": baseline["balanced_accuracy"],
                        "n_test": len(test_rows),
                    }
                )
                message = f"{label}: accuracy {metrics['accuracy']:.1%} (baseline {baseline['accuracy']:.1%})"
                yield Progress(done, total, message, stage="cross-validation", kind="run_end")
    return pd.DataFrame(rows, columns=list(CV_COLUMNS))


def _fold_stats(rows: pd.DataFrame, column: str) -> dict:
    """Per-fold values of ``column`` (mean over seeds; the baseline's are the same for every seed), mean and sd."""
    per_fold = rows.groupby("fold")[column].mean()
    return {
        "folds": [round(float(v), 4) for v in per_fold],
        "mean": float(per_fold.mean()),
        "sd": float(per_fold.std(ddof=1)) if len(per_fold) > 1 else 0.0,
    }


def cv_summary(runs: pd.DataFrame) -> dict[str, dict]:
    """Per scheme: per-fold accuracies and balanced accuracies (mean over seeds), means, sds, the baseline's alike.

    Also the spread across seeds (``seed_sd``: sd of each seed's cross-validated mean accuracy), the mean active
    weights, and the bar, ``within_one_sd``: whether the scheme's mean **balanced** accuracy is at least its
    baseline's minus one sd (of the scheme's per-fold balanced accuracies). Balanced accuracy (mean recall of the
    two classes) is what the heads' and the baseline's class-weighted objectives aim at; on a set with 17 mitotic
    cells in 300 the plain accuracy of a model calling every cell interphase is 94 %, so plain accuracy ranks
    models by how rarely they call the rare class. ``accuracy_within_one_sd`` is the same test on plain accuracy.

    >>> runs = pd.DataFrame({"scheme": "dense", "seed": [0, 0, 1, 1], "fold": [0, 1, 0, 1],
    ...                      "accuracy": [0.9, 1.0, 0.8, 1.0], "balanced_accuracy": [0.9, 1.0, 0.8, 1.0],
    ...                      "active_weights": 1040, "baseline_accuracy": [0.9, 0.9, 0.9, 0.9],
    ...                      "baseline_balanced_accuracy": 0.9, "n_test": 10})
    >>> s = cv_summary(runs)["dense"]
    >>> s["fold_accuracies"], round(s["mean"], 3), s["baseline_mean"], s["within_one_sd"]
    ([0.85, 1.0], 0.925, 0.9, True)
    """
    out = {}
    for scheme, rows in runs.groupby("scheme", sort=False):
        plain, balanced = _fold_stats(rows, "accuracy"), _fold_stats(rows, "balanced_accuracy")
        base, base_balanced = _fold_stats(rows, "baseline_accuracy"), _fold_stats(rows, "baseline_balanced_accuracy")
        per_seed = rows.groupby("seed")["accuracy"].mean()
        out[str(scheme)] = {
            "fold_accuracies": plain["folds"],
            "mean": plain["mean"],
            "sd": plain["sd"],
            "fold_balanced_accuracies": balanced["folds"],
            "balanced_mean": balanced["mean"],
            "balanced_sd": balanced["sd"],
            "seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
            "active_weights": float(rows["active_weights"].mean()),
            "baseline_fold_accuracies": base["folds"],
            "baseline_mean": base["mean"],
            "baseline_sd": base["sd"],
            "baseline_fold_balanced_accuracies": base_balanced["folds"],
            "baseline_balanced_mean": base_balanced["mean"],
            "baseline_balanced_sd": base_balanced["sd"],
            "within_one_sd": bool(balanced["mean"] >= base_balanced["mean"] - balanced["sd"]),
            "accuracy_within_one_sd": bool(plain["mean"] >= base["mean"] - plain["sd"]),
        }
    return out


def small_test_warning(data: HeadData, minimum: int = MIN_TEST_CELLS_PER_CLASS) -> str | None:
    """A warning when the test split holds fewer than ``minimum`` cells of a class, else None."""
    test = data.rows("test")
    counts = {name: int(np.sum(data.labels[test] == code)) for code, name in enumerate(("interphase", "metaphase"))}
    few = {name: n for name, n in counts.items() if n < minimum}
    if not few:
        return None
    return (
        f"the test split holds only {counts} cells; with fewer than {minimum} of a class one cell moves the "
        "accuracy by several points, so these figures and bars are not a fair comparison: cross-validate instead "
        "(--cv 5)"
    )


_HEADS = {
    "cnn": (1, "CNN + dense"),
    "dense": (2, "VAE + dense"),
    "sparse": (3, "VAE + sparse"),
    "symbolic": (4, "VAE + symbolic"),
}


def cv_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1 from cross-validation: per scheme, accuracy and its baseline as mean ± sd over folds, in %.

    Columns ``Scheme, Head, folds, seeds, head weights, accuracy, baseline accuracy, balanced accuracy, baseline
    balanced accuracy, seed sd, ≥ baseline − 1 sd``; the last is the bar, judged on balanced accuracy
    (:func:`cv_summary`).
    """

    def pm(mean: float, sd: float) -> str:
        return f"{100 * mean:.1f} ± {100 * sd:.1f} %"

    rows = []
    for scheme, s in cv_summary(runs).items():
        number, head = _HEADS.get(scheme, (None, scheme))
        counts = runs[runs["scheme"] == scheme]
        rows.append(
            {
                "Scheme": number,
                "Head": head,
                "folds": counts["fold"].nunique(),
                "seeds": counts["seed"].nunique(),
                "head weights": f"{s['active_weights']:.0f}",
                "accuracy": pm(s["mean"], s["sd"]),
                "baseline accuracy": pm(s["baseline_mean"], s["baseline_sd"]),
                "balanced accuracy": pm(s["balanced_mean"], s["balanced_sd"]),
                "baseline balanced accuracy": pm(s["baseline_balanced_mean"], s["baseline_balanced_sd"]),
                "seed sd": f"{100 * s['seed_sd']:.1f} %",
                "≥ baseline − 1 sd": "yes" if s["within_one_sd"] else "NO",
            }
        )
    return pd.DataFrame(rows)
