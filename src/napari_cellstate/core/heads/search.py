"""Find the sparse head's sparsity with Optuna, as the paper did (Sec. 5.2), without touching the test rows.

Each trial trains a Scheme 3 head with RigL settings drawn from the search space (density, drop fraction,
distribution over layers, dense warm-up epochs) and scores two objectives: the validation balanced accuracy
(maximised) and the active weights left after pruning (minimised). The study is multi-objective, so it keeps the
whole trade-off (its Pareto front) rather than a single weighted score; the configuration used is the smallest
head within ``tolerance`` of the best validation accuracy.

Validation comes from the training rows only: :func:`validation_view` re-labels a grouped part of them as the
view's "test" rows and drops the real test rows, so neither the search nor its choice ever sees them. The chosen
configuration is then retrained on all training rows and scored once on the test rows.

The study lives in a SQLite file (Optuna's RDB storage): every finished trial is committed there, so a study
that is interrupted (the generator closed, the process killed) keeps its completed trials, and calling
:func:`iter_sparsity_search` again with the same file and study name runs only the trials still missing.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, PercentFormatter

from ..config import HeadConfig, HeadScheme, RigLConfig, SparsityDistribution, TrainConfig
from ..progress import Progress
from .compare import _UNITS_PER_RUN, _VALIDATION_FRACTION, _relabelled
from .data import HeadData
from .fit import HeadResult, default_training, fit_and_validation_rows, iter_train_head

__all__ = [
    "TRIAL_COLUMNS",
    "SearchResult",
    "choose_trial",
    "iter_sparsity_search",
    "pareto_front",
    "tradeoff_figure",
    "validation_view",
]

#: Columns of :attr:`SearchResult.trials`.
TRIAL_COLUMNS = (
    "number",
    "density",
    "drop_fraction",
    "distribution",
    "warmup_epochs",
    "val_balanced_accuracy",
    "active_weights",
    "state",
)
_DIRECTIONS = ("maximize", "minimize")  # validation balanced accuracy, active weights
_MAX_WARMUP_EPOCHS = 5
_WEIGHT_TICKS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def validation_view(data: HeadData, fraction: float = 0.2, seed: int = 0) -> HeadData:
    """The training rows of ``data`` alone, a grouped ``fraction`` of them relabelled as "test" (validation).

    A search that scored trials on the test rows would pick the configuration that fits them best and report
    an optimistic test accuracy. Training on this view and reading its "test" metrics validates on training
    rows only; the real test rows are not in it at all. The split is grouped by cell
    (:meth:`HeadData.validation_split`), like the train/test split.

    Examples
    --------
    >>> data = HeadData(np.array([0, 1] * 10, np.int8), np.array(["train"] * 15 + ["test"] * 5),
    ...                 np.arange(20), np.zeros((20, 2), np.float32), None, ["a", "b"], "toy")
    >>> view = validation_view(data, 0.2)
    >>> len(view.labels), int((view.split == "test").sum())
    (15, 3)
    """
    fit, held = data.validation_split(fraction, seed=seed)
    rows = np.sort(np.concatenate([fit, held]))
    split = np.where(np.isin(rows, held), "test", "train")
    return HeadData(
        labels=data.labels[rows],
        split=split,
        groups=data.groups[rows],
        latents=None if data.latents is None else data.latents[rows],
        crops=None,  # the search trains sparse heads, on latents
        input_names=list(data.input_names),
        source=f"{data.source}, training rows ({fraction:.0%} held out for validation)",
        factors=None if data.factors is None else data.factors.iloc[rows].reset_index(drop=True),
    )


def pareto_front(trials: pd.DataFrame) -> pd.DataFrame:
    """Complete trials that no other complete trial beats on both objectives, fewest weights first.

    >>> trials = pd.DataFrame({"val_balanced_accuracy": [0.9, 0.95, 0.8, 0.95], "active_weights": [10, 30, 20, 40],
    ...                        "state": "COMPLETE"})
    >>> pareto_front(trials).index.tolist()
    [0, 1]
    """
    done = trials[trials["state"] == "COMPLETE"]
    accuracy = done["val_balanced_accuracy"].to_numpy(float)
    weights = done["active_weights"].to_numpy(float)
    better_or_equal = (accuracy[None, :] >= accuracy[:, None]) & (weights[None, :] <= weights[:, None])
    strictly = (accuracy[None, :] > accuracy[:, None]) | (weights[None, :] < weights[:, None])
    dominated = (better_or_equal & strictly).any(axis=1)
    return done[~dominated].sort_values(["active_weights", "val_balanced_accuracy"], ascending=[True, False])


def choose_trial(trials: pd.DataFrame, tolerance: float = 0.01) -> pd.Series:
    """The trial with the fewest active weights among those within ``tolerance`` of the best accuracy.

    The paper wants the sparsest head that is about as good as any: validation accuracy differences below
    ``tolerance`` are noise, weights are what interpretation pays for. Ties go to the higher accuracy, then to
    the earlier trial.

    >>> trials = pd.DataFrame({"number": [0, 1, 2], "val_balanced_accuracy": [0.99, 0.985, 0.9],
    ...                        "active_weights": [40, 12, 5], "state": "COMPLETE"})
    >>> int(choose_trial(trials, 0.01)["number"])
    1
    """
    done = trials[trials["state"] == "COMPLETE"]
    if done.empty:
        raise ValueError("No trial of the study has completed: there is nothing to choose from.")
    good = done[done["val_balanced_accuracy"] >= done["val_balanced_accuracy"].max() - tolerance]
    return good.sort_values(["active_weights", "val_balanced_accuracy", "number"], ascending=[True, False, True]).iloc[
        0
    ]


def _rigl_of(row: pd.Series | dict, base: RigLConfig) -> RigLConfig:
    return base.model_copy(
        update={
            "density": float(row["density"]),
            "drop_fraction": float(row["drop_fraction"]),
            "distribution": SparsityDistribution(row["distribution"]),
            "warmup_epochs": int(row["warmup_epochs"]),
        }
    )


@dataclass
class SearchResult:
    """What a sparsity search found.

    Attributes
    ----------
    trials : DataFrame
        Every trial of the study (earlier calls included), columns :data:`TRIAL_COLUMNS`; ``state`` is Optuna's
        (``COMPLETE``, ``FAIL`` for a trial that raised or was stopped, ``RUNNING`` for one whose process died).
    pareto : DataFrame
        The complete trials on the accuracy/weights Pareto front, fewest weights first.
    chosen : Series
        The chosen trial (:func:`choose_trial`).
    rigl : RigLConfig
        The chosen trial's RigL settings.
    head : HeadResult
        The chosen configuration retrained on all training rows, scored on the test rows.
    storage : Path
        The study's SQLite file.
    study_name : str
    tolerance : float
        Validation accuracy given up for fewer weights when choosing.
    """

    trials: pd.DataFrame
    pareto: pd.DataFrame
    chosen: pd.Series
    rigl: RigLConfig
    head: HeadResult
    storage: Path
    study_name: str
    tolerance: float


def _search_space(training: TrainConfig) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    # a warm-up as long as training would leave nothing to train sparse
    max_warmup = max(0, min(_MAX_WARMUP_EPOCHS, training.epochs - 1))
    return {
        "density": FloatDistribution(0.005, 0.2, log=True),
        "drop_fraction": FloatDistribution(0.1, 0.5),
        "distribution": CategoricalDistribution([d.value for d in SparsityDistribution]),
        "warmup_epochs": IntDistribution(0, max_warmup),
    }


def _trials_table(study) -> pd.DataFrame:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        values = trial.values or (math.nan, math.nan)
        rows.append(
            {
                "number": trial.number,
                **{
                    name: trial.params.get(name)
                    for name in ("density", "drop_fraction", "distribution", "warmup_epochs")
                },
                "val_balanced_accuracy": float(values[0]),
                "active_weights": float(values[1]),
                "state": trial.state.name,
            }
        )
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))


def _check_same_search(study, settings: dict) -> None:
    """Refuse to add trials to a study whose earlier trials scored other data or training settings."""
    if tuple(d.name.lower() for d in study.directions) != _DIRECTIONS:
        raise ValueError(f"Study {study.study_name!r} is not a sparsity search: choose another study name.")
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
    elif stored != settings:
        changed = sorted(k for k in settings if stored.get(k) != settings[k])
        raise ValueError(
            f"Study {study.study_name!r} was run with other {', '.join(changed)}: its trials would not be "
            "comparable. Choose another study name (or storage file) for these settings."
        )


@contextlib.contextmanager
def _optuna_quiet(verbose: bool):
    """Optuna logs every trial at INFO; keep it at WARNING unless asked.

    Optuna's verbosity is process-wide: it stays changed while the search is suspended between events, and is
    restored when the search ends or is closed.
    """
    import optuna

    previous = optuna.logging.get_verbosity()
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def iter_sparsity_search(
    data: HeadData,
    storage: os.PathLike | str,
    *,
    n_trials: int = 20,
    seed: int = 0,
    study_name: str = "sparsity",
    training: TrainConfig | None = None,
    tolerance: float = 0.01,
    head: HeadConfig | None = None,
    rigl: RigLConfig | None = None,
    validation_fraction: float = 0.2,
    verbose: bool = False,
) -> Generator[Progress, None, SearchResult]:
    """Search RigL's sparsity settings with a multi-objective Optuna study, then retrain the chosen one.

    Parameters
    ----------
    data : HeadData
        Latents, labels and train/test split; only the training rows are searched on (:func:`validation_view`).
    storage : path
        The study's SQLite file, e.g. ``<project>/heads/sparsity_search.sqlite3`` (folders are created).
    n_trials : int, default=20
        Completed trials wanted in the study in total: a study resumed from ``storage`` runs only the missing
        ones (trials that failed or were stopped do not count).
    seed : int, default=0
        Seeds the sampler (offset by the trials already in the study, so a resumed study does not redraw the
        first trials' settings), the validation split and, without ``training``, the training.
    study_name : str, default="sparsity"
        Several studies can share one file under different names.
    training : TrainConfig, optional
        Training of every trial and of the final head; default ``default_training("sparse", seed, n_rows)`` for
        the rows a trial fits on.
    tolerance : float, default=0.01
        Validation balanced accuracy the choice may give up for fewer weights (:func:`choose_trial`).
    head : HeadConfig, optional
        The head's architecture (default: 32-16-16-16-1).
    rigl : RigLConfig, optional
        RigL settings not searched (update interval, end fraction, pruning); the searched ones are replaced.
    validation_fraction : float, default=0.2
        Training rows (grouped by cell) that validate each trial.
    verbose : bool, default=False
        Let Optuna log every trial.

    Yields
    ------
    Progress
        Each trial's training events ("trial 3/20: epoch ..."), one event per finished trial (its objectives),
        then the final retraining's. Closing the generator stops at once, mid-training included; the stopped
        trial is marked failed and the completed ones stay in the study.

    Returns
    -------
    SearchResult
        Trials, Pareto front, chosen trial and settings, and the chosen head retrained on all training rows.

    Raises
    ------
    ValueError
        The study in ``storage`` was run on other data or with other settings (its trials would not compare).
    HeadDataError
        The training rows cannot train a head (too few cells of a class in the view).
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}.")
    base = rigl or RigLConfig()
    view = validation_view(data, validation_fraction, seed)
    view.check_trainable()
    if training is None:
        fit_rows, _ = fit_and_validation_rows(view, _VALIDATION_FRACTION, seed)
        training = default_training(HeadScheme.SPARSE, seed, len(fit_rows))
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    space = _search_space(training)
    settings = {
        "data": data.describe(),
        "training": training.model_dump(mode="json", exclude={"device", "checkpoint_every_epochs"}),
        "head": (head or HeadConfig(n_inputs=data.n_latents)).model_dump(mode="json"),
        "rigl": base.model_dump(mode="json", exclude=set(space)),
        "seed": seed,
        "validation_fraction": validation_fraction,
    }
    rdb = optuna.storages.RDBStorage(f"sqlite:///{path.resolve().as_posix()}")
    try:
        with _optuna_quiet(verbose):
            study = optuna.create_study(
                storage=rdb, study_name=study_name, directions=list(_DIRECTIONS), load_if_exists=True
            )
            _check_same_search(study, settings)
            done = sum(t.state is optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
            study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)))
            missing = max(0, n_trials - done)
            total = (missing + 1) * _UNITS_PER_RUN
            for index in range(missing):
                trial = study.ask(space)
                label = f"trial {done + index + 1}/{n_trials}"
                try:
                    rigl_trial = _rigl_of(trial.params, base)
                    steps = iter_train_head(
                        HeadScheme.SPARSE,
                        view,
                        head=head,
                        rigl=rigl_trial,
                        training=training,
                        validation_fraction=_VALIDATION_FRACTION,
                    )
                    result = yield from _relabelled(steps, label, index, total)
                except BaseException:  # stopped (GeneratorExit) or failed: no trial stays RUNNING
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    raise
                values = (float(result.metrics["balanced_accuracy"]), float(result.metrics["active_weights"]))
                study.tell(trial, values)
                yield Progress(
                    (index + 1) * _UNITS_PER_RUN,
                    total,
                    f"{label}: validation balanced accuracy {values[0]:.1%}, {values[1]:.0f} weights",
                    {"val_balanced_accuracy": values[0], "active_weights": values[1]},
                )
            trials = _trials_table(study)
    finally:
        rdb.engine.dispose()  # release the SQLite file (Windows cannot delete an open one)

    chosen = choose_trial(trials, tolerance)
    chosen_rigl = _rigl_of(chosen, base)
    steps = iter_train_head(
        HeadScheme.SPARSE,
        data,
        head=head,
        rigl=chosen_rigl,
        training=training,
        validation_fraction=_VALIDATION_FRACTION,
    )
    label = f"chosen head (trial {int(chosen['number'])}, density {chosen_rigl.density:.3f})"
    final = yield from _relabelled(steps, label, missing, total)
    return SearchResult(
        trials=trials,
        pareto=pareto_front(trials),
        chosen=chosen,
        rigl=chosen_rigl,
        head=final,
        storage=path,
        study_name=study_name,
        tolerance=tolerance,
    )


def tradeoff_figure(result: SearchResult) -> Figure:
    """Validation balanced accuracy against active weights of every trial, Pareto front and choice marked.

    Built with matplotlib's object API (no pyplot), so it renders in any thread: in a widget or headless. The
    weights axis is logarithmic from 1 weight up and linear between 0 and 1, where heads pruned to a constant
    sit.
    """
    figure = Figure(figsize=(6.0, 4.2), layout="constrained")
    axes = figure.add_subplot()
    done = result.trials[result.trials["state"] == "COMPLETE"]
    axes.scatter(
        done["active_weights"],
        done["val_balanced_accuracy"],
        color="0.7",
        s=22,
        label=f"trials ({len(done)})",
        zorder=2,
    )
    front = result.pareto
    axes.plot(
        front["active_weights"],
        front["val_balanced_accuracy"],
        "-o",
        color="#2166ac",
        markersize=5,
        label="Pareto front",
        zorder=3,
    )
    chosen = result.chosen
    x, y = float(chosen["active_weights"]), float(chosen["val_balanced_accuracy"])
    axes.scatter([x], [y], marker="*", s=220, color="#b2182b", edgecolor="black", zorder=4, label="chosen")
    axes.annotate(
        f"trial {int(chosen['number'])}: density {float(chosen['density']):.3f}\n{x:.0f} weights, {y:.1%}",
        (x, y),
        xytext=(12, -28),
        textcoords="offset points",
        fontsize=9,
        arrowprops={"arrowstyle": "-", "color": "0.3"},
    )
    # log above 1 weight, linear below: a head pruned to nothing (0 weights, a constant) keeps its place
    axes.set_xscale("symlog", linthresh=1)
    right = max(10.0, 1.5 * float(done["active_weights"].max()))
    axes.set_xlim(left=-0.2, right=right)
    axes.xaxis.set_major_locator(FixedLocator([t for t in _WEIGHT_TICKS if t <= right]))
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("Active head weights after pruning (log scale)")
    axes.set_ylabel("Validation balanced accuracy")
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))  # ticks are often 0.5 % apart
    axes.set_title(f"Sparsity search: {len(done)} trials, tolerance {result.tolerance:.1%}")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="best", fontsize=9)
    return figure
