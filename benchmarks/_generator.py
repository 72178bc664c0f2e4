"""Shared by the benchmark scripts: the neighbourhood shortcut of the synthetic crops as command-line options."""

from __future__ import annotations

import argparse

from napari_cellstate.core.config import CropGeneratorConfig


def add_generator_options(parser: argparse.ArgumentParser) -> None:
    """``--exclusion-um`` and ``--exclusion-strength``: the clearance a metaphase cell makes around itself."""
    defaults = CropGeneratorConfig()
    parser.add_argument(
        "--exclusion-um",
        type=float,
        default=defaults.neighbour_exclusion_um,
        help="clearance around a metaphase cell in µm (default: %(default)s)",
    )
    parser.add_argument(
        "--exclusion-strength",
        type=float,
        default=defaults.neighbour_exclusion_strength,
        help="scales the clearance; 0 removes the neighbourhood shortcut (default: %(default)s)",
    )


def generator_from(args: argparse.Namespace) -> CropGeneratorConfig:
    """The crop generator's settings with the options' clearance."""
    return CropGeneratorConfig(
        neighbour_exclusion_um=args.exclusion_um, neighbour_exclusion_strength=args.exclusion_strength
    )
