"""The ``napari-cellstate`` command: demo, doctor, simulate.

Heavy libraries are imported inside each command, so ``--help`` is instant and
PySR (which would fetch Julia) is never imported here.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_DEMO_FOLDER = Path("cellstate-demo")


def _simulate_to(folder: Path, cfg) -> None:
    from .core.io import save_simulation
    from .core.preview import save_movie_preview
    from .core.progress import run_to_completion
    from .core.simulate import iter_simulate_movie

    start = time.perf_counter()

    def report(event):
        if event.step % 10 == 0 or event.step == event.total:
            print(f"simulating: {event.message}", flush=True)

    result = run_to_completion(iter_simulate_movie(cfg), report)
    print(f"simulated {cfg.n_frames} frames in {time.perf_counter() - start:.1f} s")
    written = save_simulation(result, folder)
    written["preview"] = save_movie_preview(result, folder / "preview.png")
    counts = result.objects["state"].value_counts()
    print(
        f"{result.objects['track_id'].nunique()} tracks, {len(result.lineage) // 2} divisions, "
        f"{counts.get('metaphase', 0)} metaphase and {counts.get('interphase', 0)} interphase cell-frames"
    )
    for name, path in written.items():
        print(f"  {name:13s} {path}")


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole flow that exists so far on the built-in synthetic sample."""
    from .core.config import SimulationConfig

    folder = Path(args.out)
    print(f"napari-cellstate demo: writing to {folder.resolve()}")
    _simulate_to(folder, SimulationConfig(seed=args.seed))
    print(f"Open {folder / 'preview.png'} to see the movie with its true states.")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a movie with chosen settings."""
    from .core.config import SimulationConfig

    cfg = SimulationConfig.model_validate_json(Path(args.config).read_text()) if args.config else SimulationConfig()
    changes = {
        "n_frames": args.frames,
        "n_cells": args.cells,
        "n_divisions": args.divisions,
        "neighbour_exclusion_strength": args.exclusion_strength,
        "seed": args.seed,
    }
    cfg = cfg.model_copy(update={k: v for k, v in changes.items() if v is not None})
    cfg = SimulationConfig.model_validate(cfg.model_dump())
    _simulate_to(Path(args.out), cfg)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report what this machine can do; optionally rebuild btrack's library."""
    from .core import doctor

    if args.fix_btrack:
        try:
            doctor.fix_btrack(sdist=args.btrack_sdist, eigen_dir=args.eigen_dir, force=args.force)
        except doctor.BtrackFixError as err:
            print(f"Could not fix btrack: {err}", file=sys.stderr)
            return 1
    checks = doctor.run_checks()
    for check in checks:
        print(check.line())
    return 0 if all(c.ok is not False for c in checks if c.name == "btrack") else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="napari-cellstate",
        description="Interpretable cell-state models from H2B time-lapse movies.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the pipeline on the built-in synthetic sample")
    demo.add_argument("--out", default=str(DEFAULT_DEMO_FOLDER), help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser("simulate", help="simulate an H2B time-lapse with ground truth")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--config", help="SimulationConfig JSON (e.g. a saved simulation.json)")
    sim.add_argument("--frames", type=int)
    sim.add_argument("--cells", type=int)
    sim.add_argument("--divisions", type=int)
    sim.add_argument("--exclusion-strength", type=float, help="0 removes the neighbourhood shortcut")
    sim.add_argument("--seed", type=int)
    sim.set_defaults(func=cmd_simulate)

    doc = sub.add_parser("doctor", help="check btrack, OpenGL, torch and Julia on this machine")
    doc.add_argument("--fix-btrack", action="store_true", help="rebuild btrack's library with this machine's compiler")
    doc.add_argument("--force", action="store_true", help="rebuild even if the library loads")
    doc.add_argument("--btrack-sdist", type=Path, help="btrack source archive to use instead of downloading")
    doc.add_argument("--eigen-dir", type=Path, help="folder holding Eigen/Dense (instead of downloading)")
    doc.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-cellstate`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"napari-cellstate {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
