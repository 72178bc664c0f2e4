"""The one project every CellState step of a viewer works on: chosen once, shown everywhere, remembered.

The choice is kept in ``settings.json`` under the user's config folder (``platformdirs``' when installed, else
``~/.config/napari-cellstate``; ``NAPARI_CELLSTATE_CONFIG_DIR`` overrides it), so napari opens on the last
project next time.
"""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

__all__ = ["ProjectField", "ProjectState", "project_state", "settings_path"]

CONFIG_ENV = "NAPARI_CELLSTATE_CONFIG_DIR"


def settings_path() -> Path:
    """The settings file (it may not exist yet)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]) / "settings.json"
    try:
        from platformdirs import user_config_dir
    except ImportError:
        return Path.home() / ".config" / "napari-cellstate" / "settings.json"
    return Path(user_config_dir("napari-cellstate")) / "settings.json"


def _read_settings() -> dict:
    try:
        settings = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _remember(path: str) -> None:
    from ..core.io import write_json_atomic

    try:
        settings_path().parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(settings_path(), {**_read_settings(), "project": path})
    except OSError:  # a read-only home: the choice lasts for this session
        pass


class ProjectState(QObject):
    """The project folder of one viewer's CellState steps; ``changed`` carries the new path."""

    changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._path = str(_read_settings().get("project") or "")

    @property
    def path(self) -> str:
        """The project folder ("" until one is chosen)."""
        return self._path

    @path.setter
    def path(self, value: str | os.PathLike) -> None:
        value = str(Path(value).expanduser().absolute()) if str(value).strip() else ""
        if value == self._path:
            return
        self._path = value
        if value:
            _remember(value)
        self.changed.emit(value)

    def require(self) -> str:
        """The project folder, or a ValueError saying how to choose one."""
        if not self._path:
            raise ValueError("No project folder is chosen: press 'Project…' at the top of the CellState panel.")
        return self._path


_states: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def project_state(viewer) -> ProjectState:
    """The project state shared by every CellState widget of ``viewer``."""
    if viewer not in _states:
        _states[viewer] = ProjectState()
    return _states[viewer]


class ProjectField(QWidget):
    """The shared project folder, shown as a path with a "Project…" button; ``value`` reads and sets it."""

    def __init__(self, state: ProjectState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.label = QLabel()
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.button = QPushButton("Project…")
        self.button.setToolTip("Choose the project folder (an empty folder makes a new project).")
        self.button.clicked.connect(self.choose)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("project"))
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        state.changed.connect(self._show)
        self._show(state.path)

    @property
    def native(self) -> QWidget:
        """The Qt widget itself (as magicgui widgets expose theirs)."""
        return self

    @property
    def value(self) -> str:
        """The project folder ("" when none is chosen)."""
        return self.state.path

    @value.setter
    def value(self, path: str | os.PathLike) -> None:
        self.state.path = path

    def _show(self, path: str) -> None:
        self.label.setText(path or "(none chosen)")
        self.label.setToolTip(path)

    def choose(self) -> None:
        """Ask for a folder."""
        path = QFileDialog.getExistingDirectory(self, "CellState project folder", self.state.path or str(Path.home()))
        if path:
            self.state.path = path
