"""Fault injection: nothing lost, nothing silently wrong, under kills, two writers, damaged files and bad input.

The project store's cases are here; the model files' and inputs' cases come from ``faults_models.py``.

Each case damages or interrupts a real project, then checks the invariant: the
project is the old complete state or the new complete state, and every load
either returns correct data or refuses with a clear message. Prints one line per
case and the totals: cases run, clear refusals, silent wrong results (goal 0),
data lost (goal 0).

    python benchmarks/faults.py            # 8 kill timings
    python benchmarks/faults.py --kills 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

OK, REFUSED, SILENT, LOST, UNCLEAR = "ok", "refused clearly", "SILENT WRONG RESULT", "DATA LOST", "UNCLEAR ERROR"
TRACK = """
import sys
from napari_cellstate.core.config import CropConfig, SimulationConfig
from napari_cellstate.core.pipeline import track_and_crop
from napari_cellstate.core.simulate import simulate_movie
frames = int(sys.argv[2])
sample = simulate_movie(SimulationConfig(shape_yx=(128, 128), n_frames=frames, n_cells=6, n_divisions=0, seed=1))
print("ready", flush=True)
track_and_crop(sample.movie, pixel_size_um=0.33, crops=CropConfig(), project=sys.argv[1], replace=True)
"""
ENCODE = """
import sys
from napari_cellstate.core.progress import run_to_completion
from napari_cellstate.core.vae.encode import iter_encode_project
print("ready", flush=True)
run_to_completion(iter_encode_project(sys.argv[1]))
"""


def _run(script: str, *args: str, kill_after: float | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env=env)
    process.stdout.readline()
    if kill_after is None:
        process.wait()
        return
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _state(folder: Path) -> dict:
    from napari_cellstate.core.project.check import check_project

    return check_project(folder)


def _is_clear(error: Exception) -> bool:
    text = str(error)
    return "\n" not in text.strip() and any(w in text for w in ("again", "restore", "backup", "wait", "--replace"))


def _judge(folder: Path, allowed: list[dict]) -> str:
    """The project must read as one of the ``allowed`` complete states, or refuse clearly."""
    from napari_cellstate.core.project import ProjectError

    try:
        state = _state(folder)
    except ProjectError as err:
        return REFUSED if _is_clear(err) else SILENT
    keys = ("n_crops", "frames")
    return OK if any(all(state[k] == a[k] for k in keys) for a in allowed) else LOST


def case_kill_track(folder: Path, delay: float) -> str:
    before = _state(folder)
    _run(TRACK, str(folder), "7", kill_after=delay)
    verdict = _judge(folder, [before, {"n_crops": _state_after_full_run(), "frames": 7}])
    return LOST if verdict == REFUSED else verdict  # after a kill, refusing to read means the old state is gone


_FULL: dict[str, int] = {}


def _state_after_full_run() -> int:
    if "n" not in _FULL:
        with tempfile.TemporaryDirectory() as tmp:
            _run(TRACK, str(Path(tmp) / "p"), "7")
            _FULL["n"] = _state(Path(tmp) / "p")["n_crops"]
    return _FULL["n"]


def case_two_writers(folder: Path) -> str:
    from napari_cellstate.core.project import project_lock

    with project_lock(folder, "faults: first writer"):
        script = "import sys\nfrom napari_cellstate.core.project import project_lock\n"
        script += "with project_lock(sys.argv[1], 'second'): pass"
        second = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True)
    refused = second.returncode != 0 and "ProjectBusyError" in second.stderr and "faults: first writer" in second.stderr
    return REFUSED if refused else SILENT


def _damage_chunk(folder: Path, how: Callable[[Path], None]) -> str:
    from napari_cellstate.core.project import Project, ProjectError, load_crop_dataset

    project = Project.open(folder)
    chunk = sorted(p for p in (project.crops_path / "crops" / "c").rglob("*") if p.is_file())[0]
    how(chunk)
    try:
        crops = np.asarray(load_crop_dataset(folder).crops)
    except ProjectError as err:
        return REFUSED if _is_clear(err) else SILENT
    return SILENT if crops.size else OK


def case_damaged_table(folder: Path, how: Callable[[Path], None]) -> str:
    from napari_cellstate.core.project import Project, ProjectError, load_crop_dataset

    how(Project.open(folder).run_path / "objects.parquet")
    try:
        load_crop_dataset(folder)
    except ProjectError as err:
        return REFUSED if _is_clear(err) else SILENT
    return SILENT


def case_kill_encode(folder: Path, delay: float) -> str:
    from napari_cellstate.core.project import ProjectError, load_crop_dataset

    _run(ENCODE, str(folder), kill_after=delay)
    try:
        objects = load_crop_dataset(folder).objects
    except ProjectError:
        return LOST
    if "z0" in objects and not np.isfinite(objects["z0"]).all():
        return SILENT
    return OK


RUN = """
import sys
from pathlib import Path
from napari_cellstate.core.flow import read_flow_config, run_flow
print("ready", flush=True)
run_flow(read_flow_config(Path(sys.argv[1])))
"""
TINY_RUN = """
project = "proj"
[inputs.sample]
n_frames = 12
n_cells = 24
size_px = 256
[heads]
seeds = 1
epochs = 30
schemes = ["dense", "sparse"]
[symbolic]
time_budget_s = 3
[audit]
max_cells = 20
n_minimal = 3
gallery_cells = 2
"""


def case_kill_run(folder: Path, delay: float) -> str:
    """Kill the whole pipeline (``napari-cellstate run``) at a random moment, then run it again to the end."""
    from napari_cellstate.core.flow import read_flow_config, run_flow
    from napari_cellstate.core.project import ProjectError

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "run.toml"
    config.write_text(TINY_RUN)
    _run(RUN, str(config), kill_after=delay)
    project = folder / "proj"
    if project.exists():
        try:
            _state(project)  # whatever the kill left is complete, or refused clearly
        except ProjectError as err:
            return REFUSED if _is_clear(err) else SILENT
    try:
        summary = run_flow(read_flow_config(config))  # and the next run finishes from there
    except ProjectError:
        return LOST
    return OK if all(step["status"] in ("ran", "skipped") for step in summary["steps"].values()) else LOST


def case_retrack_labelled(folder: Path) -> str:
    from napari_cellstate.core.labelling import LabelStore
    from napari_cellstate.core.project import ProjectError, load_crop_dataset, write_crop_dataset

    dataset = load_crop_dataset(folder)
    LabelStore(folder / "labels.csv").assign(dataset.objects.iloc[:3], "metaphase")
    from napari_cellstate.core.crops import CropResult

    result = CropResult(np.asarray(dataset.crops), dataset.objects, dataset.metadata["crop_settings"])
    try:
        write_crop_dataset(folder, result, "again")
    except ProjectError as err:
        return REFUSED if "--replace" in str(err) else SILENT
    return SILENT


def case_bad_project_json(folder: Path) -> str:
    from napari_cellstate.core.project import ProjectError, load_crop_dataset

    (folder / "project.json").write_text("{garbage")
    try:
        load_crop_dataset(folder)
    except ProjectError as err:
        return REFUSED if "Restore it from a backup" in str(err) else SILENT
    return SILENT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=8, help="kill -9 timings for track and for encode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    results: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        _run(TRACK, str(base), "4")
        _state_after_full_run()

        def fresh() -> Path:
            folder = Path(tempfile.mkdtemp(dir=tmp))
            shutil.rmtree(folder)
            shutil.copytree(base, folder)
            return folder

        for delay in rng.uniform(0.0, 4.0, args.kills):
            results.append((f"kill -9 during track after {delay:.2f} s", case_kill_track(fresh(), float(delay))))
        for delay in rng.uniform(0.5, 6.0, args.kills):
            results.append((f"kill -9 during encode after {delay:.2f} s", case_kill_encode(fresh(), float(delay))))
        for k, delay in enumerate(rng.uniform(1.0, 25.0, max(1, args.kills // 2))):
            run_folder = Path(tmp) / f"run{k}"
            results.append(
                (f"kill -9 during `run` after {delay:.1f} s, then run again", case_kill_run(run_folder, delay))
            )
        results.append(("a second writer while one writes", case_two_writers(fresh())))
        chunk_damage = {
            "deleted": lambda p: p.unlink(),
            "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
            "random bytes": lambda p: p.write_bytes(os.urandom(p.stat().st_size)),
        }
        for name, how in chunk_damage.items():
            results.append((f"crop chunk {name}", _damage_chunk(fresh(), how)))
        table_damage = {
            "deleted": lambda p: p.unlink(),
            "truncated": lambda p: p.write_bytes(p.read_bytes()[:-200]),
            "random bytes": lambda p: p.write_bytes(os.urandom(p.stat().st_size)),
        }
        for name, how in table_damage.items():
            results.append((f"objects table {name}", case_damaged_table(fresh(), how)))
        results.append(("re-track a labelled project without --replace", case_retrack_labelled(fresh())))
        results.append(("project.json garbage", case_bad_project_json(fresh())))
    import faults_models

    model_results = faults_models.run_cases(faults_models.CASES + faults_models.kill_cases(args.kills))
    as_verdict = {
        faults_models.Outcome.CORRECT: OK,
        faults_models.Outcome.CLEAR_REFUSAL: REFUSED,
        faults_models.Outcome.SILENT_WRONG: SILENT,
        faults_models.Outcome.DATA_LOST: LOST,
        faults_models.Outcome.UNCLEAR_ERROR: UNCLEAR,
    }
    results += [(name, as_verdict[outcome]) for name, outcome in model_results.items()]
    for name, verdict in results:
        print(f"{verdict:22s} {name}")
    counts = Counter(verdict for _, verdict in results)
    summary = {
        "cases": len(results),
        "ok": counts[OK],
        "clear_refusals": counts[REFUSED],
        "silent_wrong": counts[SILENT],
        "data_lost": counts[LOST],
        "unclear_errors": counts[UNCLEAR],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
