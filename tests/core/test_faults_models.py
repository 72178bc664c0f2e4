"""Fault injection: damaged model files, hostile inputs and kill -9 during saves keep the invariant.

The cases are those of ``benchmarks/faults_models.py`` (one list, run by both): after each, either the old complete
model or the new complete model is on disk, and every read returned correct data or refused with a clear message.
The CLI turns each bad input into one line on stderr and exit code 2, never a traceback.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellstate import cli

_SPEC = importlib.util.spec_from_file_location(
    "faults_models", Path(__file__).parents[2] / "benchmarks" / "faults_models.py"
)
faults = importlib.util.module_from_spec(_SPEC)
sys.modules["faults_models"] = faults
_SPEC.loader.exec_module(faults)


@pytest.mark.parametrize(("name", "case"), faults.CASES, ids=[name for name, _ in faults.CASES])
def test_fault_keeps_the_invariant(tmp_path, name, case):
    assert case(tmp_path) in faults.GOOD


@pytest.mark.slow
@pytest.mark.parametrize(("name", "case"), faults.KILL_CASES, ids=[name for name, _ in faults.KILL_CASES])
def test_kill_9_while_saving_leaves_the_old_or_the_new_model(tmp_path, name, case):
    assert case(tmp_path) is faults.Outcome.CORRECT


def test_the_cases_tell_a_silent_wrong_result_from_a_refusal():
    assert faults.refused(lambda: 1) is faults.Outcome.SILENT_WRONG
    assert faults.refused(lambda: int("x"), "invalid literal") is faults.Outcome.CLEAR_REFUSAL
    assert faults.refused(lambda: int("x"), "something else") is faults.Outcome.UNCLEAR_ERROR
    assert faults.refused(lambda: [][1]) is faults.Outcome.UNCLEAR_ERROR


# --- the command line ----------------------------------------------------------------------------------------------


def _movie_tif(folder, shape=(4, 64, 64)):
    path = folder / "movie.tif"
    tifffile.imwrite(
        path, np.random.default_rng(0).poisson(100, size=shape).astype(np.uint16), photometric="minisblack"
    )
    return path


def _bad_inputs(tmp_path):
    """(arguments, what the one-line message must say) for each bad input."""
    movie = _movie_tif(tmp_path)
    cut = tmp_path / "cut.tif"
    tifffile.imwrite(cut, np.ones((6, 64, 64), np.uint16), imagej=True, metadata={"axes": "TYX"})
    cut.write_bytes(cut.read_bytes()[:9000])
    float_labels = tmp_path / "labels.tif"
    tifffile.imwrite(float_labels, np.full((4, 64, 64), np.nan, np.float32), photometric="minisblack")
    head = tmp_path / "head.safetensors"
    head.write_bytes(b"\x00" * 12)
    project = tmp_path / "p"
    track = ["track", "--project", str(project), "--pixel-size", "0.33"]
    return [
        ([*track, str(movie), "--crop-size", "4096"], "size_px: Input should be less than or equal to 1024"),
        ([*track, str(movie), "--crop-size", "128"], "larger than its 64 x 64 px frames"),
        ([*track, str(movie), "--max-project"], "needs a (T, Z, Y, X) movie with 4 axes"),
        ([*track, str(cut)], "truncated or damaged"),
        ([*track, str(movie), "--labels", str(float_labels)], "label image contains NaN"),
        ([*track, str(tmp_path / "missing.tif")], "does not exist"),
        (["apply-head", str(project), str(head)], "not a readable safetensors file"),
        (["encode", str(project), "--vae", str(head)], "not a readable safetensors file"),
        (["simulate", "--out", str(tmp_path / "s"), "--frames", "1"], "n_frames: Input should be greater than"),
    ]


def test_every_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    for args, message in _bad_inputs(tmp_path):
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "p").exists()  # nothing written half-way


def test_debug_shows_the_traceback_and_unexpected_errors_say_so(tmp_path, capsys, monkeypatch):
    args = ["track", str(_movie_tif(tmp_path)), "--project", str(tmp_path / "p"), "--pixel-size", "0.33"]
    assert cli.main([*args, "--crop-size", "128", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err

    def broken(*_args, **_kwargs):
        raise KeyError("z")

    monkeypatch.setattr("napari_cellstate.core.movie.check_movie", broken)
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("Run again with --debug for the full traceback, and report it.")
    assert "unexpected error (KeyError)" in err
    assert len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tif", "zarr"])
def test_max_project_works_from_the_cli(tmp_path, small_sample, capsys, kind):
    import zarr

    from napari_cellstate.core.project import load_crop_dataset

    movie = small_sample.movie[:6]
    stack = np.stack([movie // 2, movie, movie // 3], axis=1)  # (T, Z, Y, X): the max is the movie itself
    if kind == "tif":
        path = tmp_path / "stack.tif"
        tifffile.imwrite(path, stack, photometric="minisblack")
    else:
        path = tmp_path / "stack.zarr"
        zarr.create_array(str(path), shape=stack.shape, chunks=(1, 1, *stack.shape[2:]), dtype=stack.dtype)[:] = stack
    project = tmp_path / "project"
    args = ["track", str(path), "--project", str(project), "--pixel-size", "0.33", "--max-project"]
    assert cli.main(args) == 0, capsys.readouterr().err
    assert "tracks" in capsys.readouterr().out
    assert len(load_crop_dataset(project).objects) > 50


@pytest.mark.slow
def test_a_single_frame_movie_is_reported_as_nothing_to_track(tmp_path, small_sample, capsys):
    from napari_cellstate.core.project import load_crop_dataset

    path = tmp_path / "one.tif"
    tifffile.imwrite(path, small_sample.movie[:1])
    assert cli.main(["track", str(path), "--project", str(tmp_path / "p"), "--pixel-size", "0.33"]) == 0
    assert "in 1 frame: nothing to track (each cell is a single-frame object)" in capsys.readouterr().out
    objects = load_crop_dataset(tmp_path / "p").objects
    assert objects["track_id"].min() >= 1
    assert objects["track_id"].is_unique
