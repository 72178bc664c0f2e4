"""The ``napari-cellstate`` command: run, demo, simulate, track, train-vae, encode, train-heads, apply-head, doctor.

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


def _track_and_crop(
    movie,
    project: Path,
    source: str,
    pixel_size_um: float,
    labels=None,
    crop_cfg=None,
    seg_cfg=None,
    replace=False,
    tracking=None,
):
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
            tracking=tracking,
            crops=crop_cfg or CropConfig(),
            project=project,
            source=source,
            replace=replace,
        ),
        _print_progress,
    )
    objects = result.objects
    seconds = time.perf_counter() - start
    if objects["t"].nunique() < 2:
        print(
            f"{len(objects)} cells in 1 frame: nothing to track (each cell is a single-frame object), "
            f"{len(result.crops.crops)} crops in {seconds:.1f} s -> {project}"
        )
    else:
        print(
            f"{len(objects)} cells, {objects['track_id'].nunique()} tracks, {len(result.graph)} daughters, "
            f"{len(result.crops.crops)} crops in {seconds:.1f} s -> {project}"
        )
    return result


def cmd_track(args: argparse.Namespace) -> int:
    """Segment (or read labels), track and crop a user's movie into a project folder."""
    from .core.config import CropConfig, SegmentationConfig, TrackingConfig
    from .core.crops import check_crop_window
    from .core.io import read_movie
    from .core.movie import check_label_image, check_movie, max_project_z
    from .core.segment import config_for_nucleus_diameter

    crop_cfg = CropConfig(size_px=args.crop_size, mask_neighbours=args.mask_neighbours)
    if args.nucleus_diameter:
        seg_cfg = config_for_nucleus_diameter(
            args.nucleus_diameter / args.pixel_size, pixel_size_um=args.pixel_size, threshold=args.threshold
        )
    else:
        seg_cfg = SegmentationConfig(pixel_size_um=args.pixel_size, threshold=args.threshold)
    movie = read_movie(args.movie)
    if args.max_project:
        movie = max_project_z(movie)
    check_movie(movie)
    check_crop_window(crop_cfg, movie.shape[1:], args.pixel_size)
    labels = check_label_image(read_movie(args.labels), movie.shape) if args.labels else None
    tracking = TrackingConfig(
        max_search_radius_um=args.max_move,
        division_radius_um=args.division_radius,
        recover_divisions=not args.no_division_recovery,
        config_path=args.btrack_config,
    )
    _track_and_crop(
        movie,
        Path(args.project),
        Path(args.movie).stem,
        args.pixel_size,
        labels,
        crop_cfg,
        seg_cfg,
        args.replace,
        tracking,
    )
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


def load_vae_for_check(path: str):
    """The model a fine-tune started from, to score it on the same held-out crops."""
    from .core.vae import load_vae

    return load_vae(path)[0]


def cmd_train_vae(args: argparse.Namespace) -> int:
    """Train (or fine-tune) a β-TCVAE on synthetic crops or a project's crops, and save it."""
    import numpy as np

    from .core.config import CropGeneratorConfig, TrainConfig, VAEConfig
    from .core.progress import run_to_completion
    from .core.vae import save_vae
    from .core.vae.fit import evaluate_on_synthetic, iter_train_vae, synthetic_training_crops

    if args.synthetic:
        chunk = args.generator_chunk or None
        crops, _ = synthetic_training_crops(args.n_crops, seed=args.seed, chunk=chunk)
        train_rows = np.arange(len(crops))
        data = {
            "source": "synthetic crop generator",
            "n_crops": args.n_crops,
            "generator_seed": args.seed,
            "generator_chunk": chunk,
            "generator": CropGeneratorConfig().model_dump(mode="json"),
        }
    else:
        from .core.project import load_crop_dataset

        dataset = load_crop_dataset(args.project)
        train_rows = np.flatnonzero((dataset.objects["split"] == "train").to_numpy())
        crops = dataset.crops  # read in memory, or streamed chunk by chunk when large (iter_train_vae)
        data = {"source": str(args.project), "n_crops": len(train_rows), "split": "train"}
    if args.start_from:  # fine-tuning: settings for a few hundred crops, unless given
        from .core.vae.fit import fine_tune_training, resolve_vae_path

        args.start_from = str(resolve_vae_path(args.start_from))
        defaults = fine_tune_training(len(train_rows), args.seed)
    else:
        defaults = TrainConfig(epochs=10, batch_size=256, learning_rate=1e-3, seed=args.seed)
    training = defaults.model_copy(
        update={
            k: v
            for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr}.items()
            if v is not None
        }
    )
    args.epochs = training.epochs
    loss_options = ("alpha", "beta", "gamma", "input_noise")
    weights = {name: getattr(args, name) for name in loss_options if getattr(args, name) is not None}
    vae = VAEConfig(crop_size_px=int(crops.shape[-1]), **weights)
    print(f"training a beta-TCVAE on {len(train_rows)} crops for {args.epochs} epochs ...", flush=True)

    def report(event):
        if event.kind == "epoch_end":
            terms = ", ".join(f"{k} {v:.2f}" for k, v in event.metrics.items() if k not in ("epoch", "step"))
            print(f"  epoch {int(event.metrics['epoch'])}: {terms}", flush=True)

    model, card = run_to_completion(
        iter_train_vae(
            crops,
            vae,
            training,
            start_from=args.start_from,
            checkpoint_dir=args.checkpoints,
            resume=args.resume,
            rows=None if args.synthetic else train_rows,
        ),
        report,
    )
    card["data"].update(data)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only the first process evaluates and saves
        return 0
    if not args.synthetic:
        from .core.vae.check import reconstruction_mse

        test_rows = np.flatnonzero((dataset.objects["split"] == "test").to_numpy())
        if len(test_rows):
            held_out = np.asarray(dataset.crops[test_rows])
            card["metrics"]["held_out"] = {
                "reconstruction_mse": reconstruction_mse(model, held_out),
                "n": len(held_out),
            }
            before = reconstruction_mse(load_vae_for_check(args.start_from), held_out) if args.start_from else None
            print(
                f"held-out reconstruction MSE on {len(held_out)} test crops: "
                + (f"{before:.3f} before, " if before is not None else "")
                + f"{card['metrics']['held_out']['reconstruction_mse']:.3f} after"
            )
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
    from ._cli_attacks import add_attack_commands
    from ._cli_heads import add_head_commands
    from ._cli_realdata import add_realdata_commands
    from ._cli_run import add_run_commands
    from ._cli_symbolic import add_symbolic_commands

    parser = argparse.ArgumentParser(
        prog="napari-cellstate",
        description="Interpretable cell-state models from H2B time-lapse movies.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

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
    trk.add_argument(
        "--nucleus-diameter",
        type=float,
        help="typical nucleus diameter, µm: segmentation's sizes scale with it (default: made for 9 µm)",
    )
    trk.add_argument("--crop-size", type=int, default=64)
    trk.add_argument("--mask-neighbours", action="store_true", help="blank every nucleus but the central one")
    trk.add_argument("--max-project", action="store_true", help="maximum projection of a (T, Z, Y, X) movie")
    trk.add_argument("--max-move", type=float, help="how far a cell may move between frames, µm (default: 1.5 nuclei)")
    trk.add_argument(
        "--division-radius", type=float, help="how close daughters start to their mother, µm (default: 1.5 nuclei)"
    )
    trk.add_argument("--no-division-recovery", action="store_true", help="keep btrack's divisions only")
    trk.add_argument("--btrack-config", help="a btrack JSON configuration replacing the packaged cell model")
    trk.add_argument(
        "--replace",
        action="store_true",
        help="replace a project whose cells have latents, predictions or labels (labels are kept and matched to "
        "the new cells by position)",
    )
    trk.set_defaults(func=cmd_track)

    tv = sub.add_parser("train-vae", help="train or fine-tune the beta-TCVAE (synthetic crops or a project's)")
    source = tv.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="train on the synthetic crop generator")
    source.add_argument("--project", help="train on a project's crop dataset (its train split)")
    tv.add_argument("--out", required=True, help="model path (writes .safetensors and .json)")
    tv.add_argument("--start-from", help="a saved model to fine-tune, or 'packaged' for the packaged one")
    tv.add_argument(
        "--generator-chunk",
        type=int,
        default=1000,
        help="synthetic crops per generator call, each with its own textures and neighbours; 0: one call "
        "(default: %(default)s)",
    )
    tv.add_argument("--n-crops", type=int, default=20000)
    tuned = " (default: {}; fine-tuning: {})"
    tv.add_argument("--epochs", type=int, help="epochs" + tuned.format(10, "enough for 200 steps"))
    tv.add_argument("--batch-size", type=int, help="crops per step" + tuned.format(256, 64))
    tv.add_argument("--lr", type=float, help="learning rate" + tuned.format("1e-3", "3e-4"))
    weight = "loss weight of the {} (default: {}, or the model's own when fine-tuning)"
    tv.add_argument("--alpha", type=float, help=weight.format("index-code mutual information", 1))
    tv.add_argument("--beta", type=float, help=weight.format("total correlation", 6))
    tv.add_argument("--gamma", type=float, help=weight.format("dimension-wise KL", 1))
    tv.add_argument(
        "--input-noise",
        type=float,
        help="std of noise added to the crops the encoder sees, reconstructing the clean ones (default: 0)",
    )
    tv.add_argument("--seed", type=int, default=0)
    tv.add_argument("--checkpoints", help="folder for checkpoints (resume with --resume)")
    tv.add_argument("--resume", action="store_true")
    tv.set_defaults(func=cmd_train_vae)

    add_head_commands(sub)
    add_realdata_commands(sub)
    add_run_commands(sub)
    add_attack_commands(sub)
    add_symbolic_commands(sub)

    doc = sub.add_parser("doctor", help="check btrack, OpenGL, torch and Julia on this machine")
    doc.add_argument("--fix-btrack", action="store_true", help="rebuild btrack's library with this machine's compiler")
    doc.add_argument("--force", action="store_true", help="rebuild even if the library loads")
    doc.add_argument("--btrack-sdist", type=Path, help="btrack source archive to use instead of downloading")
    doc.add_argument("--eigen-dir", type=Path, help="folder holding Eigen/Dense (instead of downloading)")
    doc.set_defaults(func=cmd_doctor)
    return parser


def _is_expected(err: BaseException) -> bool:
    """Errors of the input, not of napari-cellstate: bad values, files missing or damaged, too little memory."""
    module = type(err).__module__.split(".")[0]
    return isinstance(err, ValueError | OSError | MemoryError) or module in ("zarr", "numcodecs", "tifffile")


def _one_line(err: BaseException) -> str:
    """An error as one line: pydantic's field errors joined, any other message's lines joined."""
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in err.errors())
        return f"invalid {err.title} settings: {fields}"
    if isinstance(err, MemoryError):
        return "not enough memory: use a smaller movie, crop size or batch size"
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if type(err).__module__.split(".")[0] in ("zarr", "numcodecs", "tifffile"):
        return f"damaged or unreadable data ({type(err).__name__}: {text}); copy the file again from its source"
    return text or type(err).__name__


def _share_the_cores() -> None:
    """Give torch as many threads as the cores other work leaves free (``CELLSTATE_TORCH_THREADS`` overrides).

    torch's threads fight for busy cores otherwise (a CNN ten times slower on a loaded laptop). Set through
    ``OMP_NUM_THREADS`` before torch is imported (a user's own setting wins), or directly if it already is.
    """
    from .core.threads import THREADS_ENV_VAR, sensible_torch_threads

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(sensible_torch_threads())
    elif THREADS_ENV_VAR in os.environ or "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(sensible_torch_threads())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-cellstate`` command.

    Returns
    -------
    int
        0 on success; 2 for an error of the input (a clear one-line message on stderr); 1 for an unexpected
        error (one line, and the full traceback with ``--debug``).
    """
    import traceback

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:  # a global flag, accepted anywhere on the line
        argv = ["--debug", *(a for a in argv if a != "--debug")]
    args = build_parser().parse_args(argv)
    try:
        _share_the_cores()
        return args.func(args)
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        expected = _is_expected(err)
        hint = "" if expected or args.debug else " Run again with --debug for the full traceback, and report it."
        kind = "" if expected else f"unexpected error ({type(err).__name__}): "
        print(f"napari-cellstate {args.command}: {kind}{_one_line(err)}{hint}", file=sys.stderr)
        return 2 if expected else 1


if __name__ == "__main__":
    sys.exit(main())
