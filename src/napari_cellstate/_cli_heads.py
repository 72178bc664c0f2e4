"""The head commands of ``napari-cellstate``: encode, train-heads, search-sparsity, apply-head.

Heavy libraries are imported inside each command so that ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SCHEME_TITLES = {"cnn": "Scheme 1 (CNN + dense head)", "dense": "Scheme 2 (dense head)", "sparse": "Scheme 3 (RigL)"}


def _print_progress(event) -> None:
    if event.total <= 1 or event.step == event.total or event.step % 50 == 0:
        print(f"  {event.message}", flush=True)


def encode_and_report(project: Path, vae_path: str | None = None) -> None:
    """Encode a project's crops (packaged β-TCVAE unless ``vae_path``), name the latents, check reconstruction."""
    from .core.project import load_crop_dataset
    from .core.vae import load_vae
    from .core.vae.check import encoding_report
    from .core.vae.encode import encode_project
    from .core.vae.fit import load_default_vae

    model, card = load_vae(vae_path) if vae_path else load_default_vae()
    start = time.perf_counter()
    objects = encode_project(project, model)
    print(
        f"encoded {len(objects)} crops with the {'given' if vae_path else 'packaged'} beta-TCVAE in "
        f"{time.perf_counter() - start:.1f} s"
    )
    report = encoding_report(objects, model, card, load_crop_dataset(project).crops)
    for line in report.lines(str(project)):
        print(f"  {line}")


def cmd_encode(args: argparse.Namespace) -> int:
    """Encode a project's crops into latent columns of its objects table."""
    encode_and_report(Path(args.project), args.vae)
    return 0


def train_and_compare(
    data, out: Path, schemes, seeds, *, density: float = 0.03, epochs: int | None = None, symbolic_budget_s=30.0
) -> dict:
    """Train every scheme for every seed, write Table 1, save the best head of each scheme and the sparse figures.

    With a sparse head and ``symbolic_budget_s`` (seconds per seed; 0 skips), Scheme 4 searches a formula over
    the best sparse head's latents for every seed too (``out/symbolic.txt``).

    Returns the best :class:`~napari_cellstate.core.heads.fit.HeadResult` of each scheme (``.results``).
    """
    from .core.config import RigLConfig
    from .core.heads import save_head
    from .core.heads.compare import (
        BestHeads,
        bars_report,
        iter_compare_schemes,
        summarise_table1,
        table1_bars,
        table1_markdown,
        write_table1,
    )
    from .core.heads.plots import save_sparse_figures
    from .core.progress import run_to_completion

    best = BestHeads()
    start = time.perf_counter()
    runs = run_to_completion(
        iter_compare_schemes(data, schemes, seeds, rigl=RigLConfig(density=density), epochs=epochs, on_result=best),
        _print_progress,
    )
    if symbolic_budget_s and "sparse" in best.results:  # Scheme 4 over the best sparse head's latents
        import pandas as pd

        from ._cli_symbolic import symbolic_runs

        dense = best.results["dense"].model if "dense" in best.results else None  # the teacher, when trained
        rows = symbolic_runs(
            data, best.results["sparse"].model, seeds, out, time_budget_s=symbolic_budget_s, teacher=dense
        )
        runs = pd.concat([runs, pd.DataFrame(rows, columns=runs.columns)], ignore_index=True)
    summary = summarise_table1(runs)
    written = write_table1(out, runs, summary)
    print(f"trained {len(runs)} heads in {time.perf_counter() - start:.0f} s\n")
    print(table1_markdown(summary))
    for line in bars_report(table1_bars(runs)):
        print(f"  {line}")
    for scheme, result in best.results.items():
        written[f"{scheme} head"] = save_head(out / f"{scheme}_head", result.model, result.card)
    if "sparse" in best.results:
        head, names = best.results["sparse"].model, data.input_names
        written.update(save_sparse_figures(head, names, data.latents, out, dpi=120))
        used = ", ".join(names[i] for i in head.used_inputs())
        print(f"\nbest sparse head: {head.active_weights()} weights, inputs {used}")
    for name, path in written.items():
        print(f"  {name:14s} {path}")
    return best


def cmd_train_heads(args: argparse.Namespace) -> int:
    """Train and compare Schemes 1-3 on synthetic crops or a project's labelled cells (or cross-validate them)."""
    from .core.heads.crossval import small_test_warning

    if args.cv is None and not args.out:
        raise ValueError("say where to write Table 1 and the heads: --out FOLDER (or cross-validate with --cv K)")
    if args.json and args.cv is None:
        raise ValueError("--json reports cross-validation: add --cv K")
    data = _head_data(args)
    if args.cv is not None:
        return cross_validate_and_report(data, args)
    print(f"{data.describe()}")
    warning = small_test_warning(data)
    if warning:
        print(f"WARNING: {warning}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_and_compare(
        data,
        out,
        args.schemes,
        range(args.seeds),
        density=args.density,
        epochs=args.epochs,
        symbolic_budget_s=args.symbolic_budget,
    )
    if warning:
        print(f"WARNING: {warning}")
    return 0


def cross_validate_and_report(data, args: argparse.Namespace) -> int:
    """``train-heads --cv K``: every scheme and its logistic-regression baseline on the same K grouped folds."""
    import json
    import sys

    from .core.config import RigLConfig
    from .core.heads.compare import table1_markdown
    from .core.heads.crossval import cv_summary, cv_table, iter_cross_validate
    from .core.progress import run_to_completion

    log = sys.stderr if args.json else sys.stdout

    def report(event) -> None:
        if event.kind == "run_end":
            print(f"  {event.message}", file=log, flush=True)

    print(f"{data.describe()}\n{args.cv}-fold cross-validation, {args.seeds} seeds per scheme and fold", file=log)
    start = time.perf_counter()
    runs = run_to_completion(
        iter_cross_validate(
            data, args.schemes, range(args.seeds), k=args.cv, rigl=RigLConfig(density=args.density), epochs=args.epochs
        ),
        report,
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        from .core.io import atomic_path

        with atomic_path(out / "cv_runs.csv") as tmp:
            runs.to_csv(tmp, index=False, encoding="utf-8")
    summary = cv_summary(runs)
    if args.json:
        document = {"source": data.source, "k": args.cv, "seeds": args.seeds, "schemes": summary}
        print(json.dumps(document, indent=1))
        return 0
    print(f"trained {len(runs)} heads in {time.perf_counter() - start:.0f} s\n")
    print(table1_markdown(cv_table(runs)))
    return 0


def _head_data(args: argparse.Namespace):
    from .core.heads.data import project_head_data, synthetic_head_data

    if args.synthetic:
        return synthetic_head_data(args.n_cells, seed=args.data_seed)
    return project_head_data(args.project, ignore_unmatched_labels=args.ignore_unmatched_labels)


def cmd_search_sparsity(args: argparse.Namespace) -> int:
    """Optuna search of RigL's sparsity (resumable), the trade-off plot, and the chosen head saved."""
    from .core.heads import save_head
    from .core.heads.search import iter_sparsity_search, tradeoff_figure
    from .core.progress import run_to_completion

    if args.synthetic and not args.out:
        raise ValueError("with --synthetic, say where to keep the study: --out FOLDER")
    data = _head_data(args)
    out = Path(args.out) if args.out else Path(args.project) / "heads"
    out.mkdir(parents=True, exist_ok=True)
    storage = out / "sparsity_search.sqlite3"
    print(f"{data.describe()}\nsearching ({args.trials} trials in all, resumable) -> {storage}")
    result = run_to_completion(
        iter_sparsity_search(data, storage, n_trials=args.trials, seed=args.seed, tolerance=args.tolerance),
        _print_progress,
    )
    columns = ["number", "density", "distribution", "val_balanced_accuracy", "active_weights"]
    print("Pareto front:\n" + result.pareto[columns].to_string(index=False))
    metrics = result.head.metrics
    print(
        f"chosen: trial {int(result.chosen['number'])}, density {result.rigl.density:.4f} "
        f"({result.rigl.distribution}): {metrics['active_weights']} weights, test accuracy {metrics['accuracy']:.3f}"
    )
    figure_path = out / "sparsity_tradeoff.png"
    tradeoff_figure(result).savefig(figure_path, dpi=120)
    head_path = save_head(out / "sparse_search_head", result.head.model, result.head.card)
    print(f"  trade-off   {figure_path}\n  head        {head_path}")
    return 0


def apply_to_project(project: Path, head_path: str) -> None:
    """Score every cell of a project with a saved head and print the counts per class."""
    from .core.heads import load_head
    from .core.heads.apply import CLASS_COLUMN, iter_apply_head
    from .core.labelling import LabelStore
    from .core.progress import run_to_completion
    from .core.symbolic.files import expression_paths, load_expression_module

    is_formula = expression_paths(head_path)[0].is_file()  # a Scheme 4 formula (symbolic.txt + .json)
    model, card = load_expression_module(head_path) if is_formula else load_head(head_path)
    objects = run_to_completion(iter_apply_head(project, model, card=card), _print_progress)
    counts = objects[CLASS_COLUMN].value_counts().to_dict()
    print(f"{card.get('scheme', 'head')} head on {len(objects)} cells: {counts} (columns head_score, head_class)")
    labels_csv = project / "labels.csv"
    given = LabelStore(labels_csv).labels_for(objects) if labels_csv.exists() else objects["label"].fillna("")
    labelled = given.isin(["interphase", "metaphase"])
    if labelled.any():
        agree = (given[labelled] == objects.loc[labelled, CLASS_COLUMN]).mean()
        print(f"agreement with the {int(labelled.sum())} labelled cells: {agree:.3f}")


def cmd_apply_head(args: argparse.Namespace) -> int:
    """Write each cell's score and class into the project's objects table."""
    apply_to_project(Path(args.project), args.head)
    return 0


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="balanced synthetic crops (labels known)")
    source.add_argument("--project", help="a project's labelled interphase/metaphase cells (encoded)")
    parser.add_argument("--n-cells", type=int, default=8000, help="synthetic crops (with --synthetic)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic crops")
    parser.add_argument("--ignore-unmatched-labels", action="store_true", help="skip labels on cells without crops")


def add_head_commands(sub) -> None:
    """Register the head commands on the main parser's subparsers."""
    enc = sub.add_parser("encode", help="encode a project's crops with the beta-TCVAE (latent columns z0..)")
    enc.add_argument("project", help="project folder with a crop dataset")
    enc.add_argument("--vae", help="a saved beta-TCVAE (default: the packaged one)")
    enc.set_defaults(func=cmd_encode)

    th = sub.add_parser("train-heads", help="train and compare Schemes 1-3 (Table 1), save the heads")
    _add_data_arguments(th)
    th.add_argument("--out", help="folder for Table 1, the heads and the figures (with --cv: the runs CSV, optional)")
    th.add_argument("--cv", type=int, metavar="K", help="cross-validate on K folds grouped by track, with baselines")
    th.add_argument("--json", action="store_true", help="with --cv: one JSON document on stdout, progress on stderr")
    th.add_argument("--schemes", nargs="+", choices=list(SCHEME_TITLES), default=["cnn", "dense", "sparse"])
    th.add_argument("--seeds", type=int, default=10, help="models per scheme (default: %(default)s)")
    th.add_argument("--epochs", type=int, help="epochs per model (default: per scheme)")
    th.add_argument("--density", type=float, default=0.03, help="RigL's fraction of active weights")
    th.add_argument("--symbolic-budget", type=float, default=30.0, help="seconds per Scheme 4 search (0: none)")
    th.set_defaults(func=cmd_train_heads)

    ss = sub.add_parser("search-sparsity", help="Optuna search of RigL's sparsity; saves the chosen sparse head")
    _add_data_arguments(ss)
    ss.add_argument("--out", help="folder for the study (SQLite), plot and head (default: PROJECT/heads)")
    ss.add_argument("--trials", type=int, default=20, help="completed trials wanted in all (default: %(default)s)")
    ss.add_argument("--tolerance", type=float, default=0.01, help="accuracy given up for fewer weights")
    ss.add_argument("--seed", type=int, default=0)
    ss.set_defaults(func=cmd_search_sparsity)

    ah = sub.add_parser("apply-head", help="score every cell of a project with a saved head")
    ah.add_argument("project", help="project folder (encoded, for Schemes 2-3)")
    ah.add_argument("head", help="a saved head (.safetensors/.json) or formula (symbolic.txt/.json)")
    ah.set_defaults(func=cmd_apply_head)
