"""The project folder: runs of crops and objects, column groups with provenance, locking, import and split.

See :mod:`.folder` for the layout on disk.
"""

from .dataset import (
    CropDataset,
    append_crop_dataset,
    load_crop_dataset,
    set_object_columns,
    stage_crop_dataset,
    stream_crop_dataset,
    write_crop_dataset,
)
from .folder import Project, ProjectError, open_or_create
from .imports import import_crop_folder, read_crop_folder
from .lock import ProjectBusyError, project_lock
from .runs import new_run
from .split import split_by_track

__all__ = [
    "CropDataset",
    "Project",
    "ProjectBusyError",
    "ProjectError",
    "append_crop_dataset",
    "import_crop_folder",
    "load_crop_dataset",
    "new_run",
    "open_or_create",
    "project_lock",
    "read_crop_folder",
    "set_object_columns",
    "split_by_track",
    "stage_crop_dataset",
    "stream_crop_dataset",
    "write_crop_dataset",
]
