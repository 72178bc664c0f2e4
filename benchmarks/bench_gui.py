"""Does napari stay responsive while the CellState panel works? The longest GUI pause per job, in a real viewer.

A 20 ms heartbeat QTimer runs on napari's GUI thread while the panel is driven through the mission as a user
clicks it (:func:`napari_cellstate.gui._tour.run_mission`: sample, track & crop, labels from the true states,
encode, train a sparse head over 3 seeds and apply it, attack a cell), then the project is opened again. The gaps
between heartbeats are recorded per job, the layers added at its end included. The baseline is the same viewer
left idle, measured in the same run (the machine is shared). Goal: longest gap < 200 ms for every job.

Run under a display: xvfb-run -a -s "-screen 0 1280x800x24" python benchmarks/bench_gui.py [--small]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

HEARTBEAT_MS = 20
GOAL_MS = 200
IDLE_S = 3.0


class Heartbeat:
    """Records the gaps between the ticks of a 20 ms QTimer, per named job, and each job's wall time."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.gaps: dict[str, list[float]] = {}
        self.wall: dict[str, float] = {}
        self.job, self.began = "", time.perf_counter()
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.setdefault(self.job, []).append(now - self.last)
        self.last = now

    def next_job(self, job: str) -> None:
        """Close the current job (its wall time, and the gap since its last tick) and start counting for ``job``.

        Work the GUI thread does synchronously when a job starts (a button's own code) thus counts for that job.
        """
        now = time.perf_counter()
        if self.job:
            self.wall[self.job] = now - self.began
            self.gaps.setdefault(self.job, []).append(now - self.last)
        self.job, self.began, self.last = job, now, now


class StallSampler:
    """While the GUI thread misses its heartbeat by more than ``after_ms``, sample the stacks (``--stacks``).

    Each stalled sample counts for every call on the GUI thread's stack (a profiler's inclusive time) and for the
    innermost frame of each other thread in Python (a worker competing for the GIL). Stalls the sampler could not
    sample (C code holding the GIL) show as the gap between the job's stalled time and its samples.
    """

    def __init__(self, beat: Heartbeat, after_ms: float = 150, every_ms: float = 10) -> None:
        self.beat, self.after, self.every = beat, after_ms / 1000, every_ms / 1000
        self.main = threading.main_thread().ident
        self.samples: dict[str, collections.Counter] = {}
        self.stalled: dict[str, int] = {}
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self.stop.wait(self.every):
            if time.perf_counter() - self.beat.last < self.after:
                continue
            calls = set()
            for ident, frame in sys._current_frames().items():
                stack = traceback.extract_stack(frame)
                if ident == self.main:
                    calls |= {f"gui {_where(f)}" for f in stack}
                elif ident != me and stack:
                    calls.add(f"other thread at {_where(stack[-1])}")
            self.samples.setdefault(self.beat.job, collections.Counter()).update(calls)
            self.stalled[self.beat.job] = self.stalled.get(self.beat.job, 0) + 1

    def report(self, top: int = 40) -> None:
        """Per job, the calls in most stalled samples."""
        self.stop.set()
        for job, counter in self.samples.items():
            print(f"\n== {job}: {self.stalled[job] * self.every * 1000:.0f} ms stalled (sampled)")
            for where, n in counter.most_common(top):
                print(f"  {n * self.every * 1000:6.0f} ms  {where}")


def _where(frame: traceback.FrameSummary) -> str:
    return f"{frame.filename.split('site-packages/')[-1].split('src/')[-1]}:{frame.lineno} {frame.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 256x256, 24-frame sample (about 2 min in all)")
    parser.add_argument("--stacks", action="store_true", help="sample the GUI thread's stack during long gaps")
    args = parser.parse_args()

    import napari

    from napari_cellstate.core.config import SimulationConfig
    from napari_cellstate.gui._tour import MISSION_STEPS, run_mission, wait_for

    cfg = SimulationConfig(shape_yx=(256, 256), n_frames=24, n_cells=20, n_divisions=6, seed=3) if args.small else None
    folder = Path(tempfile.mkdtemp()) / "project"
    viewer = napari.Viewer()
    viewer.window.resize(1280, 800)
    beat = Heartbeat()
    sampler = StallSampler(beat) if args.stacks else None
    beat.next_job("idle viewer (baseline)")
    deadline = time.perf_counter() + IDLE_S
    wait_for(lambda: time.perf_counter() > deadline)

    beat.next_job("open the panel")
    from napari_cellstate.gui._panel import CellStatePanel

    panel = CellStatePanel(viewer)
    viewer.window.add_dock_widget(panel, name="CellState")
    wait_for(lambda: True)
    jobs = iter(MISSION_STEPS[1:])
    beat.next_job(MISSION_STEPS[0])
    run_mission(viewer, folder, sample=cfg, seeds=3, panel=panel, after=lambda step, _p: beat.next_job(next(jobs, "")))
    beat.next_job("reopen the project")
    panel.open_project()
    wait_for(lambda: panel.jobs.worker is None)
    beat.next_job("")

    baseline = max(beat.gaps["idle viewer (baseline)"])
    print(f"{'job':28s} {'wall s':>7s} {'longest gap ms':>15s} {'gaps > 200 ms':>14s} {'vs idle':>8s}")
    for job, wall in beat.wall.items():
        gaps = np.asarray(beat.gaps.get(job) or [0.0])
        print(
            f"{job:28s} {wall:7.1f} {gaps.max() * 1000:15.0f} {int((gaps > GOAL_MS / 1000).sum()):14d} "
            f"{gaps.max() / baseline:7.1f}x"
        )
    if sampler is not None:
        sampler.report()
    viewer.close()


if __name__ == "__main__":
    main()
