"""Discover a formula for cell state: searches on folds of the training rows, a Pareto front, a documented choice.

Small label sets (about 100 labelled cells) overfit easily, so no row decides twice:

1. the training rows are split into ``restarts`` folds (grouped by cell, stratified by class);
2. search k runs on the other folds (an engine of :mod:`.engines`) and proposes candidate formulas g;
3. each candidate is calibrated on the rows it was searched on (the threshold t of ``g - t``, or ``t - g``,
   at the cut with the fewest errors, then its constants, the logit's scale and the label-noise level refitted
   by :func:`~napari_cellstate.core.symbolic.expression.refine_constants`; see :mod:`.losses` for why a
   noise floor: mislabelled cells must not pull the boundary) and scored on fold k, which the search never saw;
4. the candidates of all folds form the Pareto front of held-out loss against size (nodes, counted as for
   Table 1), and :func:`choose_best` picks one with PySR's "best" rule;
5. the test rows are used only for the reported test accuracy (and the logistic-regression baseline's).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import sympy
from threadpoolctl import threadpool_limits

from ..progress import Progress, run_to_completion
from .engines import DEFAULT_OPERATORS, Candidate, check_operators, run_pysr
from .expression import SymbolicExpression, refine_constants
from .losses import NOISE_START, best_cut, class_weights, noisy_logistic_loss
from .parse import ExpressionSyntaxError, parse_expression

__all__ = [
    "DiscoveryResult",
    "FrontPoint",
    "SearchSettings",
    "SymbolicDataError",
    "choose_best",
    "discover_expression",
    "iter_discover_expression",
    "pareto_front",
]

_SIMPLIFY_MAX_SIZE = 60  # sympy.simplify is slow on large trees; larger ones are kept as found
_REFINE_WITHIN = 2.5  # all constants are refitted for candidates within this factor of a search's best loss


class SymbolicDataError(ValueError):
    """The data cannot be searched (one class, no inputs, non-numeric values); the message says what to do."""


@dataclass(frozen=True)
class SearchSettings:
    """How to search (see :func:`iter_discover_expression`).

    Attributes
    ----------
    engine : {"operon", "pysr"}, default="operon"
    operators : tuple of str, default=("+", "-", "*", "/", "exp", "square")
    max_length : int, default=25
        Most nodes of an engine's tree (Operon also counts a weight on each input).
    time_budget_s : float, default=60.0
        Wall-clock seconds for all searches together.
    restarts : int, default=2
        Searches, one per fold of the training rows (at least 2: each needs held-out rows).
    n_processes : int, default=2
        Searches run at once, each in its own single-threaded process (pyoperon only).
    max_rows : int, default=1000
        Most rows an engine searches and a candidate is calibrated on (a class-stratified sample): the fitness
        runs in Python, and 1,000 rows resolve a 1 % difference in error while doubling the candidates a search
        can try against 2,000.
    balance_classes : bool, default=False
        Weigh each class half in the fitness, the threshold and the loss (a rare class with clean labels); by
        default every row counts once, which leaves the boundary where symmetric label noise leaves it.
    selection : {"best", "accuracy"}, default="best"
        How the front's point is chosen (PySR's ``model_selection``): "best" is :func:`choose_best` (a short
        formula unless a longer one is much better), "accuracy" the lowest held-out loss (what Table 1 compares:
        accuracy at a size limit; the loss is measured on folds the search never saw, and the size is bounded by
        ``max_length``).
    max_generations : int, optional
        Generations per search; set it for results that repeat exactly with the same seed (a time budget
        alone stops after however many generations the machine managed).
    seed : int, default=0
    """

    engine: str = "operon"
    operators: tuple[str, ...] = DEFAULT_OPERATORS
    max_length: int = 25
    time_budget_s: float = 60.0
    restarts: int = 2
    n_processes: int = 2
    max_rows: int = 1000
    balance_classes: bool = False
    selection: str = "best"
    max_generations: int | None = None
    seed: int = 0

    def checked(self) -> SearchSettings:
        """Validate without changing anything (raises ValueError naming the setting)."""
        if self.engine not in ("operon", "pysr"):
            raise ValueError(f"engine must be 'operon' or 'pysr', not {self.engine!r}.")
        check_operators(self.operators)
        if self.max_length < 3:
            raise ValueError(f"max_length must be at least 3 nodes, not {self.max_length}.")
        if self.restarts < 2:
            raise ValueError("restarts must be at least 2: each search needs held-out training rows to be judged.")
        if not 1 <= self.n_processes <= 2:
            raise ValueError(f"n_processes must be 1 or 2 (a laptop's share), not {self.n_processes}.")
        if self.selection not in ("best", "accuracy"):
            raise ValueError(f"selection must be 'best' or 'accuracy', not {self.selection!r}.")
        if not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be positive, not {self.time_budget_s}.")
        return self


@dataclass(frozen=True)
class FrontPoint:
    """A candidate formula and how it did: held-out loss and accuracy (the choice), train and test accuracy."""

    expression: SymbolicExpression
    size: int
    loss: float
    validation_accuracy: float
    train_accuracy: float = math.nan
    test_accuracy: float = math.nan
    test_balanced_accuracy: float = math.nan


@dataclass
class DiscoveryResult:
    """The Pareto front of a search and the chosen point.

    Attributes
    ----------
    front : list of FrontPoint
        By increasing size, decreasing held-out loss.
    chosen : int
        Index in ``front`` of the chosen formula (:func:`choose_best`, or the user's pick via :meth:`choose`).
    inputs : list of str
        The inputs the search could use.
    target : str
        ``"label"`` or ``"score"``.
    baseline_test_accuracy : float
        Logistic regression on the same inputs and training rows, on the same test rows.
    seconds : float
    settings : SearchSettings
    """

    front: list[FrontPoint]
    chosen: int
    inputs: list[str]
    target: str
    baseline_test_accuracy: float
    seconds: float
    settings: SearchSettings
    data: dict = field(default_factory=dict)

    @property
    def point(self) -> FrontPoint:
        """The chosen point."""
        return self.front[self.chosen]

    @property
    def expression(self) -> SymbolicExpression:
        """The chosen formula."""
        return self.point.expression

    def choose(self, index: int) -> DiscoveryResult:
        """The same result with another point of the front chosen."""
        if not 0 <= index < len(self.front):
            raise IndexError(f"The front has {len(self.front)} points; {index} is not one of them.")
        return replace(self, chosen=index)

    def pareto_table(self) -> pd.DataFrame:
        """One row per front point: expression (rounded), size, held-out loss and accuracy, test accuracy."""
        return pd.DataFrame(
            [
                {
                    "expression": p.expression.readable(),
                    "size": p.size,
                    "loss": p.loss,
                    "validation_accuracy": p.validation_accuracy,
                    "test_accuracy": p.test_accuracy,
                    "chosen": k == self.chosen,
                }
                for k, p in enumerate(self.front)
            ]
        )

    def summary(self) -> dict:
        """The JSON the CLI prints and the card keeps."""
        point = self.point
        return {
            "expression": point.expression.text,
            "readable": point.expression.readable(),
            "latex": point.expression.latex(),
            "size": point.size,
            "train_accuracy": point.train_accuracy,
            "test_accuracy": point.test_accuracy,
            "test_balanced_accuracy": point.test_balanced_accuracy,
            "validation_accuracy": point.validation_accuracy,
            "baseline_test_accuracy": self.baseline_test_accuracy,
            "inputs": self.inputs,
            "inputs_used": point.expression.inputs,
            "target": self.target,
            "seconds": round(self.seconds, 2),
            "pareto": [{"expression": p.expression.text, "size": p.size, "loss": p.loss} for p in self.front],
            "settings": {**asdict(self.settings), "operators": list(self.settings.operators)},
            "data": self.data,
        }


def pareto_front(points: Sequence[FrontPoint]) -> list[FrontPoint]:
    """The points no other point beats on both size and loss, by increasing size (ties: the first kept).

    >>> e = SymbolicExpression(sympy.Integer(1))
    >>> [p.size for p in pareto_front([FrontPoint(e, 5, 0.3, 0), FrontPoint(e, 3, 0.5, 0), FrontPoint(e, 7, 0.4, 0)])]
    [3, 5]
    """
    front: list[FrontPoint] = []
    for point in sorted(points, key=lambda p: (p.size, p.loss)):
        if np.isfinite(point.loss) and (not front or point.loss < front[-1].loss):
            front.append(point)
    return front


def choose_best(front: Sequence[FrontPoint], loss_factor: float = 1.5) -> int:
    """PySR's "best" rule: among points with loss <= ``loss_factor`` × the lowest, the highest score.

    The score of a point is −Δlog(loss)/Δsize against the previous point of the front (the first point
    scores 0): how much loss each extra node buys.

    >>> e = SymbolicExpression(sympy.Integer(1))
    >>> front = [FrontPoint(e, 1, 0.69, 0), FrontPoint(e, 9, 0.12, 0), FrontPoint(e, 25, 0.11, 0)]
    >>> choose_best(front)
    1
    """
    if not front:
        raise ValueError("The Pareto front is empty: the search found no formula.")
    lowest = min(p.loss for p in front)
    scores = [0.0] + [
        -(math.log(max(b.loss, 1e-12)) - math.log(max(a.loss, 1e-12))) / max(b.size - a.size, 1)
        for a, b in itertools.pairwise(front)
    ]
    eligible = [k for k, p in enumerate(front) if p.loss <= loss_factor * lowest]
    return max(eligible, key=lambda k: (scores[k], -k))


def _check_inputs(x: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> None:
    if len(names) == 0 or x.ndim != 2 or x.shape[1] == 0:
        raise SymbolicDataError(
            "No inputs to search over: choose the inputs (e.g. --inputs z3 z17 z21 z29) or train a sparse head "
            "(Scheme 3) first, whose kept latents are the default."
        )
    if x.shape[1] != len(names):
        raise SymbolicDataError(f"{x.shape[1]} input columns but {len(names)} names.")
    if not np.all(np.isfinite(x)):
        raise SymbolicDataError("Some inputs are not finite numbers (NaN or inf): remove those rows first.")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise SymbolicDataError(
            f"The labels hold one class only ({classes.tolist()}): label interphase and metaphase cells both."
        )


def _folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Fold index arrays over positions 0..len(labels)-1, grouped by cell and stratified by class."""
    from sklearn.model_selection import StratifiedGroupKFold

    per_class = np.bincount(labels.astype(int), minlength=2)
    n_groups = len(np.unique(groups))
    if per_class.min() < n_folds or n_groups < n_folds:
        raise SymbolicDataError(
            f"Too few training cells for {n_folds} folds (per class {per_class.tolist()}, {n_groups} cells): "
            "label more cells or use fewer restarts."
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [held for _, held in splitter.split(np.zeros(len(labels)), labels, groups)]


def _sample(rows: np.ndarray, labels: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``most`` of ``rows``, each class in proportion (all of them when they fit)."""
    if len(rows) <= most:
        return rows
    chosen = [
        rng.choice(part, size=max(1, round(most * len(part) / len(rows))), replace=False)
        for part in (rows[labels[rows] == 0], rows[labels[rows] == 1])
        if len(part)
    ]
    return np.sort(np.concatenate(chosen))


def _engine_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates no shorter one beats on the engine's own loss: the only ones worth calibrating."""
    front: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: (c.length, c.loss)):
        if np.isfinite(candidate.loss) and (not front or candidate.loss < front[-1].loss):
            front.append(candidate)
    return front


def _simplified(expr: sympy.Expr) -> sympy.Expr:
    from ..heads.analysis import sympy_expression_size

    if sympy_expression_size(expr) > _SIMPLIFY_MAX_SIZE:
        return expr
    simple = sympy.simplify(expr)
    return simple if sympy_expression_size(simple) <= sympy_expression_size(expr) else expr


def _simplified_point(point: FrontPoint) -> FrontPoint:
    expression = SymbolicExpression(_simplified(point.expression.expr))
    return replace(point, expression=expression, size=expression.size)


def _balanced(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    truth = labels.astype(bool)
    recalls = [np.mean(predicted[truth == c] == c) for c in (False, True) if np.any(truth == c)]
    return float(np.mean(predicted == truth)), float(np.mean(recalls))


def _calibrated(
    candidate: Candidate, names, x_fit, y_fit, x_held, y_held, balanced: bool, refine: bool
) -> FrontPoint | None:
    """The candidate as ``g - t`` (or ``t - g``) thresholded on the fitting rows, scored on held-out rows.

    The threshold t is the cut with the fewest errors (:func:`~.losses.best_cut`); then the logit's scale, the
    label-noise level and (``refine``) all constants are refitted (:func:`refine_constants`), and the held-out
    loss is the likelihood under that fit (:func:`~.losses.noisy_logistic_loss`).
    """
    try:
        g = parse_expression(candidate.text, names)
    except ExpressionSyntaxError:
        return None  # an engine wrote something outside the grammar: not a candidate
    if not g.free_symbols:
        return None
    fit = SymbolicExpression(g).numpy(x_fit, names)
    if np.isnan(fit).any():  # undefined somewhere on the data (log of a negative, 0/0): not a classifier
        return None
    weights = class_weights(y_fit, balanced)
    _, threshold, direction = best_cut(fit, y_fit, weights)
    low, high = np.percentile(np.nan_to_num(fit, posinf=1e300, neginf=-1e300), [25, 75])
    spread = float(high - low)
    if not (np.isfinite(threshold) and np.isfinite(spread) and spread > 0):
        return None
    formula = g - sympy.Float(threshold) if direction > 0 else sympy.Float(threshold) - g
    refined, scale, noise = refine_constants(
        formula, x_fit, y_fit, names, weights=weights, scale=4.0 / spread, noise=NOISE_START, fit_constants=refine
    )
    expression = SymbolicExpression(refined)
    held = np.nan_to_num(expression.numpy(x_held, names), nan=0.0, posinf=1e12, neginf=-1e12)
    loss = noisy_logistic_loss(scale * held, y_held, noise, class_weights(y_held, balanced))
    accuracy, balanced_accuracy = _balanced(held >= 0, y_held)
    return FrontPoint(expression, expression.size, loss, balanced_accuracy if balanced else accuracy)


@dataclass(frozen=True)
class _Job:
    """One search: its rows (positions in the data), held-out fold, engine inputs, seed and wall-clock end."""

    fit: np.ndarray
    held: np.ndarray
    x: np.ndarray
    target: np.ndarray
    seed: int
    end_by: float  # time.time() by which the search must end


def _pysr_job(settings: SearchSettings, job: _Job, names, classify: bool) -> tuple[list[Candidate], dict]:
    time_s = max(1.0, job.end_by - time.time())
    kwargs = {"operators": settings.operators, "max_length": settings.max_length, "seed": job.seed}
    started = time.perf_counter()
    candidates = run_pysr(job.x, job.target, names, classify=classify, time_s=time_s, **kwargs)
    return candidates, {"generations": 0, "evaluations": 0, "seconds": time.perf_counter() - started}


def _start_operon(settings: SearchSettings, job: _Job, names, classify: bool, folder: Path) -> subprocess.Popen:
    """Start one pyoperon search in its own light process (see :mod:`._worker`)."""
    folder.mkdir()
    np.savez(folder / "inputs.npz", x=job.x, target=job.target)
    spec = {
        "names": list(names),
        "classify": classify,
        "operators": list(settings.operators),
        "max_length": settings.max_length,
        "end_by": job.end_by,
        "seed": job.seed,
        "generations": settings.max_generations,
        "balanced": settings.balance_classes,
    }
    (folder / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "napari_cellstate.core.symbolic._worker", str(folder)]
    # the worker imports this very package, wherever it was imported from (an install or a source tree)
    package_root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with open(folder / "stderr.txt", "w", encoding="utf-8") as stderr:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)


def _operon_result(process: subprocess.Popen, folder: Path) -> tuple[list[Candidate], dict]:
    result = folder / "result.json"
    if process.returncode != 0 or not result.exists():
        message = (folder / "stderr.txt").read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"A pyoperon search failed (exit {process.returncode}): {message}")

    found = json.loads(result.read_text(encoding="utf-8"))
    candidates = [Candidate(str(t), int(n), float(loss)) for t, n, loss in found["candidates"]]
    return candidates, {k: found[k] for k in ("generations", "evaluations", "seconds")}


def _run_jobs(
    settings: SearchSettings, jobs: list[_Job], names, classify: bool, heartbeat_s: float = 0.5
) -> Iterator[tuple]:
    """``(index, (candidates, counts))`` of each job as it finishes; ``(None, None)`` while they run.

    ``counts``: the search's generations, candidates evaluated and seconds.

    pyoperon searches run ``n_processes`` at a time, each in a fresh single-threaded process that imports only
    numpy and pyoperon (:mod:`._worker`), so it starts at once, whatever program started it; closing this
    generator (Cancel) terminates them. PySR runs one search at a time (it makes its own process).
    """
    if settings.engine == "pysr":
        for k, job in enumerate(jobs):
            yield k, _pysr_job(settings, job, names, classify)
        return
    with tempfile.TemporaryDirectory(prefix="cellstate-operon-") as tmp:
        waiting, running = list(enumerate(jobs)), {}
        try:
            last = time.perf_counter()
            while waiting or running:
                while waiting and len(running) < settings.n_processes:
                    k, job = waiting.pop(0)
                    folder = Path(tmp) / str(k)
                    running[k] = (_start_operon(settings, job, names, classify, folder), folder)
                finished = [k for k, (process, _) in running.items() if process.poll() is not None]
                for k in finished:
                    yield k, _operon_result(*running.pop(k))
                if not finished:
                    time.sleep(0.05)
                    if time.perf_counter() - last >= heartbeat_s:
                        last = time.perf_counter()
                        yield None, None
        finally:
            for process, _ in running.values():
                process.kill()
                process.wait()


def iter_discover_expression(
    x: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    split: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    score: np.ndarray | None = None,
    settings: SearchSettings | None = None,
) -> Generator[Progress, None, DiscoveryResult]:
    """Search for a formula f(inputs) whose sign tells metaphase (f >= 0) from interphase.

    Parameters
    ----------
    x : ndarray of shape (N, D)
        The inputs, e.g. the latents a sparse head kept; columns named by ``names``.
    labels : ndarray of shape (N,)
        1 metaphase, 0 interphase.
    names : sequence of str
        Input names (``z3``, ``z17``, ...); they are the formula's variables.
    split : ndarray of shape (N,), str
        ``"train"`` or ``"test"``; the search and the choice use training rows only.
    groups : ndarray of shape (N,), optional
        Cell of each row (rows of one cell stay in one fold); default: each row its own cell.
    score : ndarray of shape (N,), optional
        A head's score to reproduce (distillation) instead of the labels; the choice still uses the labels.
    settings : SearchSettings, optional

    Yields
    ------
    Progress
        A heartbeat about twice a second while the searches run (elapsed time), and one event per finished
        search with ``generations`` and ``best_loss`` (held-out). Closing the generator (Cancel) stops the
        pyoperon search processes at once; a PySR search stops at its time budget.

    Returns
    -------
    DiscoveryResult

    Raises
    ------
    SymbolicDataError
        No inputs, one class, non-finite inputs, too few cells for the folds.
    EngineUnavailableError
        PySR chosen where Julia is missing.
    """
    started, started_epoch = time.perf_counter(), time.time()  # the budget covers everything, folds included
    settings = (settings or SearchSettings()).checked()
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int8)
    names = list(names)
    _check_inputs(x, labels, names)
    split = np.asarray(split).astype(str)
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    if len(np.unique(labels[train])) < 2:
        raise SymbolicDataError("The training rows hold one class only: label cells of both classes.")
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    folds = [train[f] for f in _folds(labels[train], groups[train], settings.restarts, settings.seed)]
    rng = np.random.default_rng(settings.seed)
    workers = 1 if settings.engine == "pysr" else settings.n_processes
    rounds = math.ceil(len(folds) / workers)
    reserve = min(15.0, 0.25 * settings.time_budget_s)  # calibrating candidates, scoring the front
    slot = max(1.0, (settings.time_budget_s - reserve) / rounds)
    finish_by = started_epoch + settings.time_budget_s - 0.2 * reserve  # then only the front's scoring is left
    jobs = []
    for k, held in enumerate(folds):
        fit = _sample(np.setdiff1d(train, held), labels, settings.max_rows, rng)
        target = labels[fit] if score is None else np.asarray(score)[fit]
        end_by = started_epoch + slot * (k // workers + 1)
        jobs.append(_Job(fit, held, x[fit], target.astype(np.float64), settings.seed * 1000 + k, end_by))
    points: list[FrontPoint] = []
    searches: list[dict] = []
    best = math.inf
    expected_s = settings.time_budget_s
    units, step, done = 1000, 0, 0
    for k, outcome in _run_jobs(settings, jobs, names, score is None):
        elapsed = time.perf_counter() - started
        step = max(step, min(units - 1, int(units * elapsed / expected_s)))
        if k is None:  # a heartbeat while the searches run: progress, and a point where Cancel takes effect
            yield Progress(step, units, f"searching: {elapsed:.0f} s of about {expected_s:.0f} s", {})
            continue
        candidates, counts = outcome
        searches.append(counts)
        job = jobs[k]
        engine_front = _engine_front(list({c.text: c for c in candidates}.values()))
        near = min((c.loss for c in engine_front), default=0.0) * _REFINE_WITHIN
        engine_front.sort(key=lambda c: c.loss)  # the best first: past the budget the rest keep their constants
        with threadpool_limits(limits=1, user_api="blas"):  # tiny fits: threads only wait (on a shared machine)
            for candidate in engine_front:
                fit, held = job.fit, job.held
                point = _calibrated(
                    candidate,
                    names,
                    x[fit],
                    labels[fit],
                    x[held],
                    labels[held],
                    settings.balance_classes,
                    refine=candidate.loss <= near and time.time() < finish_by,
                )
                if point is not None:
                    points.append(point)
                    best = min(best, point.loss)
        done += 1
        step = max(step, units * done // len(jobs))
        yield Progress(
            step,
            units,
            f"search {done}/{len(jobs)}: {counts['generations']} generations, best held-out loss {best:.4f}",
            {"generations": float(counts["generations"]), "best_loss": float(best)},
        )
    front = pareto_front(points)
    if time.time() < finish_by:  # simplify only the few worth it, and only within the budget
        front = pareto_front([_simplified_point(p) for p in front])
    if not front:
        raise SymbolicDataError("The search found no usable formula: allow more time or a larger max_length.")
    front = [_scored(p, x, labels, names, train, test) for p in front]
    return DiscoveryResult(
        front=front,
        chosen=choose_best(front) if settings.selection == "best" else int(np.argmin([p.loss for p in front])),
        inputs=names,
        target="label" if score is None else "score",
        baseline_test_accuracy=_baseline(x, labels, train, test),
        seconds=time.perf_counter() - started,
        settings=settings,
        data={"n_train": len(train), "n_test": len(test), "n_metaphase": int(labels.sum()), "searches": searches},
    )


def _scored(point: FrontPoint, x, labels, names, train, test) -> FrontPoint:
    scores = point.expression.numpy(x, names)
    train_accuracy = _balanced(scores[train] >= 0, labels[train])[0]
    test_accuracy, test_balanced = _balanced(scores[test] >= 0, labels[test]) if len(test) else (math.nan, math.nan)
    return replace(
        point, train_accuracy=train_accuracy, test_accuracy=test_accuracy, test_balanced_accuracy=test_balanced
    )


def _baseline(x, labels, train, test) -> float:
    """Test accuracy of a class-balanced logistic regression on the same inputs and rows."""
    from sklearn.linear_model import LogisticRegression

    if not len(test):
        return math.nan
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x[train], labels[train])
    return float(np.mean(model.predict(x[test]) == labels[test]))


def iter_discover_for(inputs, settings: SearchSettings | None = None) -> Generator[Progress, None, DiscoveryResult]:
    """:func:`iter_discover_expression` on a :class:`~napari_cellstate.core.symbolic.data.SymbolicInputs`."""
    return (
        yield from iter_discover_expression(
            inputs.x,
            inputs.labels,
            inputs.names,
            inputs.split,
            groups=inputs.groups,
            score=inputs.score,
            settings=settings,
        )
    )


def discover_expression(*args, **kwargs) -> DiscoveryResult:
    """Blocking :func:`iter_discover_expression`."""
    return run_to_completion(iter_discover_expression(*args, **kwargs))
