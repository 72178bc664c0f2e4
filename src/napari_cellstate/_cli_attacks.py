"""The attack commands of ``napari-cellstate``: attack (cells of a project) and audit (every head in a folder).

Heavy libraries are imported inside each command so that ``--help`` stays instant. With ``--json`` exactly
one JSON document goes to stdout and progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HEAD_ARCHITECTURES = ("mlp-head", "cnn-classifier")


def _latent_indices(names: list[str] | None) -> list[int]:
    """``["z3", "17"]`` -> ``[3, 17]``; refuses anything else."""
    out = []
    for name in names or []:
        text = name.lower().removeprefix("z")
        if not text.isdigit():
            from .core.attacks import AttackError

            raise AttackError(f"{name!r} is not a latent: write latents as z3 or 3.")
        out.append(int(text))
    return out


def _progress_printer(stream):
    def report(event) -> None:
        if event.total <= 1 or event.step == event.total or event.step % 5 == 0:
            print(f"  {event.message}", file=stream, flush=True)

    return report


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def cmd_attack(args: argparse.Namespace) -> int:
    """Attack chosen cells of a project with one head; save maps, crops, scores and a summary."""
    from .core.attacks.project import iter_attack_project
    from .core.attacks.results import attack_summary, save_attack_result
    from .core.progress import run_to_completion

    log = sys.stderr if args.json else sys.stdout
    steps = iter_attack_project(
        args.project,
        args.head,
        cell_ids=args.cells,
        predicted_class=getattr(args, "class"),
        space=args.space,
        epsilon=args.epsilon,
        method={"fgsm": "minimal", "pgd": "minimal_pgd"}[args.method] if args.minimal else args.method,
        frozen=_latent_indices(args.freeze),
    )
    print(f"attacking cells of {args.project} with {args.head} ...", file=log)
    result, geometry = run_to_completion(steps, _progress_printer(log))
    folder = save_attack_result(args.out, result, geometry)
    summary = {
        **attack_summary(result),
        "out": str(folder),
        "cells": result.cells.to_dict(orient="records"),
    }
    if args.json:
        print(json.dumps(_jsonable(summary)))
    else:
        shown = ("object_id", "t", "epsilon", "score_before", "score_after", "flipped")
        print(result.cells[[c for c in shown if c in result.cells]].to_string(index=False))
        print(f"flip rate {result.flip_rate:.3f} ({result.space}, {result.method}) -> {folder}")
    return 0


def find_heads(folder: Path) -> list[Path]:
    """Model cards of heads (Schemes 1-3) and saved formulas (Scheme 4) in ``folder``, sorted by name."""
    from .core.attacks import AttackError
    from .core.symbolic.files import is_expression_card

    if not folder.is_dir():
        raise AttackError(
            f"{folder} is not a folder of trained heads: train heads first (`napari-cellstate train-heads`)."
        )
    heads = []
    for card in sorted(folder.glob("*.json")):
        try:
            architecture = json.loads(card.read_text()).get("architecture")
        except (ValueError, AttributeError):
            continue
        if architecture in HEAD_ARCHITECTURES or is_expression_card(card):
            heads.append(card)
    if not heads:
        raise AttackError(
            f"No trained head in {folder}: train heads first (`napari-cellstate train-heads --out {folder}`)."
        )
    return heads


def cmd_audit(args: argparse.Namespace) -> int:
    """Audit every head of a folder on the project's test cells; print and save the table."""
    import pandas as pd

    from .core.attacks.audit import audit_table_markdown
    from .core.attacks.project import iter_audit_heads
    from .core.attacks.results import write_table_atomic
    from .core.io import atomic_path, write_json_atomic
    from .core.progress import run_to_completion

    log = sys.stderr if args.json else sys.stdout
    heads = find_heads(Path(args.heads))
    print(f"auditing {len(heads)} heads on the test cells of {args.project} ...", file=log)
    steps = iter_audit_heads(
        args.project,
        heads,
        central=_latent_indices(args.central) if args.central else None,
        max_cells=args.max_cells,
        n_minimal=args.n_minimal,
        seed=args.seed,
    )
    rows, curves, central = run_to_completion(steps, _progress_printer(log))
    print(f"central-cell latents frozen in the shortcut test: {', '.join(f'z{j}' for j in central)}", file=log)
    out = Path(args.out) if args.out else Path(args.heads) / "audit"
    write_table_atomic(out / "audit.csv", pd.DataFrame(rows))
    write_table_atomic(out / "flip_rate_curves.csv", curves)
    write_json_atomic(out / "audit.json", _jsonable(rows))
    with atomic_path(out / "audit.md") as tmp:
        tmp.write_text(audit_table_markdown(rows) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(_jsonable(rows)))
    else:
        print(audit_table_markdown(rows))
        print(f"-> {out}")
    return 0


def add_attack_commands(sub) -> None:
    """Register the attack commands on the main parser's subparsers."""
    at = sub.add_parser("attack", help="adversarial attacks (FGSM/PGD/minimal ε) on cells of a project")
    at.add_argument("project", help="project folder with a crop dataset (encoded, for latent attacks)")
    at.add_argument("--head", required=True, help="a saved head (.safetensors/.json) or formula (symbolic.json)")
    at.add_argument("--cells", type=int, nargs="+", help="object ids to attack (default: all cells)")
    at.add_argument(
        "--class", choices=["interphase", "metaphase"], help="attack cells the applied head gave this class"
    )
    at.add_argument("--space", choices=["image", "latent"], default="image")
    strength = at.add_mutually_exclusive_group()
    strength.add_argument("--epsilon", type=float, help="step size (default: 0.5 image, 1.0 latent)")
    strength.add_argument(
        "--minimal", action="store_true", help="search the smallest ε at which --method's attack flips each cell"
    )
    at.add_argument("--method", choices=["fgsm", "pgd"], default="fgsm", help="attack (default: %(default)s)")
    at.add_argument("--freeze", nargs="+", metavar="LATENT", help="latents held fixed (latent space), e.g. z3 z17")
    at.add_argument("--out", required=True, help="folder for the result (new, empty, or an earlier attack's)")
    at.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    at.set_defaults(func=cmd_attack)

    au = sub.add_parser("audit", help="domain audit of every head in a folder (central cell, orientation, noise)")
    au.add_argument("project", help="project folder; its test split is audited")
    au.add_argument("--heads", required=True, help="folder of saved heads and formulas")
    au.add_argument("--out", help="folder for the audit table (default: HEADS/audit)")
    au.add_argument("--central", nargs="+", metavar="LATENT", help="central-cell latents (default: from latent roles)")
    au.add_argument("--max-cells", type=int, default=500, help="test cells audited at most (default: %(default)s)")
    au.add_argument("--n-minimal", type=int, default=100, help="cells searched for minimal ε (default: %(default)s)")
    au.add_argument("--seed", type=int, default=0)
    au.add_argument("--json", action="store_true", help="print one JSON list on stdout, one object per head")
    au.set_defaults(func=cmd_audit)
