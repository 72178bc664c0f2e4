import functools

import numpy as np
import pytest
import sympy

from napari_cellstate.core.symbolic.expression import SymbolicExpression
from napari_cellstate.core.symbolic.known_truth import KNOWN_NAMES, known_truth_rows, recovered
from napari_cellstate.core.symbolic.search import (
    FrontPoint,
    SearchSettings,
    SymbolicDataError,
    choose_best,
    discover_expression,
    pareto_front,
)

ONE = SymbolicExpression(sympy.Integer(1))


def test_the_front_keeps_what_nothing_smaller_beats_and_the_rule_buys_the_steepest_drop():
    points = [FrontPoint(ONE, s, loss, 0.0) for s, loss in [(3, 0.6), (5, 0.62), (7, 0.35), (9, 0.29), (21, 0.2)]]
    front = pareto_front(points)
    assert [p.size for p in front] == [3, 7, 9, 21]
    # within 1.5x of the lowest loss (0.3): sizes 9 and 21, scored -Δlog(loss)/Δsize:
    # score(9) = -log(0.29/0.35)/2 = 0.094 beats score(21) = -log(0.2/0.29)/12 = 0.031
    assert front[choose_best(front)].size == 9
    assert front[choose_best(front, loss_factor=2.0)].size == 7  # score(7) = -log(0.35/0.6)/4 = 0.135


def test_learner_settings_are_validated_without_change():
    settings = SearchSettings(time_budget_s=5)
    assert settings.checked() is settings
    for bad, match in [
        ({"operators": ("+", "erf")}, "Unknown operators"),
        ({"operators": ("exp",)}, "at least one of"),
        ({"restarts": 1}, "at least 2"),
        ({"n_processes": 4}, "1 or 2"),
        ({"engine": "gplearn"}, "engine must be"),
        ({"selection": "score"}, "selection must be"),
    ]:
        with pytest.raises(ValueError, match=match):
            SearchSettings(**bad).checked()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda x, y, n: (x[:, :0], y, []), "No inputs to search over"),
        (lambda x, y, n: (x, np.zeros_like(y), n), "one class only"),
        (lambda x, y, n: (np.where(np.arange(len(x))[:, None] == 3, np.nan, x), y, n), "not finite"),
    ],
)
def test_bad_data_is_refused_before_searching(change, match):
    x, labels, split = known_truth_rows(0, n=300)
    x, labels, names = change(x, labels, list(KNOWN_NAMES))
    with pytest.raises(SymbolicDataError, match=match):
        discover_expression(x, labels, names, split, settings=SearchSettings(time_budget_s=1))


def test_a_hundred_labelled_cells_give_a_formula_that_holds_on_unseen_cells():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2100, 3))
    truth = x[:, 0] - 0.5 * x[:, 1] ** 2 > -0.3
    labels = truth.astype(int)
    split = np.array(["train"] * 100 + ["test"] * 2000)  # 100 labelled cells, 2,000 never seen
    settings = SearchSettings(time_budget_s=10, n_processes=1, seed=0)  # the budget includes the fold split
    result = discover_expression(x, labels, ["a", "b", "c"], split, settings=settings)
    point = result.point
    assert point.test_accuracy >= 0.9
    assert point.test_accuracy >= result.baseline_test_accuracy - 0.02  # no worse than logistic regression
    assert point.size <= 15
    assert {"a", "b"} <= set(point.expression.inputs)
    assert result.summary()["pareto"]  # the whole front is reported


@functools.cache
def _known_truth_search(variant: str, seed: int = 0):
    """One 60 s search per variant, shared by the tests below (the issue's bar: within 60 s on 2 cores)."""
    x, labels, split = known_truth_rows(seed, variant)
    result = discover_expression(x, labels, KNOWN_NAMES, split, settings=SearchSettings(time_budget_s=60, seed=seed))
    return result, *recovered(result.expression, variant)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["single", "double"])
def test_the_known_formula_is_recovered_from_noisy_labels(variant):
    result, ok, agreement = _known_truth_search(variant)
    # the bar: the chosen formula reads exactly z3, z17, z21, z29 and agrees in sign with the truth on
    # >= 97 % of fresh rows (8 of 10 seeds in benchmarks/bench_symbolic.py; one seed here)
    assert ok, f"{result.expression.readable()}: agreement {agreement:.3f}"
    assert result.point.test_accuracy >= result.baseline_test_accuracy + 0.1  # beyond a logistic regression


@pytest.mark.slow
def test_the_front_holds_no_unrelated_latent_near_the_truth():
    result, _, _ = _known_truth_search("single")
    closest = max(result.front, key=lambda p: recovered(p.expression, "single")[1])
    assert {"z3", "z29"} <= set(closest.expression.inputs) <= {"z3", "z17", "z21", "z29"}
    assert recovered(closest.expression, "single")[1] >= 0.97


def test_same_seed_same_formula_on_one_process():
    x, labels, split = known_truth_rows(1, "single", n=600)
    settings = SearchSettings(time_budget_s=60, max_generations=5, n_processes=1, seed=3, max_length=10)
    first = discover_expression(x, labels, KNOWN_NAMES, split, settings=settings)
    again = discover_expression(x, labels, KNOWN_NAMES, split, settings=settings)
    assert first.expression.text == again.expression.text
