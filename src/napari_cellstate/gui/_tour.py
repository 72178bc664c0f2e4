"""The mission through the CellState panel, as a user clicks it: for the GUI test, benchmark and screenshots.

Sample → project → Track & crop → labels from the true states → encode → a sparse head trained, saved and
applied to every cell → one metaphase cell attacked, its perturbation map over it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from ._layers import CELLS_LAYER

__all__ = ["MISSION_STEPS", "run_mission", "wait_for"]

MISSION_STEPS = ("sample", "track", "label", "latents", "heads", "attacks")


def wait_for(done: Callable[[], bool], timeout_s: float = 900) -> None:
    """Run napari's event loop until ``done()`` (the GUI keeps drawing meanwhile)."""
    from qtpy.QtCore import QEventLoop
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    start = time.perf_counter()
    while not done():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
        time.sleep(0.002)
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"still running after {timeout_s} s")
    app.processEvents()


def _finish(run_panel) -> None:
    wait_for(lambda: run_panel.worker is None)
    if run_panel.last_error is not None:
        raise RuntimeError(run_panel.status.text())


def run_mission(
    viewer,
    folder: os.PathLike | str,
    *,
    sample=None,
    seeds: int = 1,
    epochs: int | None = None,
    after: Callable[[str, object], None] | None = None,
    panel=None,
):
    """Drive a CellState panel (added to ``viewer``) through the mission; returns the panel.

    Parameters
    ----------
    sample : SimulationConfig, optional
        The sample to simulate (default: the standard one).
    seeds, epochs : int
        Training of the sparse head (default epochs: the scheme's own).
    after : callable, optional
        ``after(step, panel)`` after each of :data:`MISSION_STEPS` (e.g. to take a screenshot).
    panel : CellStatePanel, optional
        A panel already docked in ``viewer`` (default: a new one).
    """
    after = after or (lambda _step, _panel: None)
    if panel is None:
        from ._panel import CellStatePanel

        panel = CellStatePanel(viewer)
        viewer.window.add_dock_widget(panel, name="CellState")
    panel.open_sample(sample)
    _finish(panel.jobs)
    after("sample", panel)

    panel.project.value = folder
    track = panel.step("track")
    track.labels.value = "true nuclei"  # the simulator's nuclei: no segmentation needed
    track.run()
    _finish(track.panel)
    after("track", panel)

    panel.show_step("label")
    panel.step("label").import_truth("true states", confirm=lambda n: True)
    after("label", panel)

    panel.show_step("latents")
    latents = panel.step("latents")
    latents.encode()
    _finish(latents.panel)
    cells = viewer.layers[CELLS_LAYER]
    frame = int(np.median(cells.features["t"]))
    here = np.flatnonzero(cells.features["t"].to_numpy() == frame)
    viewer.dims.set_point(0, frame)
    cells.selected_data = {int(here[0])}
    wait_for(lambda: not latents.busy)
    after("latents", panel)

    panel.show_step("heads")
    heads = panel.step("heads")
    for scheme, box in heads.schemes.items():
        box.value = scheme.value == "sparse"
    heads.seeds.value = seeds
    heads.epochs.setValue(epochs or 0)
    heads.train()
    _finish(heads.panel)
    wait_for(lambda: heads.figure_worker is None)
    heads.apply()
    _finish(heads.apply_panel)
    after("heads", panel)

    panel.show_step("attacks")
    attacks = panel.step("attacks")
    metaphase = np.flatnonzero(cells.features["head_class"].astype(str).to_numpy() == "metaphase")
    target = int(metaphase[len(metaphase) // 2])
    viewer.dims.set_point(0, float(cells.data[target, 0]))
    cells.selected_data = {target}
    attacks.refresh()
    wait_for(lambda: not attacks.lister.busy)
    attacks.run_attack()
    _finish(attacks.attack_panel)
    wait_for(lambda: not latents.busy)
    after("attacks", panel)
    return panel
