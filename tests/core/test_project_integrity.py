"""The project store under faults: kills, two writers, old folders, labels after re-tracking, foreign latents."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellstate.core.config import CropConfig
from napari_cellstate.core.crops import extract_crops
from napari_cellstate.core.labelling import LabelStore
from napari_cellstate.core.objects import validate_objects
from napari_cellstate.core.project import (
    Project,
    ProjectBusyError,
    ProjectError,
    load_crop_dataset,
    project_lock,
    set_object_columns,
    write_crop_dataset,
)
from napari_cellstate.core.project.check import check_project

DATA = Path(__file__).resolve().parents[1] / "data"
TRACK_SCRIPT = Path(__file__).with_name("_track_script.py")


@pytest.fixture(scope="module")
def tiny_result(small_sample):
    objects = small_sample.objects.iloc[:40]
    objects = validate_objects(objects.assign(object_id=np.arange(1, len(objects) + 1)))  # unique, as tracking gives
    return extract_crops(small_sample.movie, objects, CropConfig(size_px=16), pixel_size_um=0.33)


# --- one writer at a time ---------------------------------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from napari_cellstate.core.project import project_lock
with project_lock(sys.argv[1], "napari-cellstate track movie.tif"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _start_holder(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_is_refused_with_the_holders_name(tmp_path, tiny_result):
    project = Project.create(tmp_path / "p")
    holder = _start_holder(project.path)
    try:
        with pytest.raises(ProjectBusyError, match=rf"`napari-cellstate track movie.tif` \(pid {holder.pid}"):
            write_crop_dataset(project, tiny_result, "s")
        assert Project.open(project.path).run_id is None  # nothing written
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead holder's lock: the next writer goes ahead
    assert len(write_crop_dataset(project, tiny_result, "s")) == len(tiny_result.crops)


def test_the_lock_refuses_other_threads_and_lets_the_holder_reenter(tmp_path):
    import threading

    errors = []
    with project_lock(tmp_path, "first"), project_lock(tmp_path, "nested, same thread"):

        def other():
            try:
                with project_lock(tmp_path, "second"):
                    pass
            except ProjectBusyError as err:
                errors.append(str(err))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1
    assert "another task of this session" in errors[0]


# --- kill -9 at random points of a run ------------------------------------------------------------------------------


def _kill_track_at(folder: Path, frames: int, delay_s: float) -> bool:
    """Run the track script into ``folder`` and kill -9 it after ``delay_s`` once ready; True if it finished first."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, str(TRACK_SCRIPT), str(folder), str(frames)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout.readline().strip() == "ready"
    time.sleep(delay_s)
    finished = process.poll() is not None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return finished


@pytest.mark.slow
def test_kill_9_during_track_leaves_the_old_or_the_new_complete_project(tmp_path):
    folder = tmp_path / "p"
    subprocess.run([sys.executable, str(TRACK_SCRIPT), str(folder), "4"], check=True, capture_output=True)
    old = check_project(folder)
    assert old["frames"] == 4
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.0, 3.0, 4):
        _kill_track_at(folder, 7, float(delay))
        state = check_project(folder)  # reads every part; raises if mixed or damaged
        assert state["frames"] in (4, 7)
        assert state["n_crops"] == (old["n_crops"] if state["frames"] == 4 else state["n_crops"])
    # the next run cleans up what the killed ones left
    subprocess.run([sys.executable, str(TRACK_SCRIPT), str(folder), "5"], check=True, capture_output=True)
    assert check_project(folder)["frames"] == 5
    assert not list(folder.glob(".staging-*"))
    assert [p.name for p in (folder / "runs").iterdir()] == [Project.open(folder).run_id]


# --- re-tracking keeps labels, by position ---------------------------------------------------------------------------


def test_retracking_asks_to_replace_and_rematches_labels_by_position(tmp_path, tiny_result):
    project = Project.create(tmp_path / "p")
    write_crop_dataset(project, tiny_result, "first")
    objects = load_crop_dataset(project).objects
    store = LabelStore(project.labels_path)
    store.assign(objects.iloc[:5], "metaphase")
    set_object_columns(project, pd.DataFrame({"z0": np.zeros(len(objects))}), group="latents")

    # the same cells, numbered anew (as another tracking run would)
    renumbered = tiny_result.objects.assign(object_id=tiny_result.objects["object_id"].to_numpy()[::-1])
    from napari_cellstate.core.crops import CropResult

    again = CropResult(tiny_result.crops, renumbered, tiny_result.settings)
    with pytest.raises(ProjectError, match=r"latents, labels.*--replace"):
        write_crop_dataset(project, again, "second")
    assert load_crop_dataset(project).objects["source"].iloc[0] == "first"  # untouched

    new = write_crop_dataset(project, again, "second", replace=True).objects
    assert "z0" not in new  # the latents went with the old run
    labelled = LabelStore(project.labels_path).labels_for(new)
    expected = new[["t", "y", "x"]].merge(objects.iloc[:5][["t", "y", "x"]], how="left", indicator=True)
    assert (labelled == "metaphase").tolist() == (expected["_merge"] == "both").tolist()
    assert (labelled == "metaphase").sum() == 5


def test_a_label_far_from_every_cell_matches_nothing_even_with_its_id(tmp_path, tiny_result):
    objects = validate_objects(tiny_result.objects)
    store = LabelStore(tmp_path / "labels.csv")
    store.assign(objects.iloc[:2], "metaphase")
    moved = objects.assign(x=objects["x"] + 50)  # the same ids, other cells
    assert (store.labels_for(moved) == "").all()
    assert (store.matched_objects(moved) == -1).all()


# --- column provenance and foreign latents ----------------------------------------------------------------------------


def test_a_head_refuses_latents_of_another_encoder(tmp_path, tiny_result):
    import torch

    from napari_cellstate.core.config import HeadConfig
    from napari_cellstate.core.heads._model import MLPHead
    from napari_cellstate.core.heads.apply import apply_head
    from napari_cellstate.core.provenance import EncoderMismatchError, model_provenance

    project = Project.create(tmp_path / "p")
    write_crop_dataset(project, tiny_result, "s")
    n = len(tiny_result.crops)
    latents = pd.DataFrame(np.zeros((n, 32)), columns=[f"z{j}" for j in range(32)])
    ours = model_provenance(torch.nn.Linear(2, 2), "our β-TCVAE")
    theirs = model_provenance(torch.nn.Linear(3, 2), "someone else's β-TCVAE")
    set_object_columns(project, latents, group="latents", provenance={"command": "encode", "model": ours})
    head = MLPHead(HeadConfig())
    with pytest.raises(EncoderMismatchError, match=r"someone else's β-TCVAE.*our β-TCVAE"):
        apply_head(project, head, card={"data": {"encoder": theirs}})
    assert "head_score" not in load_crop_dataset(project).objects  # nothing written
    scored = apply_head(project, head, card={"data": {"encoder": ours}})
    assert len(scored["head_score"]) == n
    assert load_crop_dataset(project).provenance["predictions"]["command"] == "apply head"


def test_the_model_hash_follows_the_weights():
    import torch

    from napari_cellstate.core.provenance import model_provenance

    torch.manual_seed(0)
    a = torch.nn.Linear(4, 2)
    b = torch.nn.Linear(4, 2)
    b.load_state_dict(a.state_dict())
    assert model_provenance(a, "a")["sha256"] == model_provenance(b, "b")["sha256"]
    with torch.no_grad():
        b.weight[0, 0] += 1e-6
    assert model_provenance(a, "a")["sha256"] != model_provenance(b, "b")["sha256"]


# --- folders of project version 1 -------------------------------------------------------------------------------------


def test_a_version_1_project_is_migrated_once_with_its_columns(tmp_path):
    import zarr

    folder = tmp_path / "old"
    shutil.copytree(DATA / "project_v1", folder)
    v1_crops = np.asarray(zarr.open_group(folder / "crops.zarr", mode="r")["crops"][:])
    v1_labels = np.asarray(zarr.open_array(str(folder / "segmentation.zarr"), mode="r")[:])

    data = load_crop_dataset(folder)
    np.testing.assert_array_equal(np.asarray(data.crops), v1_crops)
    assert data.objects["z0"].tolist() == list(np.arange(len(v1_crops), dtype=float))
    assert set(data.provenance) == {"latents", "predictions"}
    assert "not recorded" in data.provenance["latents"]["command"]
    info = json.loads((folder / "project.json").read_text())
    assert info["version"] == 2
    assert "migrated" in info
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "project.json", "runs"]
    project = Project.open(folder)
    np.testing.assert_array_equal(zarr.open_array(str(project.segmentation_path), mode="r")[:], v1_labels)
    assert check_project(folder)["n_crops"] == len(v1_crops)
