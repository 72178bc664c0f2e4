"""One writer at a time: an advisory lock on the project folder.

The lock is ``fcntl.flock`` on ``<project>/.lock``; the kernel releases it when
the holder dies, so a lock is never left behind by a crash. The file records
who holds it (command, pid, host, since) so that a refused writer can say who
is busy, and so that the next writer can tell that the previous one died
without finishing (its record is still there) and clean up after it.
Within one process the lock is re-entrant for the thread that holds it and
refused to other threads (the GUI's workers).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .folder import ProjectError, now

__all__ = ["ProjectBusyError", "project_lock"]

LOCK_FILE = ".lock"


class ProjectBusyError(ProjectError):
    """Another command is writing the project."""


@dataclass
class _Held:
    fd: int
    thread: int
    depth: int
    previous_holder: dict | None


_held: dict[Path, _Held] = {}
_registry = threading.Lock()


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    return (
        f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since "
        f"{holder.get('since', '?')})"
    )


def _read_holder(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        holder = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


@contextmanager
def project_lock(folder: os.PathLike | str, command: str) -> Iterator[dict | None]:
    """Hold the project's writer lock while the block runs.

    Yields the record of a previous holder that died without releasing it
    (None if the last writer finished), so the caller can clean up after it.

    Raises
    ------
    ProjectBusyError
        Another process (or another thread of this one) writes the project; the message names it.
    """
    import fcntl

    folder = Path(folder).absolute()
    me = threading.get_ident()
    with _registry:
        held = _held.get(folder)
        if held is not None:
            if held.thread != me:
                raise ProjectBusyError(
                    f"The project {folder} is being written by another task of this session: wait for it to "
                    "finish (or cancel it), then try again."
                )
            held.depth += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield None
        finally:
            with _registry:
                held.depth -= 1
        return

    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise ProjectBusyError(
            f"The project {folder} is being written by {_describe(holder)}: wait for it to finish, or stop it, "
            "then try again. Only one command may write a project at a time."
        ) from None
    previous = _read_holder(fd)
    record = {"command": command, "pid": os.getpid(), "host": socket.gethostname(), "since": now()}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(record).encode("utf-8"))
    with _registry:
        _held[folder] = _Held(fd, me, 1, previous)
    try:
        yield previous
    finally:
        with _registry:
            del _held[folder]
        os.ftruncate(fd, 0)  # an empty record: the writer finished
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
