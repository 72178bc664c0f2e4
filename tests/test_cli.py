import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_cellstate import cli


@pytest.mark.slow
def test_demo_runs_the_pipeline_on_the_sample(tmp_path, capsys):
    from napari_cellstate.core.labelling import LabelStore
    from napari_cellstate.core.project import load_crop_dataset

    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--steps", "inputs", "labels"]) == 0
    printed = capsys.readouterr().out
    assert "report" in printed
    crops = load_crop_dataset(out)
    assert crops.crops.shape[1:] == (64, 64)
    assert LabelStore(out / "labels.csv").counts()["metaphase"] >= 10
    truth = pd.read_csv(out / "flow" / "sample" / "ground_truth.csv")
    assert (truth["state"] == "metaphase").sum() >= 10
    assert not list(out.glob(".*.tmp")), "no temporary files left behind"


def test_simulate_takes_settings_and_reports_bad_ones(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--out", str(out), "--frames", "3", "--cells", "5", "--divisions", "0", "--seed", "2"]
    assert cli.main(args) == 0
    assert tifffile.imread(out / "movie.tif").shape[0] == 3
    assert cli.main(["simulate", "--out", str(out), "--frames", "1"]) == 2
    assert "n_frames" in capsys.readouterr().err


def test_saved_files_get_the_usual_permissions(tmp_path):
    from napari_cellstate.core import io

    path = io.write_json_atomic(tmp_path / "a.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert path.stat().st_mode & 0o777 == 0o666 & ~io._UMASK


def test_track_command_turns_a_tiff_into_a_project(tmp_path, small_sample, capsys):
    from napari_cellstate.core.io import save_simulation
    from napari_cellstate.core.project import load_crop_dataset

    written = save_simulation(small_sample, tmp_path / "sim")
    project = tmp_path / "project"
    args = ["track", str(written["movie"]), "--project", str(project), "--pixel-size", "0.33"]
    assert cli.main(args) == 0
    assert "tracks" in capsys.readouterr().out
    assert len(load_crop_dataset(project).objects) > 400


def test_track_command_explains_a_missing_or_foreign_file(tmp_path, capsys):
    assert cli.main(["track", str(tmp_path / "nope.tif"), "--project", str(tmp_path / "p"), "--pixel-size", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert cli.main(["track", str(other), "--project", str(tmp_path / "p"), "--pixel-size", "1"]) == 2
    assert "expected a .tif" in capsys.readouterr().err


@pytest.mark.slow
def test_head_commands_train_search_and_apply(tmp_path, labelled_project, capsys):
    import shutil

    out = tmp_path / "heads"
    args = ["--synthetic", "--n-cells", "1500", "--out", str(out)]
    train = ["train-heads", *args, "--schemes", "dense", "sparse", "--seeds", "2", "--epochs", "40"]
    assert cli.main([*train, "--symbolic-budget", "10"]) == 0
    printed = capsys.readouterr().out
    assert "| 3 | VAE | Sparse |" in printed
    runs = pd.read_csv(out / "table1_runs.csv")
    assert len(runs) == 6  # 2 seeds of Schemes 2, 3 and 4
    assert "| 4 | VAE | Symbolic | 2 | N/A |" in printed
    assert (runs["accuracy"] >= 0.85).all()  # 1,500 realistic crops, 40 epochs: 0.89-0.98
    assert {p.name for p in out.glob("*.png")} >= {"sparse_topology.png", "sparse_subnetwork_1.png"}

    assert cli.main(["search-sparsity", *args, "--trials", "2"]) == 0
    assert "Pareto front" in capsys.readouterr().out
    assert (out / "sparsity_search.sqlite3").exists()
    assert (out / "sparse_search_head.safetensors").exists()

    project = tmp_path / "project"
    shutil.copytree(labelled_project, project)
    assert cli.main(["apply-head", str(project), str(out / "sparse_head")]) == 0
    assert "agreement with the" in capsys.readouterr().out


def test_head_commands_explain_bad_input(tmp_path, capsys):
    assert cli.main(["search-sparsity", "--synthetic", "--trials", "1"]) == 2
    assert "--out FOLDER" in capsys.readouterr().err
    assert cli.main(["apply-head", str(tmp_path), str(tmp_path / "missing")]) == 2
    assert "napari-cellstate apply-head:" in capsys.readouterr().err


@pytest.mark.slow
def test_train_vae_fine_tunes_with_the_loss_weights_it_is_given(tmp_path):
    tiny = ["train-vae", "--synthetic", "--n-crops", "64", "--epochs", "1", "--batch-size", "32"]
    assert cli.main([*tiny, "--out", str(tmp_path / "first")]) == 0
    assert (
        cli.main([*tiny, "--start-from", str(tmp_path / "first"), "--beta", "2", "--out", str(tmp_path / "second")])
        == 0
    )
    card = json.loads((tmp_path / "second.json").read_text())
    assert card["hyperparameters"]["vae"]["beta"] == 2.0
    assert card["fine_tuned_from"]["hyperparameters"]["vae"]["beta"] == 6.0
    assert card["hyperparameters"]["vae"]["alpha"] == card["fine_tuned_from"]["hyperparameters"]["vae"]["alpha"]
    assert card["data"]["generator_chunk"] == 1000


def test_track_command_given_the_nucleus_diameter_finds_the_hand_checked_fly_nuclei(tmp_path):
    """The real 8-frame fly movie at an assumed 0.5 µm/px, nuclei 27 px = 13.5 µm: F1 >= 0.9 per the references."""
    from napari_cellstate.core.project import load_crop_dataset
    from napari_cellstate.core.segment import point_detection_scores

    real = Path(__file__).parent / "data" / "real"
    source_frames = [0, 7, 14, 20, 42, 49, 56, 62]  # of the full movie (README there)
    project = tmp_path / "fly"
    args = ["track", str(real / "drosophila_histone_gfp_8t.tif"), "--project", str(project), "--pixel-size", "0.5"]
    assert cli.main([*args, "--nucleus-diameter", "13.5", "--threshold", "local"]) == 0
    objects = load_crop_dataset(project).objects
    reference = pd.read_csv(real / "drosophila_reference_tracks.csv")
    apart = np.array([1000, 0])  # frames side by side, so that matches stay within a frame
    found = np.concatenate([objects.loc[objects["t"] == i, ["y", "x"]].to_numpy() + i * apart for i in range(8)])
    truth = np.concatenate(
        [reference.loc[reference["t"] == f, ["y", "x"]].to_numpy() + i * apart for i, f in enumerate(source_frames)]
    )
    assert point_detection_scores(truth, found, 13.5)["f1"] >= 0.9


def test_track_command_keeps_the_users_labels_relabelled_and_takes_the_tracking_settings(tmp_path, small_sample):
    """--labels: the saved segmentation holds every object's id; --max-move, --division-radius, --btrack-config act."""
    import shutil

    import zarr

    from napari_cellstate.core.io import save_simulation
    from napari_cellstate.core.project import Project, load_crop_dataset
    from napari_cellstate.core.track import DEFAULT_TRACKER_CONFIG

    written = save_simulation(small_sample, tmp_path / "sim")  # its labels repeat ids across frames (track ids)
    config = shutil.copy(DEFAULT_TRACKER_CONFIG, tmp_path / "my_config.json")
    base = ["track", str(written["movie"]), "--pixel-size", "0.33", "--labels", str(written["labels"])]
    settings = ["--division-radius", "12", "--btrack-config", str(config)]
    assert cli.main([*base, "--project", str(tmp_path / "p"), *settings, "--max-move", "15"]) == 0
    project = Project.open(tmp_path / "p")
    objects = load_crop_dataset(project).objects
    stored = np.asarray(zarr.open_array(str(project.segmentation_path), mode="r"))
    assert objects["object_id"].is_unique
    assert all((stored[t] == object_id).any() for t, object_id in objects[["t", "object_id"]].itertuples(index=False))
    assert set(np.unique(stored)) - {0} == set(objects["object_id"])
    # a cell may move well under a pixel between frames: the tracks break up
    assert cli.main([*base, "--project", str(tmp_path / "q"), *settings, "--max-move", "0.1"]) == 0
    still = load_crop_dataset(tmp_path / "q").objects
    assert still["track_id"].nunique() > 2 * objects["track_id"].nunique()
