"""The ``import-crops`` command of ``napari-cellstate``: a folder of labelled crops becomes a project.

Heavy libraries are imported inside the command so that ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_import_crops(args: argparse.Namespace) -> int:
    """Import crops sorted into class-named subfolders; print how folders map onto labels."""
    from .core.config import CropConfig
    from .core.project import import_crop_folder
    from .core.states import CellState

    dataset = import_crop_folder(
        args.folder,
        args.project,
        CropConfig(size_px=args.crop_size, pixel_size_um=args.pixel_size),
        positions_json=args.positions,
        replace=args.replace,
    )
    settings = dataset.metadata["sources"][-1]["crop_settings"]
    known = {state.value for state in CellState}
    print(f"imported {len(dataset)} crops into {Path(args.project)}; class folders -> labels:")
    counts = settings["classes"]
    for folder, label in settings["class_labels"].items():
        kind = "state" if label in known else "extra class (kept as its own label; heads train on interphase/metaphase)"
        print(f"  {folder!r:24s} -> {label!r:16s} {counts[label]:5d} crops  ({kind})")
    if settings["converted_to_grey"]:
        print(f"  {len(settings['converted_to_grey'])} colour images converted to grey")
    print(f"next: napari-cellstate encode {args.project}")
    return 0


def add_realdata_commands(sub) -> None:
    """Register the real-data commands on the main parser's subparsers."""
    imp = sub.add_parser(
        "import-crops", help="make a project from a folder of crops in class-named subfolders (e.g. Metaphase/)"
    )
    imp.add_argument("folder", help="folder holding one subfolder of TIFF/PNG crops per class")
    imp.add_argument("--project", required=True, help="project folder (created if needed)")
    imp.add_argument("--pixel-size", type=float, help="the crops' pixel size in micrometres, recorded (optional)")
    imp.add_argument("--crop-size", type=int, default=64, help="crops are resized to this side, px (default: 64)")
    imp.add_argument("--positions", help="JSON of where each crop was cut ({'t', 'y', 'x'} per image)")
    imp.add_argument(
        "--replace", action="store_true", help="replace a dataset whose cells have latents, predictions or labels"
    )
    imp.set_defaults(func=cmd_import_crops)
