"""The pipeline commands of ``napari-cellstate``: ``run CONFIG`` (every step, resumable) and ``demo``.

Heavy libraries are imported inside each command so that ``--help`` stays instant. With ``--json`` exactly one
JSON document goes to stdout and progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_DEMO_FOLDER = Path("cellstate-demo")


def _printer(stream):
    last = {"stage": None, "time": 0.0}

    def report(event) -> None:
        now = time.perf_counter()
        ended = event.kind in ("step_done", "step_skipped")
        if ended or event.stage != last["stage"] or now - last["time"] > 5 or event.step == event.total:
            print(f"[{event.stage or 'run'}] {event.message}", file=stream, flush=True)
            last["stage"], last["time"] = event.stage, now

    return report


def _run(config, args: argparse.Namespace) -> int:
    from .core.flow import iter_run_flow
    from .core.progress import run_to_completion

    log = sys.stderr if args.json else sys.stdout
    start = time.perf_counter()
    result = run_to_completion(iter_run_flow(config, steps=args.steps, force=args.force or ()), _printer(log))
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"steps": result["steps"], "report": result["report"], "seconds": round(seconds, 1)}))
    else:
        ran = [name for name, step in result["steps"].items() if step["status"] == "ran"]
        skipped = [name for name, step in result["steps"].items() if step["status"] == "skipped"]
        print(f"ran {', '.join(ran) or 'nothing'}; skipped (done before) {', '.join(skipped) or 'nothing'}")
        print(f"finished in {seconds:.0f} s; report: {result['report']}")
    return 0


def _scaled(config, args: argparse.Namespace):
    changes = {k: v for k, v in (("scheduler", args.scheduler), ("workers", args.workers)) if v is not None}
    if changes:
        config = config.model_copy(update={"scale": config.scale.model_copy(update=changes)})
    return config


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline of a config file, skipping steps already done and valid."""
    from .core.flow import default_config_text, read_flow_config

    if args.print_default_config:
        print(default_config_text(), end="")
        return 0
    if not args.config:
        raise ValueError("give a config file (see `napari-cellstate run --print-default-config`)")
    return _run(_scaled(read_flow_config(args.config), args), args)


def demo_config(out: Path, seed: int = 0):
    """The demo: the built-in sample, the packaged β-TCVAE, Schemes 1-4 and the audit, sized for 2 CPU cores."""
    from .core.flow import FlowConfig

    return FlowConfig.model_validate(
        {
            "project": str(out.absolute()),
            "seed": seed,
            "inputs": {"sample": {"seed": seed}},
            "heads": {"seeds": 3},  # spread over seeds in Table 1, still a few minutes on 2 cores
            "symbolic": {"time_budget_s": 15},
            "audit": {"max_cells": 60, "n_minimal": 10, "gallery_cells": 4},
        }
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole pipeline on the built-in synthetic sample."""
    from .core.flow import symbolic_available

    out = Path(args.out)
    print(f"napari-cellstate demo: writing to {out.absolute()}")
    if not symbolic_available():
        print("note: Scheme 4 not available (the symbolic module is not installed); Schemes 1-3 and the audit run.")
    return _run(_scaled(demo_config(out, args.seed), args), args)


def _add_common(parser: argparse.ArgumentParser) -> None:
    from .core.flow import STEPS

    parser.add_argument("--steps", nargs="+", choices=STEPS, help="run only these steps (default: all)")
    parser.add_argument("--force", nargs="+", choices=STEPS, help="run these steps even if done")
    parser.add_argument("--scheduler", help="dask.distributed scheduler address for per-movie work and encoding")
    parser.add_argument("--workers", type=int, help="local dask workers when no scheduler is given (default: 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary on stdout (progress on stderr)")


def add_run_commands(sub) -> None:
    """Register ``run`` and ``demo`` on the main parser's subparsers."""
    run = sub.add_parser("run", help="the whole pipeline from one TOML/YAML config (resumable)")
    run.add_argument("config", nargs="?", help="run configuration (.toml, .yaml or .json)")
    run.add_argument("--print-default-config", action="store_true", help="print every setting with its default")
    _add_common(run)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="the pipeline on the built-in synthetic sample, with its report")
    demo.add_argument("--out", default=str(DEFAULT_DEMO_FOLDER), help="project folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)
