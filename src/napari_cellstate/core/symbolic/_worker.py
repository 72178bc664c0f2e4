"""One pyoperon search in a fresh, light process: ``python -m napari_cellstate.core.symbolic._worker FOLDER``.

The folder holds ``inputs.npz`` (x, target; no pickles) and ``job.json`` (names, settings, ``end_by``: the wall-clock
time, in seconds since the epoch, by which the search must have ended); the worker writes ``result.json``
(candidates as [text, length, loss], generations, evaluations, seconds). Only numpy and pyoperon are imported,
so a worker starts in well under a second and spends its time searching, whatever program started it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .engines import run_operon


def run_job(folder: Path) -> None:
    """Run the search described in ``folder`` and write its ``result.json`` there."""
    job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    with np.load(folder / "inputs.npz", allow_pickle=False) as data:
        x, target = data["x"], data["target"]
    started = time.monotonic()
    counts = [0, 0]  # generations, evaluations
    candidates = run_operon(
        x,
        target,
        job["names"],
        classify=job["classify"],
        operators=job["operators"],
        max_length=job["max_length"],
        time_s=max(1.0, job["end_by"] - time.time()),
        seed=job["seed"],
        generations=job["generations"],
        balanced=job["balanced"],
        on_generation=lambda g, e: counts.__setitem__(slice(None), [g, e]),
    )
    seconds = time.monotonic() - started
    candidates = [[c.text, c.length, c.loss] for c in candidates]
    result = {"candidates": candidates, "generations": counts[0], "evaluations": counts[1], "seconds": seconds}
    partial = folder / "result.json.partial"
    partial.write_text(json.dumps(result), encoding="utf-8")
    os.replace(partial, folder / "result.json")


if __name__ == "__main__":
    run_job(Path(sys.argv[1]))
