"""One transaction per run: a run's outputs are staged together and made live with one rename.

A run (track, import, append) writes its segmentation, crops and objects table
into ``<project>/.staging-<id>/``. On success the folder is renamed to
``runs/<id>`` and ``project.json`` is rewritten to name it (the commit point,
itself an atomic rename); then the previous run is deleted. A crash before the
commit leaves the previous run live and a staging folder that the next writer
removes; a crash after it leaves the new run live and the old one to remove.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..io import write_json_atomic
from .folder import PROJECT_FILE, PROJECT_VERSION, RUNS, Project, ProjectError, as_project, now, package_version
from .lock import project_lock

__all__ = ["StagedRun", "clean_leftovers", "commit_run", "derived_data", "new_run"]

STAGING_PREFIX = ".staging-"


@dataclass
class StagedRun:
    """A run being written: put its files in ``path``; they go live together when the block ends."""

    path: Path
    run_id: str
    previous: Project
    cleaned: list[str] = field(default_factory=list)


def clean_leftovers(project: Project) -> list[str]:
    """Remove what interrupted writers left (staging folders, runs that never went live, temporary files).

    Call only while holding the project's lock. Returns the names removed.
    """
    removed = []
    live = project.run_id
    for item in project.path.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(item, ignore_errors=True)
        removed.append(item.name)
    runs = project.path / RUNS
    if runs.is_dir():
        for item in runs.iterdir():
            if item.name != live:
                shutil.rmtree(item, ignore_errors=True)
                removed.append(f"{RUNS}/{item.name}")
    for legacy in ("crops.zarr", "segmentation.zarr"):  # left by a migration from version 1 that was cut short
        if (project.path / legacy).exists():
            shutil.rmtree(project.path / legacy, ignore_errors=True)
            removed.append(legacy)
    for item in project.path.glob(".*.zarr.*-*"):
        shutil.rmtree(item, ignore_errors=True)
        removed.append(item.name)
    folders = [project.path, *([project.run_path, project.run_path / "columns"] if project.run_path else [])]
    for folder in folders:
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            tmp.unlink(missing_ok=True)
            removed.append(str(tmp.relative_to(project.path)))
    return removed


def derived_data(project: Project) -> list[str]:
    """What a new run would leave behind: column groups of the live run, and the user's labels."""
    held = []
    if project.run_path is not None:
        columns = project.run_path / "columns"
        if columns.is_dir():
            held += sorted(p.stem for p in columns.glob("*.parquet"))
    if project.labels_path.exists() and project.labels_path.stat().st_size > 0:
        held.append("labels")
    return held


@contextmanager
def new_run(project: Project | os.PathLike | str, command: str, *, replace: bool = False) -> Iterator[StagedRun]:
    """Stage a new run of ``project`` and make it live when the block ends without error.

    Parameters
    ----------
    project : Project or path
    command : str
        What is writing (recorded in the lock and in ``run.json``).
    replace : bool, default=False
        Allow replacing a run whose cells carry derived columns (latents,
        predictions) or labels. Labels stay and are matched to the new cells
        by position; derived columns go with the old run.

    Raises
    ------
    ProjectError
        The live run holds derived data and ``replace`` is False.
    ProjectBusyError
        Another command writes the project.
    """
    folder = Path(project.path if isinstance(project, Project) else project).expanduser().absolute()
    with project_lock(folder, command):
        current = as_project(folder)
        cleaned = clean_leftovers(current)
        held = derived_data(current)
        if held and not replace:
            raise ProjectError(
                f"The project {folder} already holds cells with {', '.join(held)}. A new run replaces its cells: "
                "derived columns go with the old run, and labels are matched to the new cells by position. "
                "Confirm with --replace (replace=True in Python), or choose another project folder."
            )
        run_id = uuid.uuid4().hex[:16]
        staging = folder / f"{STAGING_PREFIX}{run_id}"
        staging.mkdir()
        try:
            yield StagedRun(staging, run_id, current, cleaned)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        commit_run(current, staging, run_id, command)


def commit_run(current: Project, staging: Path, run_id: str, command: str, info: dict | None = None) -> None:
    """Make a staged run live (hold the lock): rename it into ``runs/``, then name it in ``project.json``."""
    folder = current.path
    try:
        write_json_atomic(staging / "run.json", {"run": run_id, "command": command, "created": now()})
        (folder / RUNS).mkdir(exist_ok=True)
        os.rename(staging, folder / RUNS / run_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    info = {**(info or current.info), "version": PROJECT_VERSION, "run": run_id, "napari_cellstate": package_version()}
    write_json_atomic(folder / PROJECT_FILE, info)  # the commit point
    if current.run_path is not None:
        shutil.rmtree(current.run_path, ignore_errors=True)
