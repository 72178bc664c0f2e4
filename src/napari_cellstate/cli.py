"""The ``napari-cellstate`` command: demo, simulate, track, train-vae, encode, train-heads, apply-head, doctor.

Heavy libraries are imported inside each command, so ``--help`` is instant and
PySR (which would fetch Julia) is never imported here.
"""

from __future__ import annotations

import argparse
import os
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


def _print_progress(event) -> None:
    if event.total <= 1 or event.step == event.total or event.step % 20 == 0:
        print(f"  {event.message}", flush=True)


def _track_and_crop(movie, project: Path, source: str, pixel_size_um: float, labels=None, crop_cfg=None, seg_cfg=None):
    from .core.config import CropConfig
    from .core.pipeline import iter_track_and_crop
    from .core.progress import run_to_completion

    start = time.perf_counter()
    result = run_to_completion(
        iter_track_and_crop(
            movie,
            pixel_size_um=pixel_size_um,
            labels=labels,
            segmentation=seg_cfg,
            crops=crop_cfg or CropConfig(),
            project=project,
            source=source,
        ),
        _print_progress,
    )
    objects = result.objects
    print(
        f"{len(objects)} cells, {objects['track_id'].nunique()} tracks, {len(result.graph)} daughters, "
        f"{len(result.crops.crops)} crops in {time.perf_counter() - start:.1f} s -> {project}"
    )
    return result


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole flow that exists so far on the built-in synthetic sample."""
    from ._cli_heads import apply_to_project, encode_and_report, train_and_compare
    from .core.config import SimulationConfig
    from .core.heads.data import project_head_data
    from .core.labelling import LabelStore
    from .core.segment import detection_scores
    from .core.simulate import simulate_movie
    from .core.track_metrics import score_tracking

    folder = Path(args.out)
    print(f"napari-cellstate demo: writing to {folder.resolve()}")
    cfg = SimulationConfig(seed=args.seed)
    _simulate_to(folder, cfg)
    truth = simulate_movie(cfg)  # same seed, same movie: cheaper than re-reading the files
    print("segmenting, tracking and cropping the movie:")
    project = folder / "project"
    result = _track_and_crop(truth.movie, project, "synthetic", cfg.pixel_size_um)
    detection = detection_scores(truth.labels, result.labels)
    scores = score_tracking(
        truth.objects.assign(object_id=truth.objects["track_id"]), truth.labels, result.objects, result.labels
    )
    labelled = LabelStore(project / "labels.csv").import_ground_truth(truth.objects, result.objects)
    print(
        f"segmentation F1 {detection['f1']:.3f} (IoU >= 0.5); tracking TRA {scores['TRA']:.3f}, "
        f"DET {scores['DET']:.3f}, link accuracy {scores['link_accuracy']:.3f}, "
        f"division F1 {scores['division_f1_within_2_frames']:.2f} within 2 frames "
        f"({scores['division_f1']:.2f} at the exact frame)"
    )
    print(f"{labelled} cells labelled from the ground truth in {project / 'labels.csv'}")
    encode_and_report(project)
    print("training and comparing the heads on the labelled cells (Schemes 1-3, Table 1):")
    train_and_compare(project_head_data(project), folder / "heads", ["cnn", "dense", "sparse"], range(args.seeds))
    apply_to_project(project, str(folder / "heads" / "sparse_head"))
    print(f"Open {folder / 'preview.png'} to see the movie with its true states.")
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    """Segment (or read labels), track and crop a user's movie into a project folder."""
    from .core.config import CropConfig, SegmentationConfig
    from .core.io import read_movie
    from .core.movie import max_project_z

    movie = read_movie(args.movie)
    if args.max_project:
        movie = max_project_z(movie)
    labels = read_movie(args.labels) if args.labels else None
    crop_cfg = CropConfig(size_px=args.crop_size, mask_neighbours=args.mask_neighbours)
    seg_cfg = SegmentationConfig(pixel_size_um=args.pixel_size, threshold=args.threshold)
    _track_and_crop(movie, Path(args.project), Path(args.movie).stem, args.pixel_size, labels, crop_cfg, seg_cfg)
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


def cmd_train_vae(args: argparse.Namespace) -> int:
    """Train (or fine-tune) a β-TCVAE on synthetic crops or a project's crops, and save it."""
    import numpy as np

    from .core.config import CropGeneratorConfig, TrainConfig, VAEConfig
    from .core.progress import run_to_completion
    from .core.vae import save_vae
    from .core.vae_train import evaluate_on_synthetic, iter_train_vae, synthetic_training_crops

    if args.synthetic:
        chunk = args.generator_chunk or None
        crops, _ = synthetic_training_crops(args.n_crops, seed=args.seed, chunk=chunk)
        data = {
            "source": "synthetic crop generator",
            "n_crops": args.n_crops,
            "generator_seed": args.seed,
            "generator_chunk": chunk,
            "generator": CropGeneratorConfig().model_dump(mode="json"),
        }
    else:
        from .core.dataset import load_crop_dataset

        dataset = load_crop_dataset(args.project)
        train_rows = np.flatnonzero((dataset.objects["split"] == "train").to_numpy())
        crops = np.asarray(dataset.crops)[train_rows]
        data = {"source": str(args.project), "n_crops": len(crops), "split": "train"}
    training = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, learning_rate=args.lr)
    weights = {name: getattr(args, name) for name in ("alpha", "beta", "gamma") if getattr(args, name) is not None}
    vae = VAEConfig(crop_size_px=int(crops.shape[-1]), **weights)
    print(f"training a beta-TCVAE on {len(crops)} crops for {args.epochs} epochs ...", flush=True)

    def report(event):
        if event.message.endswith("done"):  # the loop's epoch-end event
            terms = ", ".join(f"{k} {v:.2f}" for k, v in event.metrics.items() if k not in ("epoch", "step"))
            print(f"  epoch {int(event.metrics['epoch'])}: {terms}", flush=True)

    model, card = run_to_completion(
        iter_train_vae(
            crops, vae, training, start_from=args.start_from, checkpoint_dir=args.checkpoints, resume=args.resume
        ),
        report,
    )
    card["data"].update(data)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only the first process evaluates and saves
        return 0
    if args.synthetic:
        card["metrics"]["synthetic"] = evaluate_on_synthetic(model)
        metrics = card["metrics"]["synthetic"]
        print(
            f"reconstruction MSE {metrics['reconstruction_mse']:.3f}, MIG {metrics['mig']:.3f}, "
            f"strongest |r|: "
            + ", ".join(f"{k} {v['latent']} {v['r']:.2f}" for k, v in metrics["strongest_latent"].items())
        )
    written = save_vae(args.out, model, card)
    print(f"saved {written}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from ._cli_heads import add_head_commands
    from ._cli_symbolic import add_symbolic_commands

    parser = argparse.ArgumentParser(
        prog="napari-cellstate",
        description="Interpretable cell-state models from H2B time-lapse movies.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the pipeline on the built-in synthetic sample")
    demo.add_argument("--out", default=str(DEFAULT_DEMO_FOLDER), help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--seeds", type=int, default=1, help="heads per scheme in the comparison (default: %(default)s)")
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

    trk = sub.add_parser("track", help="segment, track and crop a movie (TIFF or zarr) into a project folder")
    trk.add_argument("movie", help="(T, Y, X) movie: .tif/.tiff or .zarr")
    trk.add_argument("--project", required=True, help="project folder (created if needed)")
    trk.add_argument("--pixel-size", type=float, required=True, help="pixel size in micrometres")
    trk.add_argument("--labels", help="existing (T, Y, X) segmentation to use instead of segmenting")
    trk.add_argument("--threshold", choices=["otsu", "local"], default="otsu")
    trk.add_argument("--crop-size", type=int, default=64)
    trk.add_argument("--mask-neighbours", action="store_true", help="blank every nucleus but the central one")
    trk.add_argument("--max-project", action="store_true", help="maximum projection of a (T, Z, Y, X) movie")
    trk.set_defaults(func=cmd_track)

    tv = sub.add_parser("train-vae", help="train or fine-tune the beta-TCVAE (synthetic crops or a project's)")
    source = tv.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="train on the synthetic crop generator")
    source.add_argument("--project", help="train on a project's crop dataset (its train split)")
    tv.add_argument("--out", required=True, help="model path (writes .safetensors and .json)")
    tv.add_argument("--start-from", help="a saved model to fine-tune")
    tv.add_argument(
        "--generator-chunk",
        type=int,
        default=1000,
        help="synthetic crops per generator call, each with its own textures and neighbours; 0: one call "
        "(default: %(default)s)",
    )
    tv.add_argument("--n-crops", type=int, default=20000)
    tv.add_argument("--epochs", type=int, default=10)
    tv.add_argument("--batch-size", type=int, default=256)
    tv.add_argument("--lr", type=float, default=1e-3)
    weight = "loss weight of the {} (default: {}, or the model's own when fine-tuning)"
    tv.add_argument("--alpha", type=float, help=weight.format("index-code mutual information", 1))
    tv.add_argument("--beta", type=float, help=weight.format("total correlation", 6))
    tv.add_argument("--gamma", type=float, help=weight.format("dimension-wise KL", 1))
    tv.add_argument("--seed", type=int, default=0)
    tv.add_argument("--checkpoints", help="folder for checkpoints (resume with --resume)")
    tv.add_argument("--resume", action="store_true")
    tv.set_defaults(func=cmd_train_vae)

    add_head_commands(sub)
    add_symbolic_commands(sub)

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
