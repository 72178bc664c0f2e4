"""The ``discover-expression`` command: a formula for cell state from a project's sparse head or any CSV table.

Heavy libraries are imported inside the command so that ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def discover_and_save(inputs, out: Path, settings, *, vae=None, quiet: bool = False):
    """Search, save the chosen formula as the Scheme 4 model (``out/symbolic``), the front and the figures.

    Returns the :class:`~napari_cellstate.core.symbolic.search.DiscoveryResult`.
    """
    from .core.progress import run_to_completion
    from .core.symbolic.files import save_expression
    from .core.symbolic.plots import save_figures
    from .core.symbolic.search import iter_discover_for

    def report(event) -> None:
        if not quiet:
            print(f"  {event.message}", file=sys.stderr, flush=True)

    result = run_to_completion(
        iter_discover_for(inputs, settings),
        report,
    )
    summary = result.summary()
    summary["source"] = inputs.source
    out.mkdir(parents=True, exist_ok=True)
    save_expression(out / "symbolic", result.expression, inputs.columns, summary)
    result.pareto_table().to_csv(out / "pareto.csv", index=False)
    save_figures(result, inputs.x, inputs.labels, inputs.names, out, vae=vae)
    return result


def cmd_discover_expression(args: argparse.Namespace) -> int:
    """Discover a formula and print it (or one JSON object with --json)."""
    from .core.symbolic.data import inputs_from_project, inputs_from_table
    from .core.symbolic.search import SearchSettings

    if args.table and args.target == "score":
        raise ValueError("--target score reproduces a sparse head's score: use --project, not --table.")
    if args.table:
        inputs = inputs_from_table(args.table, inputs=args.inputs, seed=args.seed)
    else:
        inputs = inputs_from_project(args.project, head=args.head, inputs=args.inputs, target=args.target)
    settings = SearchSettings(
        engine=args.engine,
        operators=tuple(args.operators),
        max_length=args.max_size,
        time_budget_s=args.time_budget,
        restarts=args.restarts,
        seed=args.seed,
    ).checked()
    if not args.json:
        print(f"searching over {', '.join(inputs.names)} ({len(inputs.labels)} cells, {args.engine}) ...")
    result = discover_and_save(inputs, Path(args.out), settings)
    summary = result.summary()
    if args.json:
        keys = ("expression", "size", "train_accuracy", "test_accuracy", "inputs", "seconds", "pareto")
        extra = ("readable", "latex", "inputs_used", "baseline_test_accuracy", "target")
        print(json.dumps({k: summary[k] for k in (*keys, *extra)}))
        return 0
    print(result.pareto_table().to_string(index=False))
    print(
        f"chosen: {summary['readable']}\n  size {summary['size']} nodes, test accuracy {summary['test_accuracy']:.3f} "
        f"(logistic regression on the same inputs {summary['baseline_test_accuracy']:.3f}), "
        f"{summary['seconds']:.0f} s\n  saved {Path(args.out) / 'symbolic.txt'} (+ .json, pareto.csv, figures)"
    )
    return 0


def add_symbolic_commands(sub) -> None:
    """Register ``discover-expression`` on the main parser's subparsers."""
    from .core.symbolic.operators import DEFAULT_OPERATORS, OPERATORS

    de = sub.add_parser("discover-expression", help="symbolic regression: a short formula for cell state (Scheme 4)")
    source = de.add_mutually_exclusive_group(required=True)
    source.add_argument("--project", help="a project with labelled, encoded cells (and a sparse head)")
    source.add_argument("--table", help="a CSV with numeric input columns and a 'label' column")
    de.add_argument("--head", help="the sparse head whose kept latents are the inputs (default: PROJECT/heads/...)")
    de.add_argument("--target", choices=["label", "score"], default="label", help="labels, or the head's score")
    de.add_argument("--inputs", nargs="+", help="input columns (default: the latents the sparse head kept)")
    de.add_argument("--operators", nargs="+", choices=list(OPERATORS), default=list(DEFAULT_OPERATORS))
    de.add_argument("--max-size", type=int, default=25, help="most nodes of a searched tree (default: %(default)s)")
    de.add_argument("--time-budget", type=float, default=60.0, help="seconds for the whole search")
    de.add_argument("--restarts", type=int, default=2, help="searches, one per fold of the training rows")
    de.add_argument("--seed", type=int, default=0)
    de.add_argument("--engine", choices=["operon", "pysr"], default="operon")
    de.add_argument("--out", required=True, help="folder for the formula (symbolic.txt/.json), front and figures")
    de.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress on stderr)")
    de.set_defaults(func=cmd_discover_expression)


def symbolic_runs(data, head, seeds, out: Path, *, time_budget_s: float = 30.0, teacher=None):
    """Scheme 4 for Table 1: one search per seed; saves the best as ``out/symbolic``.

    Inputs: the latents ``head`` (the sparse head) kept and up to
    :data:`~napari_cellstate.core.symbolic.data.EXTRA_INPUTS` more that add to a logistic regression's
    cross-validated likelihood on the training rows (:func:`~napari_cellstate.core.symbolic.data.informative_inputs`).
    Target: ``teacher``'s score (the dense head; distillation,
    chosen and reported on the labels), else the labels. Table 1 compares accuracy at a size limit, so each run
    takes the front's point with the lowest held-out loss (``selection="accuracy"``). Returns the runs-table rows
    (:func:`~napari_cellstate.core.heads.compare.symbolic_run_row`).
    """
    from .core.heads.compare import symbolic_run_row
    from .core.symbolic.data import table1_inputs
    from .core.symbolic.search import SearchSettings

    inputs = table1_inputs(data, head, teacher)
    rows, best = [], None
    for seed in seeds:
        print(
            f"  Scheme 4, seed {seed}: searching over {', '.join(inputs.names)} for {time_budget_s:.0f} s"
            f" (target: {'the dense head score' if teacher is not None else 'labels'})",
            flush=True,
        )
        settings = SearchSettings(time_budget_s=time_budget_s, seed=int(seed), selection="accuracy")
        folder = out / f"symbolic_seed{seed}"
        result = discover_and_save(inputs, folder, settings, quiet=True)
        rows.append(symbolic_run_row(seed, result.summary()))
        print(f"    {result.expression.readable()}: test accuracy {result.point.test_accuracy:.3f}", flush=True)
        if best is None or result.point.validation_accuracy > best[0].point.validation_accuracy:
            best = (result, folder)
    if best is not None:
        from .core.symbolic.files import save_expression

        save_expression(out / "symbolic", best[0].expression, inputs.columns, best[0].summary())
    return rows
