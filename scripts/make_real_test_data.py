"""Derive the small real test images in tests/data/real/ from the full originals.

Usage (from the repository root)::

    python scripts/make_real_test_data.py [SOURCE_FOLDER] [OUT_FOLDER]

SOURCE_FOLDER (default ``../shared/data/real``) holds the originals named below; OUT_FOLDER defaults to
``tests/data/real``. The Drosophila movie is cut down to 8 of its 63 frames (4 from the
prometaphase/metaphase frames 0-20, 4 from the interphase frames 42-62), unchanged in size and values, written
as uint8 TIFF with zlib compression and a horizontal-difference predictor; the source frame numbers are
stored in the TIFF's JSON metadata (``source_frames``). The two HT29 images are copied byte for byte.
The output is the same on every run. tests/data/real/README.md gives sources and licences.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
DROSOPHILA = "drosophila_histone_gfp_63t.tif"
DROSOPHILA_OUT = "drosophila_histone_gfp_8t.tif"
# Evenly spread over both phases: frames 0-20 prometaphase/metaphase, frames 42-62 interphase.
DROSOPHILA_FRAMES = (0, 7, 14, 20, 42, 49, 56, 62)
HT29 = ("ht29_hoechst.tif", "ht29_ph3.tif")


def make(source: Path, out: Path) -> list[Path]:
    """Write the derived images into ``out`` and return their paths."""
    movie = tifffile.imread(source / DROSOPHILA)
    if movie.shape != (63, 264, 542) or movie.dtype != np.uint8:
        raise ValueError(
            f"{source / DROSOPHILA}: expected a (63, 264, 542) uint8 movie, got {movie.shape} {movie.dtype}"
        )
    out.mkdir(parents=True, exist_ok=True)
    written = [out / DROSOPHILA_OUT]
    tifffile.imwrite(
        written[0],
        movie[list(DROSOPHILA_FRAMES)],
        compression="zlib",
        compressionargs={"level": 9},
        predictor=True,
        metadata={"axes": "TYX", "source": DROSOPHILA, "source_frames": list(DROSOPHILA_FRAMES)},
    )
    for name in HT29:
        written.append(out / name)
        shutil.copyfile(source / name, written[-1])
    return written


def main(argv: list[str]) -> None:
    """Command line: optional source and output folders."""
    source = Path(argv[0]) if argv else ROOT.parent / "shared" / "data" / "real"
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "tests" / "data" / "real"
    for path in make(source, out):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
