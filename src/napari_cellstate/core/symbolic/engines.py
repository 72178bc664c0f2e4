"""Search engines behind one interface: pyoperon (default) and PySR (optional, in a subprocess).

An engine takes inputs X (N, D), a target and settings, and returns :class:`Candidate` formulas as text in the
input names; :mod:`.search` parses them safely, recalibrates them and chooses among them.

* ``operon``: Operon's genetic programming (C++). For class labels it minimises the error rate of a candidate
  g at its best cut (whichever sign; :func:`~.losses.best_cut`): least squares on ±1 labels rewards
  step-shaped, bloated formulas, a cut needs no scale (fitted afterwards) and, unlike a ranking (AUC), it
  tells the true boundary from one that is nearly right (with 2 % label noise: 2 % against 4 % errors,
  where the AUCs differ by 0.005). The fitness runs in Python (one thread, ~0.15 ms per candidate on 1,000
  rows); the best candidate of each length is kept as it is found. Two things make each second count: a
  candidate whose values on the rows an earlier one already had (a clone, or an edit that changed nothing; about
  a third of the offspring) is not scored again and ranks just behind the original, which keeps the population
  diverse; and a population that has found nothing better for 60 generations starts afresh (the archive
  stays), as a search that settled on a near miss (e.g. ``exp(z29)`` in place of ``z29·...``) rarely leaves it.
  :mod:`.search` runs each search in its own light process (:mod:`._worker`). For a score (distillation) it
  minimises R² against the score with Operon's own two-objective (error, length) NSGA-II on up to 2 threads.
* ``pysr``: PySR, the paper's engine, with ``SigmoidLoss`` on ±1 labels. It needs Julia and is not
  thread-safe, so it runs in a separate Python process; :func:`pysr_equations_to_candidates` translates its
  equation table.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .losses import class_weights
from .operators import DEFAULT_OPERATORS, OPERATORS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_OPERATORS",
    "OPERATORS",
    "Candidate",
    "EngineUnavailableError",
    "pysr_equations_to_candidates",
    "run_operon",
    "run_pysr",
]


class EngineUnavailableError(ValueError):
    """The chosen engine cannot run here (e.g. PySR without Julia); the message says what to do."""


@dataclass(frozen=True)
class Candidate:
    """One formula an engine proposes, as text in the input names, with the engine's own length and loss."""

    text: str
    length: int
    loss: float


def check_operators(operators: Sequence[str]) -> list[str]:
    """The operators, checked against :data:`OPERATORS`; at least one binary operator is needed."""
    unknown = [op for op in operators if op not in OPERATORS]
    if unknown:
        raise ValueError(f"Unknown operators {unknown}; choose among {', '.join(OPERATORS)}.")
    if not any(OPERATORS[op][2] == 2 for op in operators):
        raise ValueError("Give at least one of + - * / so that a formula can combine its inputs.")
    return list(dict.fromkeys(operators))


def _operon_names(pyoperon_variables: dict, names: Sequence[str]) -> dict:
    return {h: names[k] for k, h in enumerate(pyoperon_variables)}


def _node_type(op, symbol: str):
    """Operon's node type of a pyoperon symbol name (``add``, ``exp``, ``square``, ``constant``, ...)."""
    return getattr(op.NodeType, symbol.capitalize())


def _problem(x: np.ndarray, target: np.ndarray, operators: Sequence[str]):
    import pyoperon.pyoperon as op  # not pyoperon.sklearn: it imports scikit-learn, seconds a worker would lose

    data = op.Dataset(np.asfortranarray(np.column_stack([x, target]).astype(np.float64)))
    target_var = max(data.Variables, key=lambda v: v.Index)
    variables = {v.Hash: v.Name for v in sorted(data.Variables, key=lambda v: v.Index) if v.Hash != target_var.Hash}
    problem = op.Problem(data)
    problem.TrainingRange = op.Range(0, data.Rows)
    problem.TestRange = op.Range(data.Rows - 1, data.Rows)
    problem.Target = target_var
    problem.InputHashes = list(variables)
    symbols = [*(OPERATORS[o][0] for o in operators), "constant", "variable"]
    problem.ConfigurePrimitiveSet(functools.reduce(operator.or_, (int(_node_type(op, s)) for s in symbols)))
    return op, data, variables, problem


_CHUNK = 10  # generations per Operon run; the next run continues the population (warm start)
_LATE = 1.0  # the fitness of a candidate evaluated after the deadline: worse than any (at most 0.5), not kept
_STALL = 60  # generations without a lower loss after which the population starts afresh (the archive stays)


def _classification_run(x, labels, names, operators, max_length, time_s, seed, on_generation, generations, balanced):
    """Operon GP on the best-cut error; candidates: the best of each length evaluated in the whole run.

    A candidate with the values of an earlier one is not scored again: it gets that loss plus one row's worth, so
    a clone survives only where nothing distinct is as good. After :data:`_STALL` generations without a lower
    loss the population starts afresh.

    The final population alone would do poorly: without pressure on length it holds only long formulas by
    the end, so the short ones the choice must weigh against them are kept as they are found.
    """
    end = time.monotonic() + time_s
    op, data, variables, problem = _problem(x, 2.0 * labels - 1.0, operators)
    pset = problem.PrimitiveSet
    inputs = list(variables)
    dtable = op.DispatchTable()
    rows = op.Range(0, data.Rows)

    weights = class_weights(labels, balanced)
    positive, total = np.where(labels == 1, weights, 0.0), weights.sum()
    negative_total = total - positive.sum()
    rows_below = np.cumsum(weights) if not balanced else None  # weight of the rows below each cut (all 1)
    mapping = _operon_names(variables, names)
    best: dict[int, Candidate] = {}  # the best formula of each length so far
    seen: dict[int, float] = {}  # loss of each score vector evaluated so far, by the hash of its bytes
    lowest = [math.inf]  # the lowest loss the current population has reached
    evaluations, done, generation = [0], [0], [0]  # evaluated; generations of the runs before this one; in all

    def fitness(_rng, individual):
        """Weighted error rate of the candidate's score at its best cut, whichever way round (see best_cut)."""
        if generation[0] > 0 and time.monotonic() > end:  # the first population is always evaluated
            return [_LATE]  # past the deadline: the rest of the generation is skipped, nothing of it kept
        evaluations[0] += 1
        score = op.Evaluate(dtable, individual.Genotype, data, rows)
        np.nan_to_num(score, copy=False, nan=0.0, posinf=np.inf, neginf=-np.inf)
        key = hash(score.tobytes())
        if key in seen:  # the values of an earlier candidate: archived if shorter, scored one row worse (see above)
            _archive(individual, seen[key])
            return [seen[key] + 1.0 / len(labels)]
        order = np.argsort(score)
        missed = np.cumsum(positive[order])  # positives at or below each cut
        below = rows_below if rows_below is not None else np.cumsum(weights[order])
        errors = 2 * missed - below + negative_total  # missed positives + negatives above: class 1 above the cut
        s = score[order]
        errors = errors[:-1][s[1:] != s[:-1]]  # cuts between distinct scores only
        loss = float(min(errors.min(), total - errors.max()) / total) if len(errors) else 0.5
        seen[key] = loss
        lowest[0] = min(lowest[0], loss)
        _archive(individual, loss)
        return [loss]

    def _archive(individual, loss: float) -> None:
        length = int(individual.Genotype.Length)
        if length not in best or loss < best[length].loss:
            best[length] = Candidate(op.InfixFormatter.Format(individual.Genotype, mapping, 12), length, loss)

    evaluator = op.UserDefinedEvaluator(problem, fitness)
    evaluator.Budget = 10**12
    comparison = op.SingleObjectiveComparison(0)
    female, male = op.TournamentSelector(comparison), op.TournamentSelector(comparison)
    female.TournamentSize = male.TournamentSize = 5
    creator = op.BalancedTreeCreator(pset, inputs, 0.0)
    coefficients = op.NormalCoefficientInitializer()
    coefficients.ParameterizeDistribution(0, 1)
    one_point = op.NormalOnePointMutation()
    one_point.ParameterizeDistribution(0, 1)
    mutations = [
        one_point,
        op.ChangeVariableMutation(inputs),
        op.ChangeFunctionMutation(pset),
        op.InsertSubtreeMutation(creator, coefficients, 10, max_length),
        op.RemoveSubtreeMutation(pset),
        op.ReplaceSubtreeMutation(creator, coefficients, 10, max_length),
    ]
    mutation = op.MultiMutation()
    for m in mutations:
        mutation.Add(m, 1.0)
    crossover = op.SubtreeCrossover(0.9, 10, max_length)
    # Operon keeps raw pointers to these objects: every one must stay referenced until the run ends
    local_search = op.LMOptimizer(dtable, problem, 0, 0)
    optimizer = op.CoefficientOptimizer(local_search)
    generator = op.BasicOffspringGenerator(evaluator, crossover, mutation, female, male, optimizer)
    initializer = op.UniformLengthTreeInitializer(creator)
    initializer.ParameterizeDistribution(3, min(10, max_length))
    initializer.MinDepth, initializer.MaxDepth = 1, 1000
    config = op.GeneticAlgorithmConfig(
        generations=min(generations or _CHUNK, _CHUNK),  # a few per Run: the loop below stops on the wall clock
        max_evaluations=10**12,  # (Operon's own time limit runs late when the processor is shared)
        local_iterations=0,
        population_size=500,
        pool_size=500,
        p_crossover=1.0,
        p_mutation=0.25,
        p_local=0.0,
        p_lamarck=1.0,
        epsilon=1e-5,
        seed=seed,
        max_time=10**6,
    )
    reinserter = op.KeepBestReinserter(comparison)
    gp = op.GeneticProgrammingAlgorithm(config, problem, initializer, coefficients, generator, reinserter)
    rng = op.RandomGenerator(np.uint64(seed))

    def generation_done():
        generation[0] = done[0] + gp.Generation
        on_generation(generation[0], evaluations[0])

    reached, improved = math.inf, 0  # the current population's lowest loss and the generation it was reached
    while done[0] < (generations or 10**9) and (done[0] == 0 or time.monotonic() < end):
        stalled = done[0] - improved >= _STALL
        if stalled:  # a fresh population (the archive stays): another start, not more of a stuck one
            lowest[0] = reached = math.inf
            improved = done[0]
        gp.Run(rng, generation_done, 1, done[0] > 0 and not stalled)  # one thread: the fitness holds the GIL
        done[0] += gp.Generation
        if lowest[0] < reached - 1e-9:
            reached, improved = lowest[0], done[0]
    return list(best.values())


def _distillation_run(x, score, names, operators, max_length, time_s, seed, generations):
    """Operon's NSGA-II on (R², length) against a score: its whole Pareto front."""
    started = time.monotonic()
    from pyoperon.sklearn import SymbolicRegressor  # imports scikit-learn: seconds on a busy machine, in the budget

    symbols = ",".join([*(OPERATORS[o][0] for o in operators), "constant", "variable"])
    regressor = SymbolicRegressor(
        allowed_symbols=symbols,
        objectives=["r2", "length"],
        max_length=max_length,
        generations=generations or 10**6,
        max_evaluations=10**9,
        population_size=1000,
        n_threads=min(2, os.cpu_count() or 1),
        max_time=max(1, int(time_s - (time.monotonic() - started))),
        random_state=seed,
        model_selection_criterion="mean_squared_error",
    )
    regressor.fit(x, score)
    return [
        Candidate(
            regressor.get_model_string(m["tree"], 12, list(names)), int(m["length"]), float(m["mean_squared_error"])
        )
        for m in regressor.pareto_front_
    ]


def run_operon(
    x: np.ndarray,
    target: np.ndarray,
    names: Sequence[str],
    *,
    classify: bool,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    max_length: int = 25,
    time_s: float = 20.0,
    seed: int = 0,
    generations: int | None = None,
    on_generation: Callable[[int, int], object] | None = None,
    balanced: bool = False,
) -> list[Candidate]:
    """One pyoperon run; returns the candidates of its final population (best per length) or Pareto front.

    Parameters
    ----------
    x : ndarray of shape (N, D)
        Inputs, columns named by ``names``.
    target : ndarray of shape (N,)
        0/1 labels (``classify=True``) or a score to reproduce (distillation).
    max_length : int, default=25
        Most nodes of an Operon tree (Operon counts a weight on each input as nodes too).
    time_s : float, default=20.0
        Wall-clock budget of the run, in seconds.
    generations : int, optional
        Stop after this many generations (reproducible: the time budget then only bounds the run); default:
        run until the time budget is spent.
    on_generation : callable, optional
        Called with the generations and candidates evaluated so far, after each generation (classification
        runs).
    balanced : bool, default=False
        Weigh each class half in the classification fitness (see :func:`~.losses.class_weights`).
    """
    operators = check_operators(operators)
    x = np.asarray(x, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if classify:
        return _classification_run(
            x,
            target,
            names,
            operators,
            max_length,
            time_s,
            seed,
            on_generation or (lambda _g, _e: None),
            generations,
            balanced,
        )
    return _distillation_run(x, target, names, operators, max_length, time_s, seed, generations)


# --- PySR ---------------------------------------------------------------------------------------------------------


def pysr_equations_to_candidates(table: pd.DataFrame, names: Sequence[str]) -> list[Candidate]:
    """PySR's ``equations_`` table (complexity, loss, score, equation) as candidates in the input names.

    PySR names inputs ``x0, x1, ...`` in column order; each becomes ``names[k]``. The text is not evaluated
    here: :mod:`.search` parses it with the whitelist parser.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"complexity": [3], "loss": [0.4], "score": [0.1], "equation": ["x1 - 0.5"]})
    >>> pysr_equations_to_candidates(table, ["z3", "z17"])
    [Candidate(text='z17 - 0.5', length=3, loss=0.4)]
    """
    import re

    missing = [c for c in ("complexity", "loss", "equation") if c not in table.columns]
    if missing:
        raise ValueError(f"A PySR equation table needs the columns complexity, loss, equation; {missing} missing.")

    def rename(match: re.Match) -> str:
        index = int(match.group(1))
        if index >= len(names):
            raise ValueError(f"The equation reads x{index}, but only {len(names)} inputs were given.")
        return names[index]

    return [
        Candidate(re.sub(r"\bx(\d+)\b", rename, str(row.equation)), int(row.complexity), float(row.loss))
        for row in table.itertuples(index=False)
    ]


_PYSR_SCRIPT = """
import sys, numpy as np
from pysr import PySRRegressor
folder = sys.argv[1]
data = np.load(folder + "/data.npz", allow_pickle=False)
settings = dict(np.load(folder + "/settings.npz", allow_pickle=False))
binary = [str(o) for o in settings["binary"]]
unary = [str(o) for o in settings["unary"]]
model = PySRRegressor(
    binary_operators=binary, unary_operators=unary, maxsize=int(settings["max_size"]),
    timeout_in_seconds=float(settings["time_s"]), niterations=1000000, random_state=int(settings["seed"]),
    deterministic=True, parallelism="serial", model_selection="best", progress=False, verbosity=0,
    elementwise_loss="SigmoidLoss()" if bool(settings["classify"]) else "L2DistLoss()",
)
model.fit(data["x"], data["y"])
model.equations_[["complexity", "loss", "score", "equation"]].to_csv(folder + "/equations.csv", index=False)
"""


def julia_available() -> bool:
    """Whether a Julia runtime is on this machine (PySR is not imported: importing it downloads Julia)."""
    return bool(os.environ.get("PYTHON_JULIAPKG_EXE") or shutil.which("julia"))


def run_pysr(
    x: np.ndarray,
    target: np.ndarray,
    names: Sequence[str],
    *,
    classify: bool,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    max_length: int = 25,
    time_s: float = 60.0,
    seed: int = 0,
) -> list[Candidate]:
    """One PySR run in a separate Python process (PySR is not thread-safe); its equation table as candidates.

    Raises
    ------
    EngineUnavailableError
        No Julia runtime, or PySR not installed: the message names the fix; pyoperon stays available.
    """
    import importlib.util

    if not julia_available():
        raise EngineUnavailableError(
            "PySR needs Julia, and no Julia runtime was found (julia not on PATH, PYTHON_JULIAPKG_EXE unset). "
            "Install Julia and PySR's Julia packages on a machine with internet, or use the pyoperon engine "
            "(--engine operon), which needs nothing more."
        )
    if importlib.util.find_spec("pysr") is None:
        raise EngineUnavailableError("PySR is not installed: `pip install pysr`, or use the pyoperon engine.")
    operators = check_operators(operators)
    binary = [OPERATORS[o][1] for o in operators if OPERATORS[o][2] == 2]
    unary = [OPERATORS[o][1] for o in operators if OPERATORS[o][2] == 1]
    with tempfile.TemporaryDirectory(prefix="cellstate-pysr-") as folder:
        target = 2.0 * np.asarray(target) - 1.0 if classify else np.asarray(target)
        np.savez(Path(folder) / "data.npz", x=np.asarray(x, dtype=np.float64), y=target.astype(np.float64))
        np.savez(
            Path(folder) / "settings.npz",
            binary=np.array(binary),
            unary=np.array(unary or ["exp"]),
            max_size=max_length,
            time_s=time_s,
            seed=seed,
            classify=classify,
        )
        script = Path(folder) / "run_pysr.py"
        script.write_text(_PYSR_SCRIPT, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script), folder], capture_output=True, text=True, timeout=time_s + 600, check=False
        )
        equations = Path(folder) / "equations.csv"
        if done.returncode != 0 or not equations.exists():
            raise EngineUnavailableError(f"PySR failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
        import pandas as pd

        return pysr_equations_to_candidates(pd.read_csv(equations), names)
