"""Run a core ``iter_*`` generator off the GUI thread with progress, Cancel and clear errors."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..core.progress import Progress


def _cancellable(
    steps: Callable[..., Generator[Progress, None, Any]], args: tuple, kwargs: dict, cancelled: threading.Event
) -> Generator[Progress, None, Any]:
    """Run ``steps``; stop after the next event once ``cancelled`` is set, closing it in this (worker) thread.

    Closing the core's generator runs its clean-up (a half-written run is removed, the project lock released)
    before the worker ends, so a cancelled step leaves nothing behind.
    """
    with _leave_a_core_to_the_gui():
        return (yield from _run(steps(*args, **kwargs), cancelled))


def _run(gen: Generator[Progress, None, Any], cancelled: threading.Event) -> Generator[Progress, None, Any]:
    try:
        while not cancelled.is_set():
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            _limit_torch()  # once the step has imported torch
            yield event
        return None
    finally:
        gen.close()


PROGRESS_MS = 100  # progress shown at most ten times a second
PIECE_PAUSE_MS = 30  # between two pieces of GUI work (see run_in_pieces)

#: While jobs run, a thread holding the GIL hands it over after this long (Python's default: 5 ms). Every call
#: from Qt into Python (an event filter, a paint) waits for the GIL; behind a busy worker that wait is the switch
#: interval, so a redraw making a few hundred such calls took seconds.
JOB_SWITCH_INTERVAL_S = 0.0005

_job_settings = {"jobs": 0, "threads": 0, "switch": 0.005}  # jobs running; torch threads (0: untouched), switch
_job_settings_lock = threading.Lock()


@contextlib.contextmanager
def _leave_a_core_to_the_gui():
    """While jobs run, napari keeps a core to draw and gets the GIL quickly.

    The GIL changes hands more often (:data:`JOB_SWITCH_INTERVAL_S`), and torch, once a job has imported it (see
    :func:`_limit_torch`), uses one thread fewer than the machine has. A job that needs no torch never imports it:
    loading torch's libraries holds the GIL for a few hundred milliseconds, a pause napari would show.
    """
    with _job_settings_lock:
        _job_settings["jobs"] += 1
        if _job_settings["jobs"] == 1:
            _job_settings["switch"] = sys.getswitchinterval()
            sys.setswitchinterval(min(JOB_SWITCH_INTERVAL_S, _job_settings["switch"]))
    _limit_torch()
    try:
        yield
    finally:
        with _job_settings_lock:
            _job_settings["jobs"] -= 1
            if _job_settings["jobs"] == 0:
                sys.setswitchinterval(_job_settings["switch"])
                if _job_settings["threads"]:
                    sys.modules["torch"].set_num_threads(_job_settings["threads"])
                    _job_settings["threads"] = 0


def _limit_torch() -> None:
    """While jobs run, torch (if imported) uses one thread fewer than the machine has; restored after the last."""
    torch = sys.modules.get("torch")
    if torch is None or _job_settings["threads"] or not hasattr(torch, "set_num_threads"):
        return
    with _job_settings_lock:
        if _job_settings["jobs"] and not _job_settings["threads"]:
            _job_settings["threads"] = torch.get_num_threads()
            torch.set_num_threads(max(1, min(_job_settings["threads"], (os.cpu_count() or 2) - 1)))


class RunPanel(QWidget):
    """Run and Cancel buttons, a progress bar and a status line for one long step.

    ``start`` runs the generator in a napari worker thread; the GUI never waits on it.
    """

    def __init__(self, run_text: str = "Run", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.worker: GeneratorWorker | None = None
        self.last_error: Exception | None = None
        self._cancelled = threading.Event()
        self._gui_work: Generator | None = None  # an ``on_done`` generator's pieces still to run
        self._worker_done = False
        self._latest: Progress | None = None  # shown at most every PROGRESS_MS: each redraw relays out the dock
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_MS)
        self._progress_timer.timeout.connect(self._render_progress)

    def start(
        self,
        steps: Callable[..., Generator[Progress, None, Any]],
        on_done: Callable[[Any], None],
        *args: Any,
        **kwargs: Any,
    ) -> GeneratorWorker:
        """Run ``steps(*args, **kwargs)`` in a worker; call ``on_done(result)`` on the GUI thread.

        ``on_done`` may be a generator function: its GUI work (adding layers, say) then runs in pieces, one piece
        (up to its next ``yield``) per turn of Qt's event loop, so napari keeps drawing between them. The job counts
        as running (``worker`` is set) until the last piece has run.
        """
        self.last_error = None
        self._cancelled = cancelled = threading.Event()
        self._worker_done = False
        worker = create_worker(  # errors are shown below
            _cancellable, steps, args, kwargs, cancelled, _start_thread=False, _ignore_errors=True
        )
        worker.yielded.connect(self._show_progress)
        worker.returned.connect(lambda result: None if cancelled.is_set() else self._run_on_gui(on_done(result)))
        worker.errored.connect(self._show_error)
        worker.finished.connect(self._worker_finished)
        self.cancel_button.clicked.connect(self.cancel)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setStyleSheet("")
        self.status.setText("starting ...")
        self.worker = worker
        worker.start()
        return worker

    def _show_progress(self, event: Progress) -> None:
        self._latest = event
        if not self._progress_timer.isActive():
            self._progress_timer.start()

    def _render_progress(self) -> None:
        event, self._latest = self._latest, None
        if event is not None:
            self.progress.setRange(0, max(event.total, 1))
            self.progress.setValue(event.step)
            self.status.setText(event.message)

    def _drop_progress(self) -> None:
        self._progress_timer.stop()
        self._latest = None

    def _show_error(self, error: Exception) -> None:
        self.last_error = error
        self.fail(str(error))

    def fail(self, message: str) -> None:
        """Say what went wrong and how to fix it: in the status line and as a napari notification."""
        self._drop_progress()
        self.status.setStyleSheet("color: #ff6b6b")
        self.status.setText(message)
        show_error(message)

    def done(self, message: str) -> None:
        """Say what a finished job made: in the status line and as a napari notification."""
        self._drop_progress()
        self.status.setStyleSheet("")
        self.status.setText(message)
        show_info(message)

    def _run_on_gui(self, pieces: Any) -> None:
        if inspect.isgenerator(pieces):
            self._gui_work = pieces
            run_in_pieces(pieces, self._gui_work_done)

    def _gui_work_done(self, error: Exception | None) -> None:
        self._gui_work = None
        if error is not None:
            self._show_error(error)
        if self._worker_done:
            self._finished()

    def _worker_finished(self) -> None:
        self._worker_done = True
        if self._gui_work is None:
            self._finished()

    def _finished(self) -> None:
        self._drop_progress()
        if self._cancelled.is_set() and self.last_error is None:
            self.status.setText("cancelled")
            show_info("cancelled")
        with contextlib.suppress(TypeError, RuntimeError):  # nothing connected
            self.cancel_button.clicked.disconnect()
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None

    def cancel(self) -> None:
        """Ask the running step to stop at its next progress event (it cleans up in its own thread)."""
        if self._gui_work is not None:
            self._gui_work.close()  # its next piece ends it
        if self.worker is not None:
            self._cancelled.set()
            self.status.setText("cancelling ...")


def run_in_pieces(pieces: Generator, then: Callable[[Exception | None], None]) -> None:
    """Run a generator's GUI work one piece (up to its next ``yield``) per turn of Qt's event loop; then ``then``.

    napari draws, runs its timers and handles input between the pieces. ``then(error)`` gets the exception a piece
    raised, or None.
    """
    try:
        next(pieces)
    except StopIteration:
        then(None)
    except Exception as error:  # handed on, like a worker's error
        then(error)
    else:  # after a pause, so a redraw and napari's own timers come before the next piece, not with it
        QTimer.singleShot(PIECE_PAUSE_MS, lambda: run_in_pieces(pieces, then))


class LatestCall:
    """A quick computation for an interactive view (a slider, a selection) in a worker, the newest request winning.

    One runs at a time; a request made meanwhile replaces any waiting one, and the result of a request that has
    been overtaken is dropped, so the view follows the user without a queue of stale pictures and the GUI thread
    only shows the result.
    """

    def __init__(self) -> None:
        self.worker = None
        self._waiting: tuple | None = None
        self._pieces: Generator | None = None  # the GUI work of an ``on_done`` generator, still running

    @property
    def busy(self) -> bool:
        """Whether a request is running or waiting, or its result still being shown."""
        return self.worker is not None or self._waiting is not None or self._pieces is not None

    def submit(self, function: Callable[..., Any], on_done: Callable[[Any], None], *args: Any) -> None:
        """Run ``function(*args)`` in a worker, then ``on_done(result)`` on the GUI thread unless overtaken.

        As with :meth:`RunPanel.start`, ``on_done`` may be a generator function, run in pieces.
        """
        self._waiting = (function, on_done, args)
        self._next()

    def _next(self) -> None:
        if self.worker is None and self._pieces is None and self._waiting is not None:
            self._start()

    def _start(self) -> None:
        function, on_done, args = self._waiting
        self._waiting = None
        worker = create_worker(_with_a_core_left, function, args, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result: None if self._waiting else self._show(on_done(result)))
        worker.errored.connect(lambda error: show_error(str(error)))
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()

    def _show(self, pieces: Any) -> None:
        if inspect.isgenerator(pieces):
            self._pieces = pieces
            run_in_pieces(pieces, self._shown)

    def _shown(self, error: Exception | None) -> None:
        self._pieces = None
        if error is not None:
            show_error(str(error))
        self._next()

    def _finished(self) -> None:
        self.worker = None
        self._next()


def _with_a_core_left(function: Callable[..., Any], args: tuple) -> Any:
    with _leave_a_core_to_the_gui():
        return function(*args)
