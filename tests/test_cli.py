import json

import pandas as pd
import tifffile

from napari_cellstate import cli


def test_demo_writes_movie_truth_and_preview(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "metaphase" in printed
    movie = tifffile.imread(out / "movie.tif")
    labels = tifffile.imread(out / "labels.tif")
    assert movie.shape == labels.shape == (60, 512, 512)
    truth = pd.read_csv(out / "ground_truth.csv")
    assert (truth["state"] == "metaphase").sum() >= 40
    assert set(truth["track_id"]) == set(pd.unique(labels[labels > 0]))
    assert json.loads((out / "simulation.json").read_text())["seed"] == 0
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
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
