"""The paper's Table 1: train every scheme with several seeds and compare size against accuracy.

The paper trains ten models per scheme and reports, per scheme, the active head weights, the head's expression
size and the test accuracy (mean ± standard deviation over the ten models). Its two headline findings are what
this module checks (:func:`table1_bars`):

* Scheme 3 (sparse head) keeps about 98 % of Scheme 2's (dense head) accuracy with about 2 % of its weights;
* every sparse head reads only latents that describe the central nucleus and none that describe the
  neighbourhood (paper Sec. 5.3: "this was true of all ten of our Scheme 3 models") — :func:`latent_roles`
  decides which latent is which from the generating factors of synthetic data.

:func:`iter_compare_schemes` yields progress and returns one row per trained model (the *runs* table);
:func:`summarise_table1` turns it into the paper's layout with the paper's numbers beside ours, and
:func:`write_table1` saves both.

Trained models are not kept by default (ten CNNs are large): pass ``on_result`` to see each
:class:`~napari_cellstate.core.heads.fit.HeadResult` as it is made, e.g. a :class:`BestHeads` that keeps the
best head of each scheme.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import CNNConfig, HeadConfig, HeadScheme, RigLConfig, TrainConfig
from ..io import atomic_path
from ..objects import latent_name
from ..progress import Progress
from .crossval import baseline_scores
from .data import HeadData, HeadDataError
from .fit import HeadResult, default_training, fit_and_validation_rows, iter_train_head

__all__ = [
    "BAR_DESCRIPTIONS",
    "PAPER_TABLE1",
    "RUN_COLUMNS",
    "BestHeads",
    "PaperRow",
    "bars_report",
    "iter_compare_schemes",
    "latent_roles",
    "summarise_table1",
    "symbolic_run_row",
    "table1_bars",
    "table1_markdown",
    "write_table1",
]

#: Quantities of the central nucleus, as :func:`~napari_cellstate.core.vae.naming.name_latents` names them.
NUCLEUS_QUANTITIES = (
    "area",
    "eccentricity",
    "orientation (cos 2θ)",
    "orientation (sin 2θ)",
    "brightness",
    "intensity_mean",
    "texture_contrast",
    "edge_roughness",
)
#: Quantities of the cell's surroundings.
NEIGHBOURHOOD_QUANTITIES = ("neighbour_count", "nearest_neighbour_px")

#: Columns of the runs table, one row per trained model.
RUN_COLUMNS = (
    "scheme",
    "scheme_number",
    "seed",
    "accuracy",
    "balanced_accuracy",
    "active_weights",
    "expression_size",
    "n_inputs_used",
    "inputs_used",
    "nucleus_only",
    "train_seconds",
    "baseline_accuracy",
)

#: The paper's bars (Sec. 5.2-5.3): accuracy kept and weights left by Scheme 3 relative to Scheme 2, and the
#: share of sparse heads that read nucleus latents only.
ACCURACY_RATIO_BAR = 0.98
WEIGHTS_RATIO_BAR = 0.03
NUCLEUS_ONLY_SHARE = 0.8
#: A head at or below this balanced accuracy (two classes) has learnt nothing: it fails every bar it enters.
CHANCE_BALANCED_ACCURACY = 0.55

#: What each pass/fail entry of :func:`table1_bars` checks, for reports.
BAR_DESCRIPTIONS = {
    "scheme3_vs_scheme2": (
        f"Scheme 3 reaches ≥ {ACCURACY_RATIO_BAR:.0%} of Scheme 2's accuracy with ≤ {WEIGHTS_RATIO_BAR:.0%} "
        "of its weights"
    ),
    "nucleus_only": f"sparse heads read nucleus latents only in ≥ {NUCLEUS_ONLY_SHARE:.0%} of the seeds",
    "scheme1_vs_scheme2": "Scheme 1 (CNN) is at least as accurate as Scheme 2 (dense head on latents)",
    "above_chance": (
        f"every head uses its inputs (active weights > 0) and beats chance (balanced accuracy > "
        f"{CHANCE_BALANCED_ACCURACY:.0%})"
    ),
}

_SYMBOLIC = "symbolic"
_SCHEME_NUMBERS = {**{s.value: s.number for s in HeadScheme}, _SYMBOLIC: 4}
_UNITS_PER_RUN = 1000  # progress units per trained model: runs of different lengths share one bar
_VALIDATION_FRACTION = 0.1  # of the training rows, per run (iter_train_head's default)


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 1, as printed (weights and sizes may be "23 ± 2" or "N/A")."""

    scheme: int
    encoder: str
    head: str
    head_weights: str
    expression_size: str
    accuracy_percent: float
    accuracy_std_percent: float

    @property
    def accuracy(self) -> str:
        """The accuracy as the paper prints it, e.g. ``"99.0 ± 0.1 %"``."""
        return f"{self.accuracy_percent:.1f} ± {self.accuracy_std_percent:.1f} %"


#: The paper's Table 1 (ten models per scheme; errors are standard deviations across them).
PAPER_TABLE1: tuple[PaperRow, ...] = (
    PaperRow(1, "CNN", "Dense", "1040", "9697", 99.7, 0.1),
    PaperRow(2, "VAE", "Dense", "1040", "8641", 99.0, 0.1),
    PaperRow(3, "VAE", "Sparse", "23 ± 2", "180 ± 20", 97.0, 0.2),
    PaperRow(4, "VAE", "Symbolic", "N/A", "17 ± 7", 97.4, 0.2),
)


def finite_neighbour_distance(values: pd.Series) -> pd.Series:
    """Nearest-neighbour distance with "no neighbour in the crop" (inf) set to the largest distance seen.

    Pearson's r is undefined with infinite values; a cell with no neighbour is at least as isolated as the
    most isolated one with a neighbour, so capping keeps the order that matters.
    """
    values = values.astype(float)
    finite = values[np.isfinite(values)]
    return values.where(np.isfinite(values), finite.max() if len(finite) else 0.0)


def latent_roles(data: HeadData, min_abs_r: float = 0.1) -> list[str]:
    """What each latent describes: ``"nucleus"``, ``"neighbourhood"`` or ``"unexplained"``.

    The paper's sparse heads read only latents of the central nucleus (size, eccentricity) and ignore those of
    the neighbourhood, which the dense heads use as a shortcut. To check that bar a latent needs a role: it is
    named after the generating factor it correlates with most strongly (|Pearson r|, via
    :func:`~napari_cellstate.core.vae.naming.name_latents`); a latent whose strongest |r| is below ``min_abs_r``
    describes nothing measured and is "unexplained".

    Correlations are taken among cells of the same class and averaged over the classes (weighted by their
    sizes). Pooled over both classes they would be confounded by the state itself: metaphase cells are small,
    rough *and* isolated, so a latent of the plate's texture also follows the neighbour count.

    Parameters
    ----------
    data : HeadData
        With latents and ``factors`` holding nucleus quantities (area, eccentricity, orientation, brightness or
        intensity_mean) and at least one neighbourhood quantity (neighbour_count, nearest_neighbour_px): the
        synthetic data has both.
    min_abs_r : float, default=0.1
        Weakest correlation that still gives a latent a role.

    Returns
    -------
    list of str
        One role per latent, in latent order.

    Raises
    ------
    HeadDataError
        No latents, or factors that cannot tell nucleus latents from neighbourhood ones.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> factors = pd.DataFrame({"area": rng.normal(size=300), "neighbour_count": rng.poisson(3, 300)})
    >>> z = np.stack([factors["area"], factors["neighbour_count"], np.zeros(300)], axis=1)  # 3rd: collapsed
    >>> data = HeadData(np.zeros(300, np.int8), np.full(300, "train"), np.arange(300), z, None, [], "toy", factors)
    >>> latent_roles(data)
    ['nucleus', 'neighbourhood', 'unexplained']
    """
    from ..vae.naming import MORPHOLOGY, name_latents_within

    factors = data.factors
    if data.latents is None:
        raise HeadDataError(f"{data.source} has no latents to give roles to.")
    if factors is None or not any(q in factors.columns for q in NEIGHBOURHOOD_QUANTITIES):
        raise HeadDataError(
            f"{data.source} has no neighbourhood measurements ({', '.join(NEIGHBOURHOOD_QUANTITIES)}): "
            "nucleus latents cannot be told from neighbourhood latents."
        )
    columns = [*MORPHOLOGY, *(q for q in NEIGHBOURHOOD_QUANTITIES if q not in MORPHOLOGY)]
    table = factors.copy()
    if "nearest_neighbour_px" in table.columns:
        table["nearest_neighbour_px"] = finite_neighbour_distance(table["nearest_neighbour_px"])
    columns = [*columns, *(q for q in ("texture_contrast", "edge_roughness") if q in table.columns)]
    strengths = name_latents_within(data.latents, table, data.labels, columns=columns).iloc[:, 3:].abs()
    roles = []
    for _, row in strengths.iterrows():
        if row.max() < min_abs_r:
            roles.append("unexplained")
        else:
            roles.append("neighbourhood" if row.idxmax() in NEIGHBOURHOOD_QUANTITIES else "nucleus")
    return roles


@dataclass
class BestHeads:
    """An ``on_result`` callback for :func:`iter_compare_schemes` that keeps the best head of each scheme.

    Only one model per scheme stays in memory. "Best" is the highest test ``metric``, as the paper picked its
    best Scheme 3 model for analysis (Sec. 5.3); ties keep the earlier seed.

    Attributes
    ----------
    results : dict of str to HeadResult
        Scheme value ("cnn", "dense", "sparse") to its best result so far.
    seeds : dict of str to int
        The seed of each kept result.
    """

    metric: str = "balanced_accuracy"
    results: dict[str, HeadResult] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)

    def __call__(self, scheme: HeadScheme, seed: int, result: HeadResult) -> None:
        """Keep ``result`` if it beats the kept head of its scheme."""
        key = HeadScheme(scheme).value
        kept = self.results.get(key)
        if kept is None or result.metrics[self.metric] > kept.metrics[self.metric]:
            self.results[key], self.seeds[key] = result, seed


def _relabelled(
    steps: Generator[Progress, None, HeadResult], label: str, run: int, total: int
) -> Generator[Progress, None, HeadResult]:
    """Yield a run's events as part ``run`` of ``total`` progress units, messages prefixed with ``label``.

    Returns the run's result. Closing this generator closes the run's at once, so training stops there.
    """
    try:
        while True:
            try:
                event = next(steps)
            except StopIteration as stop:
                return stop.value
            done = run * _UNITS_PER_RUN + _UNITS_PER_RUN * event.step // max(event.total, 1)
            yield Progress(done, total, f"{label}: {event.message}", event.metrics, stage=label, kind=event.kind)
    finally:
        steps.close()


def _training_for(
    scheme: HeadScheme, seed: int, data: HeadData, training: TrainConfig | None, epochs: int | None
) -> TrainConfig:
    """``training`` with the run's seed, or the scheme's default for as many rows as the run fits on."""
    if training is None:
        fit_rows, _ = fit_and_validation_rows(data, _VALIDATION_FRACTION, seed)
        training = default_training(scheme, seed, len(fit_rows))
    return training.model_copy(update={"seed": seed, **({"epochs": epochs} if epochs else {})})


def _check_data(data: HeadData, schemes: Sequence[HeadScheme]) -> None:
    data.check_trainable()
    if HeadScheme.CNN in schemes and data.crops is None:
        raise HeadDataError(f"Scheme 1 (CNN) trains on crops, and {data.source} has none loaded.")
    if any(s is not HeadScheme.CNN for s in schemes) and data.latents is None:
        raise HeadDataError(f"Schemes 2-3 train on latents, and {data.source} has none: encode its crops first.")


def _run_row(scheme: HeadScheme, seed: int, result: HeadResult, data: HeadData, roles: list[str] | None) -> dict:
    metrics = result.metrics
    used = list(metrics["used_inputs"])
    if scheme is HeadScheme.CNN:
        names, nucleus_only = "", None  # CNN features have no names or roles
    else:
        names = "; ".join(data.input_names[i] if i < len(data.input_names) else latent_name(i) for i in used)
        nucleus_only = None if roles is None else all(roles[i] == "nucleus" for i in used)
    return {
        "scheme": scheme.value,
        "scheme_number": scheme.number,
        "seed": int(seed),
        "accuracy": float(metrics["accuracy"]),
        "balanced_accuracy": float(metrics["balanced_accuracy"]),
        "active_weights": int(metrics["active_weights"]),
        "expression_size": int(metrics["expression_size"]),
        "n_inputs_used": len(used),
        "inputs_used": names,
        "nucleus_only": nucleus_only,
        "train_seconds": float(result.card["train_seconds"]),
        "baseline_accuracy": math.nan,
    }


def iter_compare_schemes(
    data: HeadData,
    schemes: Iterable[HeadScheme | str] = ("cnn", "dense", "sparse"),
    seeds: Iterable[int] = range(10),
    *,
    head: HeadConfig | None = None,
    cnn: CNNConfig | None = None,
    rigl: RigLConfig | None = None,
    training: TrainConfig | None = None,
    epochs: int | None = None,
    on_result: Callable[[HeadScheme, int, HeadResult], object] | None = None,
) -> Generator[Progress, None, pd.DataFrame]:
    """Train a head of every scheme with every seed on the same data and split; tabulate the test results.

    Parameters
    ----------
    data : HeadData
        Crops for Scheme 1, latents for Schemes 2-3; with generating factors (synthetic data) the table says
        whether each sparse head reads nucleus latents only.
    schemes : iterable of HeadScheme or str
        Any of ``"cnn"`` (Scheme 1), ``"dense"`` (Scheme 2), ``"sparse"`` (Scheme 3), in the order to train.
    seeds : iterable of int
        One model per seed and scheme (the paper trained ten); the seed sets the initial weights, shuffling
        and validation split.
    head, cnn, rigl : optional
        Passed to :func:`~napari_cellstate.core.heads.fit.iter_train_head`.
    training : TrainConfig, optional
        Used for every scheme with its seed replaced per run; default: each scheme's
        :func:`~napari_cellstate.core.heads.fit.default_training` for the rows it trains on.
    epochs : int, optional
        Epochs for every run, in place of ``training``'s or the schemes' defaults (each scheme keeps its own
        batch size, learning rate and device).
    on_result : callable, optional
        Called as ``on_result(scheme, seed, result)`` after each model is trained, so the caller decides
        which models to keep (e.g. :class:`BestHeads`); the table alone holds no model.

    Yields
    ------
    Progress
        The training events re-labelled "Scheme 2, seed 3 (4/10): ...", on one scale over all runs (each run
        counts equally, whatever its length).

    Returns
    -------
    DataFrame
        One row per model, columns :data:`RUN_COLUMNS`; ``nucleus_only`` is None for the CNN (its features are
        not latents) and when the data have no factors to give latents roles; ``baseline_accuracy`` is a logistic
        regression's on the same inputs and split (:func:`~napari_cellstate.core.heads.crossval.baseline_scores`).

    Raises
    ------
    HeadDataError
        Before any training, when the data cannot train a requested scheme.
    """
    schemes = [HeadScheme(s) for s in schemes]
    seeds = [int(s) for s in seeds]
    _check_data(data, schemes)
    try:
        roles = latent_roles(data) if data.latents is not None else None
    except HeadDataError:
        roles = None  # no factors: the table cannot say which latents are nucleus ones
    total = len(schemes) * len(seeds) * _UNITS_PER_RUN
    rows, baselines = [], {}
    runs = [(scheme, k, seed) for scheme in schemes for k, seed in enumerate(seeds)]
    for run, (scheme, k, seed) in enumerate(runs):
        config = _training_for(scheme, seed, data, training, epochs)
        label = f"Scheme {scheme.number}, seed {seed} ({k + 1}/{len(seeds)})"
        steps = iter_train_head(
            scheme, data, head=head, cnn=cnn, rigl=rigl, training=config, validation_fraction=_VALIDATION_FRACTION
        )
        result = yield from _relabelled(steps, label, run, total)
        row = _run_row(scheme, seed, result, data, roles)
        if scheme not in baselines:  # the same rows for every seed: one baseline per input kind
            baselines[scheme] = baseline_scores(data, scheme, data.rows("train"), data.rows("test"))["accuracy"]
        row["baseline_accuracy"] = baselines[scheme]
        rows.append(row)
        if on_result is not None:
            on_result(scheme, seed, result)
        yield Progress(
            (run + 1) * _UNITS_PER_RUN,
            total,
            f"{label}: test accuracy {row['accuracy']:.1%}, {row['active_weights']} weights",
            {"accuracy": row["accuracy"], "balanced_accuracy": row["balanced_accuracy"]},
        )
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def symbolic_run_row(seed: int, summary: dict) -> dict:
    """A runs-table row (:data:`RUN_COLUMNS`) for a Scheme 4 formula, from its search summary.

    ``summary`` is :meth:`~napari_cellstate.core.symbolic.search.DiscoveryResult.summary`: ``test_accuracy``,
    ``test_balanced_accuracy``, ``size``, ``inputs_used``, ``seconds``. An expression has no weights (0).
    """
    return {
        "scheme": _SYMBOLIC,
        "scheme_number": 4,
        "seed": int(seed),
        "accuracy": float(summary["test_accuracy"]),
        "balanced_accuracy": float(summary["test_balanced_accuracy"]),
        "active_weights": 0,
        "expression_size": int(summary["size"]),
        "n_inputs_used": len(summary["inputs_used"]),
        "inputs_used": "; ".join(summary["inputs_used"]),
        "nucleus_only": None,
        "train_seconds": float(summary["seconds"]),
    }


def _mean_std(values: pd.Series, decimals: int, scale: float = 1.0, unit: str = "") -> str:
    """``"mean ± std unit"`` (sample std over models), the mean alone for one model or equal values."""
    values = pd.to_numeric(values, errors="coerce").dropna() * scale
    if values.empty:
        return "—"
    mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
    text = f"{mean:.{decimals}f}" if round(std, decimals) == 0 else f"{mean:.{decimals}f} ± {std:.{decimals}f}"
    return f"{text} {unit}".rstrip()


def summarise_table1(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 with our results: one row per scheme (1-4), ours beside the paper's.

    Parameters
    ----------
    runs : DataFrame
        What :func:`iter_compare_schemes` returns (or a CSV of it); rows of scheme ``"symbolic"`` (Scheme 4,
        distilled elsewhere) are summarised too when present.

    Returns
    -------
    DataFrame
        Columns ``Scheme, Encoder, Head, models, head weights, expression size, accuracy, balanced accuracy``
        (ours: mean ± sample standard deviation over the models, accuracies in %), ``baseline accuracy`` (a
        logistic regression on the same inputs and split, when the runs have it) and ``paper head weights,
        paper expression size, paper accuracy``. Schemes without runs show "—"; Scheme 4 has no weights
        ("N/A").

    Examples
    --------
    >>> runs = pd.DataFrame({"scheme": ["dense", "dense"], "accuracy": [0.99, 0.97],
    ...                      "balanced_accuracy": [0.99, 0.97], "active_weights": [1040, 1040],
    ...                      "expression_size": [4289, 4289]})
    >>> summarise_table1(runs).loc[1, ["head weights", "accuracy", "paper accuracy"]].tolist()
    ['1040', '98.0 ± 1.4 %', '99.0 ± 0.1 %']
    """
    rows = []
    for paper in PAPER_TABLE1:
        mine = runs[runs["scheme"].map(_SCHEME_NUMBERS) == paper.scheme]
        symbolic = paper.head_weights == "N/A"  # an expression has no weights
        weights = ("N/A" if len(mine) else "—") if symbolic else _mean_std(mine["active_weights"], 0)
        rows.append(
            {
                "Scheme": paper.scheme,
                "Encoder": paper.encoder,
                "Head": paper.head,
                "models": len(mine),
                "head weights": weights,
                "expression size": _mean_std(mine["expression_size"], 0),
                "accuracy": _mean_std(mine["accuracy"], 1, 100, "%"),
                "balanced accuracy": _mean_std(mine["balanced_accuracy"], 1, 100, "%"),
                **({"baseline accuracy": _baseline(mine)} if "baseline_accuracy" in runs else {}),
                "paper head weights": paper.head_weights,
                "paper expression size": paper.expression_size,
                "paper accuracy": paper.accuracy,
            }
        )
    return pd.DataFrame(rows)


def _baseline(runs: pd.DataFrame) -> str:
    """A scheme's logistic-regression baseline: one figure, as every seed shares the split."""
    return _mean_std(runs["baseline_accuracy"].iloc[:1], 1, 100, "%")


def table1_markdown(summary: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of :func:`summarise_table1`'s result.

    >>> print(table1_markdown(pd.DataFrame({"Scheme": [2], "accuracy": ["99.0 %"]})))
    | Scheme | accuracy |
    | --- | --- |
    | 2 | 99.0 % |
    """

    def cell(value) -> str:
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(cell(c) for c in summary.columns) + " |",
        "| " + " | ".join("---" for _ in summary.columns) + " |",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in summary.itertuples(index=False)]
    return "\n".join(lines)


def write_table1(folder: os.PathLike | str, runs: pd.DataFrame, summary: pd.DataFrame) -> dict[str, Path]:
    """Save the runs (``table1_runs.csv``), the summary (``table1.csv``) and its markdown (``table1.md``).

    Each file is written to a temporary name and renamed, so an interrupted write leaves the previous file
    (or none), never half a table. The folder is created if needed.

    Returns
    -------
    dict of str to Path
        ``runs``, ``summary`` and ``markdown``: the files written.
    """
    folder = Path(folder)
    paths = {
        "runs": folder / "table1_runs.csv",
        "summary": folder / "table1.csv",
        "markdown": folder / "table1.md",
    }
    with atomic_path(paths["runs"]) as tmp:
        runs.to_csv(tmp, index=False, encoding="utf-8")
    with atomic_path(paths["summary"]) as tmp:
        summary.to_csv(tmp, index=False, encoding="utf-8")
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(table1_markdown(summary) + "\n", encoding="utf-8")
    return paths


def _is_true(value) -> bool:
    """True for True and for "True" (a CSV read back by pandas may hold either)."""
    return value is True or value is np.True_ or str(value) == "True"


def table1_bars(runs: pd.DataFrame) -> dict:
    """The paper's findings as numbers, and whether our runs meet each bar.

    Bars (:data:`BAR_DESCRIPTIONS`): mean Scheme 3 accuracy ≥ 98 % of mean Scheme 2 accuracy with mean active
    weights ≤ 3 % of Scheme 2's (the accuracy ratio is rounded to a whole percent first, as the paper rounds
    its own 97.0 / 99.0 = 97.98 % to "98 %"); sparse heads reading nucleus latents only in at least 80 % of the
    seeds (8 of 10, rounded up for other counts); mean Scheme 1 accuracy ≥ mean Scheme 2 accuracy; every head
    uses its inputs and beats chance (a head with no active weight, or a balanced accuracy ≤ 55 %, has learnt
    nothing: it fails this bar and the bars of its scheme, however accurate it looks on unbalanced classes).

    Parameters
    ----------
    runs : DataFrame
        What :func:`iter_compare_schemes` returns (or a CSV of it).

    Returns
    -------
    dict
        ``sparse_dense_accuracy_ratio``, ``sparse_dense_weights_ratio``, ``cnn_accuracy``,
        ``dense_accuracy``, ``sparse_accuracy`` (means; NaN when a scheme was not run), ``nucleus_only_runs``,
        ``sparse_runs_with_roles``, ``nucleus_only_needed``, ``heads_at_chance`` (``"scheme seed"`` of each head
        that learnt nothing) and ``passed``: bar name to True/False, or None where the runs cannot decide it (a
        scheme missing, or no latent roles).

    Examples
    --------
    >>> runs = pd.DataFrame({"scheme": ["dense", "sparse"], "accuracy": [0.99, 0.975],
    ...                      "active_weights": [1040, 20], "nucleus_only": [None, True]})
    >>> table1_bars(runs)["passed"]
    {'scheme3_vs_scheme2': True, 'nucleus_only': True, 'scheme1_vs_scheme2': None, 'above_chance': True}
    """
    accuracy = runs.groupby("scheme")["accuracy"].mean()
    weights = runs.groupby("scheme")["active_weights"].mean()
    cnn, dense, sparse = (
        float(accuracy.get(s.value, math.nan)) for s in (HeadScheme.CNN, HeadScheme.DENSE, HeadScheme.SPARSE)
    )
    accuracy_ratio = sparse / dense if dense > 0 else math.nan
    dense_weights = float(weights.get(HeadScheme.DENSE.value, math.nan))
    weights_ratio = (
        float(weights.get(HeadScheme.SPARSE.value, math.nan)) / dense_weights if dense_weights > 0 else math.nan
    )

    sparse_rows = runs[runs["scheme"] == HeadScheme.SPARSE.value]
    known = sparse_rows["nucleus_only"].dropna() if "nucleus_only" in runs else pd.Series(dtype=object)
    nucleus_only = int(sum(_is_true(v) for v in known))
    needed = math.ceil(NUCLEUS_ONLY_SHARE * len(known) - 1e-9)

    # a formula (Scheme 4) has no weights: only the networks can be left with none
    weightless = pd.to_numeric(runs["active_weights"], errors="coerce") <= 0
    chance = weightless & (runs["scheme"] != _SYMBOLIC)
    if "balanced_accuracy" in runs:
        chance |= pd.to_numeric(runs["balanced_accuracy"], errors="coerce") <= CHANCE_BALANCED_ACCURACY
    failed_schemes = set(runs.loc[chance, "scheme"])
    seeds = runs["seed"] if "seed" in runs else pd.Series(range(len(runs)), index=runs.index)
    at_chance = [f"{scheme} {seed}" for scheme, seed in zip(runs.loc[chance, "scheme"], seeds[chance], strict=True)]

    def decided(condition: bool, *values: float, schemes: tuple[HeadScheme, ...] = ()) -> bool | None:
        """None where a compared mean is missing (NaN), else the condition, failed by a scheme at chance."""
        if any(math.isnan(v) for v in values):
            return None
        return bool(condition) and not any(s.value in failed_schemes for s in schemes)

    return {
        "cnn_accuracy": cnn,
        "dense_accuracy": dense,
        "sparse_accuracy": sparse,
        "sparse_dense_accuracy_ratio": accuracy_ratio,
        "sparse_dense_weights_ratio": weights_ratio,
        "nucleus_only_runs": nucleus_only,
        "sparse_runs_with_roles": len(known),
        "nucleus_only_needed": needed,
        "heads_at_chance": at_chance,
        "passed": {
            "scheme3_vs_scheme2": decided(
                round(accuracy_ratio, 2) >= ACCURACY_RATIO_BAR and weights_ratio <= WEIGHTS_RATIO_BAR,
                accuracy_ratio,
                weights_ratio,
                schemes=(HeadScheme.SPARSE, HeadScheme.DENSE),
            ),
            "nucleus_only": bool(nucleus_only >= needed) and HeadScheme.SPARSE.value not in failed_schemes
            if len(known)
            else None,
            "scheme1_vs_scheme2": decided(cnn >= dense, cnn, dense, schemes=(HeadScheme.CNN, HeadScheme.DENSE)),
            "above_chance": not at_chance if len(runs) else None,
        },
    }


def _percent(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}%}"  # NaN: a scheme was not run


def bars_report(bars: dict) -> list[str]:
    """:func:`table1_bars` as lines of text: the figures, then PASS / FAIL / n/a for each bar."""
    lines = [
        f"Scheme 3 / Scheme 2: accuracy {_percent(bars['sparse_dense_accuracy_ratio'], 1)}, "
        f"weights {_percent(bars['sparse_dense_weights_ratio'], 1)}",
        f"nucleus-only sparse heads: {bars['nucleus_only_runs']} of {bars['sparse_runs_with_roles']} "
        f"(need {bars['nucleus_only_needed']})",
        f"accuracy: Scheme 1 {_percent(bars['cnn_accuracy'])}, Scheme 2 {_percent(bars['dense_accuracy'])}",
    ]
    if bars.get("heads_at_chance"):
        lines.append(f"heads that learnt nothing (no active weight or at chance): {', '.join(bars['heads_at_chance'])}")
    verdicts = {True: "PASS", False: "FAIL", None: "n/a "}
    return lines + [f"[{verdicts[passed]}] {BAR_DESCRIPTIONS[name]}" for name, passed in bars["passed"].items()]
