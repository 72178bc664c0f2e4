"""Appending movies to a project one after another: seconds and bytes written per append, movie 1..N.

``append_crop_dataset`` hard-links the old crop chunks into the new run and writes only the new crops, so the
cost of an append should stay flat as the dataset grows. The baseline, measured in the same run, is the former
behaviour: every old crop read and written again (quadratic in the number of movies overall). Bytes written are
the process's ``wchar`` counter (/proc/self/io), which the machine's load does not change.

    python benchmarks/bench_append.py               # 10 movies of 2,000 crops
    python benchmarks/bench_append.py --quick       # 4 movies of 500 crops
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd


def _written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _movie(bank: np.ndarray, n: int):
    from napari_cellstate.core.crops import CropResult

    rows = np.arange(n)
    objects = pd.DataFrame(
        {"t": rows % 10, "y": 32.0 + rows // 10, "x": 32.0, "track_id": 1 + rows // 10, "object_id": 1 + rows}
    )
    crops = bank[np.arange(n) % len(bank)]
    return CropResult(crops, objects, {"size_px": bank.shape[-1], "standardise": True, "clip": 4.0})


def _copying_writer():
    """The writer as it was: a new store that re-reads and re-writes every old crop."""
    from napari_cellstate.core.project.crop_store import CHUNK_CROPS, CropStoreWriter

    class CopyingWriter(CropStoreWriter):
        def _take_over(self, base) -> None:
            for start in range(0, base.shape[0], CHUNK_CROPS):
                self.append(base[start : start + CHUNK_CROPS])

    return CopyingWriter


def appends(folder: Path, movie, movies: int) -> list[tuple[float, int]]:
    """Seconds and bytes written by each of ``movies`` appends of ``movie`` to a new project."""
    from napari_cellstate.core.project import Project, append_crop_dataset

    project = Project.create(folder)
    out = []
    for k in range(movies):
        written, start = _written_bytes(), time.perf_counter()
        append_crop_dataset(project, movie, f"movie{k}.tif")
        out.append((time.perf_counter() - start, _written_bytes() - written))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--movies", type=int, default=10)
    parser.add_argument("--crops", type=int, default=2000, help="crops per movie")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.movies, args.crops = 4, 500
    from napari_cellstate.core.vae.fit import synthetic_training_crops

    bank, _ = synthetic_training_crops(min(args.crops, 2048), seed=0)
    movie = _movie(bank, args.crops)
    with tempfile.TemporaryDirectory() as folder:
        linked = appends(Path(folder) / "linked", movie, args.movies)
        with mock.patch("napari_cellstate.core.project.dataset.CropStoreWriter", _copying_writer()):
            copied = appends(Path(folder) / "copied", movie, args.movies)
    print(f"appending {args.movies} movies of {args.crops} crops (64 x 64 float32), one after another:")
    print("  movie  dataset   linked: s     MB written   copied (before): s   MB written")
    for k, ((s_new, b_new), (s_old, b_old)) in enumerate(zip(linked, copied, strict=True), start=1):
        print(
            f"  {k:5d}  {k * args.crops:7d}   {s_new:9.2f}  {b_new / 1e6:9.1f}        {s_old:9.2f}  {b_old / 1e6:9.1f}"
        )
    last, first = linked[-1], linked[1]
    print(
        f"append {args.movies} against append 2: linked {last[0] / first[0]:.2f}x the seconds, "
        f"{last[1] / first[1]:.2f}x the bytes; copied {copied[-1][0] / copied[1][0]:.2f}x the seconds, "
        f"{copied[-1][1] / copied[1][1]:.2f}x the bytes. Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
        "cores."
    )


if __name__ == "__main__":
    main()
