import subprocess
import sys

import pytest

from napari_cellstate import cli
from napari_cellstate.core import doctor, track


def test_btrack_check_tells_the_truth():
    lib = track.btrack_library_path()
    probe = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(lib)!r})"], capture_output=True)
    assert doctor.check_btrack().ok is (probe.returncode == 0)


def test_julia_is_reported_absent_when_not_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("PYTHON_JULIAPKG_EXE", raising=False)
    check = doctor.check_julia()
    assert check.ok is None
    assert "pyoperon" in check.detail


def test_torch_check_names_version_and_device():
    import torch

    check = doctor.check_torch()
    assert check.ok
    assert torch.__version__ in check.detail
    assert "device" in check.detail


def test_opengl_check_reports_a_canvas_under_a_display(monkeypatch):
    import os

    if not os.environ.get("DISPLAY"):
        pytest.skip("no display: GUI checks run under Xvfb")
    check = doctor.check_opengl()
    assert check.ok, check.detail
    assert "canvas made" in check.detail


def test_opengl_check_says_headless_is_not_a_failure(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    check = doctor.check_opengl()
    assert check.ok is None  # not applicable, not a failure
    assert "Xvfb" in check.detail
    assert check.line().startswith("[n/a ] OpenGL: no display")


def test_opengl_check_fails_clearly_when_a_display_gives_no_canvas(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":12345")  # a display that is not there
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    check = doctor.check_opengl()
    assert check.ok is False
    assert "Xvfb" in check.detail


def test_opengl_check_without_qt_names_the_extra(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith(("PyQt", "PySide")) else real_find_spec(name, *a),
    )
    check = doctor.check_opengl()
    assert check.ok is None
    assert "napari-cellstate[pyqt6]" in check.detail


def test_doctor_prints_one_line_per_check(capsys):
    code = cli.main(["doctor"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("]")[1].split(":")[0].strip() for line in lines] == ["btrack", "OpenGL", "torch", "Julia (PySR)"]
    assert code == (0 if doctor.check_btrack().ok else 1)


def test_fix_without_compiler_says_what_to_install(monkeypatch):
    monkeypatch.setattr(doctor, "check_btrack_library", lambda: (False, "does not load"))
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(doctor.BtrackFixError, match="apt-get install g\\+\\+"):
        doctor.fix_btrack(log=lambda _: None)


def test_fix_rejects_an_archive_that_is_not_btrack(monkeypatch, tmp_path):
    import tarfile

    bogus = tmp_path / "bogus.tar.gz"
    (tmp_path / "readme.txt").write_text("not btrack")
    with tarfile.open(bogus, "w:gz") as archive:
        archive.add(tmp_path / "readme.txt", arcname="readme.txt")
    monkeypatch.setattr(doctor, "check_btrack_library", lambda: (False, "does not load"))
    with pytest.raises(doctor.BtrackFixError, match="not a btrack source distribution"):
        doctor.fix_btrack(sdist=bogus, eigen_dir=tmp_path, log=lambda _: None)


def test_fix_is_a_no_op_when_the_library_loads(monkeypatch):
    monkeypatch.setattr(doctor, "check_btrack_library", lambda: (True, "loads"))
    messages = []
    assert doctor.fix_btrack(log=messages.append) == track.btrack_library_path()
    assert "nothing to do" in messages[0]
