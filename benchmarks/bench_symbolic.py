"""Scheme 4 benchmark: recover a known formula from noisy labels; pyoperon against gplearn in the same run.

Rows: 8,000 standard-normal latents (z3, z17, z21, z29 and two unrelated ones), labelled by the sign of
z29·(z17² + z21²) − exp(exp(z3)) ("double") or − exp(z3) ("single"), 2 % of labels flipped. A seed counts as
recovered when the chosen formula reads exactly z3, z17, z21, z29, uses the same operations (+, ×, square, exp;
constants aside, from its SymPy tree) and agrees in sign with the true formula on ≥ 97 % of fresh rows.
Bar: ≥ 8 of 10 seeds per variant, each within the time budget (60 s).

gplearn's SymbolicClassifier (log loss, pure Python; a benchmark-only baseline, not a dependency) gets the
same rows and operators (exp protected) and a comparable time; its size is its program length in nodes.

    python benchmarks/bench_symbolic.py [--seeds 10] [--first-seed 0] [--budget 60] [--gplearn-seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from napari_cellstate.core.symbolic.known_truth import KNOWN_NAMES, known_truth, known_truth_rows, recovered
from napari_cellstate.core.symbolic.search import SearchSettings, discover_expression


def run_operon(seed: int, variant: str, budget: float) -> dict:
    x, labels, split = known_truth_rows(seed, variant)
    start = time.perf_counter()
    result = discover_expression(
        x, labels, KNOWN_NAMES, split, settings=SearchSettings(time_budget_s=budget, seed=seed)
    )
    seconds = time.perf_counter() - start
    ok, agreement = recovered(result.expression, variant)
    searches = result.data["searches"]
    return {
        "evaluations_per_s": sum(r["evaluations"] for r in searches) / max(sum(r["seconds"] for r in searches), 1e-9),
        "ok": ok,
        "agreement": agreement,
        "test_accuracy": result.point.test_accuracy,
        "baseline": result.baseline_test_accuracy,
        "size": result.point.size,
        "seconds": seconds,
        "formula": result.expression.readable(),
    }


def run_gplearn(seed: int, variant: str, generations: int) -> dict:
    from gplearn.functions import make_function
    from gplearn.genetic import SymbolicClassifier

    def _exp(v):
        with np.errstate(over="ignore"):
            return np.where(v < 50, np.exp(np.minimum(v, 50)), np.exp(50))

    x, labels, split = known_truth_rows(seed, variant)
    train, test = split == "train", split == "test"
    model = SymbolicClassifier(
        population_size=1000,
        generations=generations,
        function_set=("add", "sub", "mul", "div", make_function(function=_exp, name="exp", arity=1)),
        parsimony_coefficient=0.001,
        random_state=seed,
        n_jobs=1,
    )
    start = time.perf_counter()
    model.fit(x[train], labels[train])
    seconds = time.perf_counter() - start
    fresh = np.random.default_rng(12345).standard_normal((20000, len(KNOWN_NAMES)))
    agreement = float(np.mean(model.predict(fresh) == (known_truth(fresh, variant) >= 0)))
    return {
        "agreement": agreement,
        "test_accuracy": float(np.mean(model.predict(x[test]) == labels[test])),
        "size": int(model._program.length_),
        "seconds": seconds,
        "formula": str(model._program),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per pyoperon search")
    parser.add_argument("--gplearn-seeds", type=int, default=3)
    parser.add_argument("--gplearn-generations", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=["double", "single"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for variant in args.variants:
        print(f"\n== {variant} exponential: z29*(z17**2 + z21**2) - exp({'exp(z3)' if variant == 'double' else 'z3'})")
        runs = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            run = run_operon(seed, variant, args.budget)
            runs.append(run)
            print(
                f"  pyoperon seed {seed}: {'RECOVERED' if run['ok'] else 'missed'} agreement {run['agreement']:.3f}, "
                f"test {run['test_accuracy']:.3f} (logistic regression {run['baseline']:.3f}), size {run['size']}, "
                f"{run['seconds']:.0f} s, {run['evaluations_per_s']:.0f} evaluations/s per search: {run['formula']}",
                flush=True,
            )
        gp = []
        for seed in range(args.first_seed, args.first_seed + args.gplearn_seeds):
            run = run_gplearn(seed, variant, args.gplearn_generations)
            gp.append(run)
            print(
                f"  gplearn  seed {seed}: agreement {run['agreement']:.3f}, test {run['test_accuracy']:.3f}, "
                f"size {run['size']}, {run['seconds']:.0f} s",
                flush=True,
            )
        hits = sum(r["ok"] for r in runs)
        print(f"  pyoperon: recovered {hits}/{len(runs)} (bar 8/10); median over seeds:")
        for name, rows in (("pyoperon", runs), ("gplearn", gp)):
            if rows:
                keys = ("agreement", "test_accuracy", "size", "seconds", "evaluations_per_s")
                med = {k: statistics.median(r[k] for r in rows) for k in keys if k in rows[0]}
                rate = med.get("evaluations_per_s")
                rate = "" if rate is None else f", {rate:.0f} evaluations/s per search"
                print(
                    f"    {name:8s} agreement {med['agreement']:.3f}, test accuracy {med['test_accuracy']:.3f}, "
                    f"size {med['size']:.0f}, {med['seconds']:.0f} s{rate}"
                )
        print(f"    logistic regression baseline test accuracy {statistics.median(r['baseline'] for r in runs):.3f}")


if __name__ == "__main__":
    main()
