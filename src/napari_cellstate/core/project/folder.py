"""The project folder: where every result of the pipeline is kept on disk.

Layout (project version 2)::

    <project>/
        project.json            format, version, created, package version, and "run": the live run's id
        .lock                   who writes the project now (see lock.py)
        runs/<run id>/          everything one track/import run produced, swapped in as a whole:
            run.json            the command, when, and the sources it read
            segmentation.zarr/  (T, Y, X) labels, when the run segmented a movie
            crops.zarr/         the crops (N, S, S) with a manifest of chunk checksums
            objects.parquet     the objects table, one row per crop
            columns/<group>.parquet   columns added later (latents, predictions, ...), each with its provenance
        labels.csv              the user's labels, kept across runs and matched to cells by position
        heads/, models/, ...    models and results

A run is staged in a hidden folder and made live by renaming it into ``runs/``
and rewriting ``project.json`` (one atomic rename): a crash leaves either the
old or the new complete run. Folders of version 1 (``crops.zarr`` with the
table inside it, at the top) are migrated once, on first open by a writer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..io import write_json_atomic

__all__ = ["PROJECT_FILE", "Project", "ProjectError", "open_or_create"]

PROJECT_FILE = "project.json"
PROJECT_FORMAT = "napari-cellstate project"
PROJECT_VERSION = 2
RUNS = "runs"
_IGNORED_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}


class ProjectError(ValueError):
    """A project folder or its data cannot be used as it is; the message names the fix."""


def package_version() -> str:
    """The installed napari-cellstate version (recorded in everything written)."""
    from ... import __version__

    return __version__


def now() -> str:
    """The time in ISO format, UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_empty(folder: Path) -> bool:
    return not any(p.name not in _IGNORED_FILES for p in folder.iterdir())


@dataclass(frozen=True)
class Project:
    """A project folder: every result of the pipeline, kept on disk.

    Create one with :meth:`create`, open one with :meth:`open`, or use
    :func:`open_or_create`. A ``Project`` is a snapshot of ``project.json``:
    open it again to see another process's new run.

    Attributes
    ----------
    path : Path
        The project folder.
    info : dict
        The contents of ``project.json``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "my project"
    >>> project = Project.create(folder)
    >>> Project.open(folder).info["format"]
    'napari-cellstate project'
    >>> project.run_id is None
    True
    """

    path: Path
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def run_id(self) -> str | None:
        """Id of the live run (None before the first track or import)."""
        return self.info.get("run")

    @property
    def run_path(self) -> Path | None:
        """Folder of the live run."""
        return None if self.run_id is None else self.path / RUNS / self.run_id

    @property
    def crops_path(self) -> Path | None:
        """The live run's crop store."""
        return None if self.run_path is None else self.run_path / "crops.zarr"

    @property
    def segmentation_path(self) -> Path | None:
        """The live run's segmentation (absent when the run used the user's labels without saving them)."""
        return None if self.run_path is None else self.run_path / "segmentation.zarr"

    @property
    def labels_path(self) -> Path:
        """The user's labels (``labels.csv``), kept across runs."""
        return self.path / "labels.csv"

    @classmethod
    def create(cls, path: os.PathLike | str) -> Project:
        """Make a new project in ``path`` (created if missing; it must be empty).

        Raises
        ------
        ProjectError
            ``path`` is a file, already a project, or a folder that is not empty.
        """
        path = Path(path).expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise ProjectError(f"{path} is a file, not a folder: choose an empty folder for the new project.")
        if (path / PROJECT_FILE).exists():
            raise ProjectError(f"{path} is already a napari-cellstate project: open it with Project.open instead.")
        if path.exists() and not _is_empty(path):
            raise ProjectError(
                f"{path} is not empty, so it cannot become a new project: choose an empty folder "
                "(or a new folder name) or an existing project."
            )
        path.mkdir(parents=True, exist_ok=True)
        info = {
            "format": PROJECT_FORMAT,
            "version": PROJECT_VERSION,
            "created": now(),
            "napari_cellstate": package_version(),
            "run": None,
        }
        write_json_atomic(path / PROJECT_FILE, info)
        return cls(path, info)

    @classmethod
    def open(cls, path: os.PathLike | str) -> Project:
        """Open an existing project (a version-1 folder is migrated first, once).

        Raises
        ------
        ProjectError
            The folder is missing or is not a project; ``project.json`` is
            unreadable, not JSON, of another program, or of a newer version;
            the live run is missing.
        """
        path = Path(path).expanduser().absolute()
        info = _read_info(path)
        if info["version"] < PROJECT_VERSION:
            from .migrate import migrate_v1

            info = migrate_v1(path, info)
        project = cls(path, info)
        if project.run_path is not None and not project.run_path.is_dir():
            raise ProjectError(
                f"The project {path} names run {project.run_id} as live, but {project.run_path} is missing: the "
                "folder was damaged or partly copied. Restore it from a backup, or run Track & crop again "
                "(napari-cellstate track ... --replace)."
            )
        return project

    def reopen(self) -> Project:
        """The project as it is on disk now."""
        return Project.open(self.path)


def _read_info(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ProjectError(
            f"The project folder {path} does not exist: choose an existing project, or create one "
            "(Project.create or open_or_create)."
        )
    if not path.is_dir():
        raise ProjectError(f"{path} is a file, not a project folder: choose the folder that holds project.json.")
    file = path / PROJECT_FILE
    if not file.exists():
        if _is_empty(path):
            raise ProjectError(
                f"{path} is an empty folder, not a project yet: create one there with Project.create or open_or_create."
            )
        raise ProjectError(
            f"{path} is not a napari-cellstate project (it has no {PROJECT_FILE}): choose an empty folder "
            "or an existing project."
        )
    fresh = json.dumps({"format": PROJECT_FORMAT, "version": 1})
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProjectError(
            f"{file} is damaged or unreadable ({err}). Restore it from a backup, or replace its contents "
            f"with {fresh} to open the project again."
        ) from err
    if not isinstance(info, dict) or info.get("format") != PROJECT_FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise ProjectError(
            f"{path} is not a napari-cellstate project ({PROJECT_FILE} there has format {found!r}, belonging "
            "to another program): choose an empty folder or an existing project."
        )
    version = info.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProjectError(
            f"{file} is damaged (its version is {version!r}, not a whole number). Restore it from a backup, "
            f"or replace its contents with {fresh}."
        )
    if version > PROJECT_VERSION:
        raise ProjectError(
            f"{path} was written by a newer napari-cellstate (project version {version}; this is "
            f"napari-cellstate {package_version()}, which reads version {PROJECT_VERSION}): update "
            "napari-cellstate (pip install -U napari-cellstate) to open it."
        )
    run = info.get("run")
    if version == PROJECT_VERSION and run is not None and not (isinstance(run, str) and run.isalnum()):
        raise ProjectError(f"{file} is damaged (its run id {run!r} is not a run id). Restore it from a backup.")
    return info


def open_or_create(path: os.PathLike | str) -> Project:
    """Open the project in ``path``, or create one if ``path`` is missing or an empty folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> open_or_create(folder) == open_or_create(folder)
    True
    """
    path = Path(path).expanduser().absolute()
    if not path.exists() or (path.is_dir() and not (path / PROJECT_FILE).exists() and _is_empty(path)):
        return Project.create(path)
    return Project.open(path)


def as_project(project: Project | os.PathLike | str) -> Project:
    """A :class:`Project` from a project or its path (opened fresh)."""
    return project.reopen() if isinstance(project, Project) else Project.open(project)
