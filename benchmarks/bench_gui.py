"""Does napari stay responsive while the CellState panel works? The longest GUI pause per job, in a real viewer.

A 20 ms heartbeat QTimer runs on napari's GUI thread while the panel is driven through the mission as a user
clicks it (:func:`napari_cellstate.gui._tour.run_mission`: sample, track & crop, labels from the true states,
encode, train a sparse head over 3 seeds and apply it, attack a cell), then the project is opened again; opening
the panel itself (napari imports a plugin's widgets on its GUI thread) is a row of its own. The gaps
between heartbeats are recorded per job, the layers added at its end included. The baseline is the same viewer
left idle, measured in the same run (the machine is shared), and two floors of the machine measured after the
mission: one redraw of the canvas (stepping frames) and one new small image layer. Goal: longest gap < 200 ms for
every job. ``--profile`` prints, per job, where the GUI thread's own time went (cProfile); ``--stacks`` dumps
every thread's stack whenever a heartbeat is over 200 ms late (faulthandler's watchdog) and prints per job where
napari's GUI thread was and what the other threads ran (a diagnostic: the watchdog reads running threads' frames
without the GIL, which can, rarely, crash the run).

Run under a display: xvfb-run -a -s "-screen 0 1280x800x24" python benchmarks/bench_gui.py [--small] [--stacks]
"""

from __future__ import annotations

import argparse
import cProfile
import faulthandler
import io
import os
import pstats
import tempfile
import threading
import time
from collections import Counter
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


class GuiProfile:
    """cProfile of the GUI thread, one profile per job (``--profile``): where the GUI thread's own time goes.

    A profile counts Python calls on the thread that enabled it, the GUI thread here; time the GUI thread waits
    for the GIL held by a worker shows in no call, only in the gaps.
    """

    def __init__(self, beat: Heartbeat) -> None:
        self.profiles: dict[str, cProfile.Profile] = {}
        self.current: cProfile.Profile | None = None
        next_job = beat.next_job

        def profiled_next_job(job: str) -> None:
            if self.current is not None:
                self.current.disable()
            next_job(job)
            self.current = self.profiles.setdefault(job, cProfile.Profile())
            self.current.enable()

        beat.next_job = profiled_next_job

    def report(self, top: int = 25) -> None:
        """Per job, the calls with the most cumulative time on the GUI thread."""
        if self.current is not None:
            self.current.disable()
        for job, profile in self.profiles.items():
            if job:
                print(f"\n== {job}")
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(top)
                print("\n".join(line for line in out.getvalue().splitlines() if line.strip()[:1].isdigit()))


class StallSampler:
    """Every thread's stack whenever the heartbeat is over GOAL_MS late: what held napari's GUI thread up, per job.

    Each tick re-arms :func:`faulthandler.dump_traceback_later`, whose watchdog is a C thread: it dumps the stacks
    even while a thread holds the GIL, so a stall caused by a worker (a C extension holding the GIL) shows the
    worker's frame next to the GUI thread's.
    """

    def __init__(self, beat: Heartbeat) -> None:
        self.file = tempfile.TemporaryFile("w+")  # noqa: SIM115  (open for the whole run, read by report)
        self.main = threading.main_thread().ident
        beat.timer.timeout.connect(self._arm)
        next_job = beat.next_job

        def marked_next_job(job: str) -> None:
            next_job(job)
            self.file.flush()
            os.write(self.file.fileno(), f"\n=== job {job}\n".encode())
            self._arm()

        beat.next_job = marked_next_job

    def _arm(self) -> None:
        faulthandler.dump_traceback_later(GOAL_MS / 1000, file=self.file)

    def report(self, top: int = 4) -> None:
        """Per job, the most frequent (GUI thread, other threads) places at the stalls."""
        faulthandler.cancel_dump_traceback_later()
        self.file.flush()
        self.file.seek(0)
        counts: dict[str, Counter] = {}
        job = ""
        for block in self.file.read().split("\n=== job "):
            job, _, dumps = block.partition("\n")
            for dump in dumps.split("Timeout (")[1:]:
                counts.setdefault(job, Counter())[self._where(dump)] += 1
        for job, found in counts.items():
            if job and found:
                print(f"\n== stalls in {job}: {sum(found.values())} dumps, each a heartbeat {GOAL_MS} ms late")
                for where, n in found.most_common(top):
                    print(f"{n:4d}  {where}")

    def _where(self, dump: str) -> str:
        threads = {}
        for chunk in dump.split("hread 0x")[1:]:
            ident = int(chunk[:16], 16)
            frames = [line.strip() for line in chunk.splitlines()[1:] if line.strip().startswith("File ")]
            threads[ident] = frames
        gui = _short(threads.pop(self.main, []), 2)
        others = " | ".join(_short(frames, 1) for frames in threads.values() if frames)
        return f"GUI: {gui}  ||  others: {others}"


def _short(frames: list[str], depth: int) -> str:
    """The innermost ``depth`` frames and the innermost one of this package, as file:line function."""

    def name(line: str) -> str:
        path, _, rest = line.removeprefix('File "').partition('", line ')
        return f"{Path(path).parent.name}/{Path(path).name}:{rest.replace(' in ', ' ')}"

    ours = next((f for f in frames[depth:] if "napari_cellstate" in f), None)
    return " < ".join(name(f) for f in [*frames[:depth], *([ours] if ours else [])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 256x256, 24-frame sample (about 2 min in all)")
    parser.add_argument("--profile", action="store_true", help="profile the GUI thread, per job (slows it down)")
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
    profile = GuiProfile(beat) if args.profile else None
    stalls = StallSampler(beat) if args.stacks else None
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
    # Floors of this machine, for comparison: one redraw of the canvas holding the project's layers, and one new
    # small image layer (napari builds its visual and list entry on the GUI thread, whoever adds it).
    beat.next_job("floor: step 5 frames")
    for t in range(5):
        viewer.dims.set_point(0, t)
        deadline = time.perf_counter() + 0.3
        wait_for(lambda deadline=deadline: time.perf_counter() > deadline)
    beat.next_job("floor: add a 64x64 image")
    viewer.add_image(np.zeros((64, 64), np.float32), name="floor")
    deadline = time.perf_counter() + 1.0
    wait_for(lambda: time.perf_counter() > deadline)
    beat.next_job("")

    baseline = max(beat.gaps["idle viewer (baseline)"])
    new_layer = max(beat.gaps["floor: add a 64x64 image"])  # what napari itself takes to show one more layer
    print(
        f"{'job':28s} {'wall s':>7s} {'longest gap ms':>15s} {'gaps > 200 ms':>14s} {'vs idle':>8s} "
        f"{'vs new layer':>13s}"
    )
    for job, wall in beat.wall.items():
        gaps = np.asarray(beat.gaps.get(job) or [0.0])
        print(
            f"{job:28s} {wall:7.1f} {gaps.max() * 1000:15.0f} {int((gaps > GOAL_MS / 1000).sum()):14d} "
            f"{gaps.max() / baseline:7.1f}x {gaps.max() / new_layer:12.1f}x"
        )
    if profile is not None:
        profile.report()
    if stalls is not None:
        stalls.report()
    viewer.close()


if __name__ == "__main__":
    main()
