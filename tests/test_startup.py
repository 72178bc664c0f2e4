import subprocess
import sys

import pytest


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}; import sys; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.slow
def test_core_runs_headless_without_qt_napari_or_heavy_engines():
    loaded = _modules_after(
        "import napari_cellstate.core.simulate, napari_cellstate.core.track, "
        "napari_cellstate.core.doctor, napari_cellstate.core.io, napari_cellstate.core.preview, "
        "napari_cellstate.core.crops, napari_cellstate.core.project, napari_cellstate.core.segment, "
        "napari_cellstate.core.pipeline, napari_cellstate.core.labelling, napari_cellstate.core.track_metrics"
    )
    assert not loaded & {"napari", "qtpy", "PyQt6", "PyQt5", "magicgui", "pysr", "juliacall", "btrack", "torch"}


def test_cli_start_up_imports_nothing_heavy():
    loaded = _modules_after("import napari_cellstate.cli, napari_cellstate")
    assert not loaded & {"napari", "qtpy", "pysr", "juliacall", "torch", "btrack", "pandas"}


@pytest.mark.slow
def test_package_exposes_api_lazily():
    loaded = _modules_after("import napari_cellstate as nc; assert callable(nc.simulate_movie)")
    assert "napari" not in loaded
