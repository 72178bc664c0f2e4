"""Opening the CellState panel imports nothing heavy on napari's GUI thread: torch and the rest load in workers."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

#: Imported by the workers that need them, never by the widget modules napari loads on its GUI thread.
HEAVY = ("torch", "sklearn", "matplotlib", "pyoperon", "btrack", "safetensors", "sympy", "optuna", "captum")

PROGRAM = """
import json, sys
from napari.components import ViewerModel
from qtpy.QtWidgets import QApplication

from napari_cellstate.gui._panel import CellStatePanel

app = QApplication.instance() or QApplication([])
panel = CellStatePanel(ViewerModel())
assert panel.jobs.worker is None
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_opening_the_panel_imports_no_heavy_library():
    """A fresh interpreter builds the panel (on a viewer model: the window is not what is tested)."""
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "napari_cellstate" in loaded
    assert not loaded & set(HEAVY), f"the panel's modules import {sorted(loaded & set(HEAVY))} on the GUI thread"
