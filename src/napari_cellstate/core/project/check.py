"""A whole-project check: every part of the live run can be read and the parts agree.

Used after a crash (and by the fault-injection tests) to tell a complete
project from a mixed or damaged one.
"""

from __future__ import annotations

import os

import numpy as np

from .dataset import load_crop_dataset
from .folder import Project, ProjectError

__all__ = ["check_project"]


def check_project(project: Project | os.PathLike | str) -> dict:
    """Read every part of the live run and check that they agree; returns a summary.

    Raises
    ------
    ProjectError
        A part is missing or damaged, or the parts disagree (e.g. crops of other frames than the segmentation's).
    """
    project = Project.open(project.path if isinstance(project, Project) else project)
    if project.run_id is None:
        return {"run": None, "n_crops": 0, "frames": 0}
    dataset = load_crop_dataset(project)
    np.asarray(dataset.crops)  # reads and checks every chunk
    frames = None
    if project.segmentation_path.exists():
        import zarr

        segmentation = zarr.open_array(str(project.segmentation_path), mode="r")
        frames = int(segmentation.shape[0])
        shape = dataset.metadata["sources"][0].get("shape")
        if shape is not None and list(segmentation.shape) != list(shape):
            raise ProjectError(
                f"The project {project.path} is damaged: its segmentation has shape {segmentation.shape} but its "
                f"crops come from a movie of shape {shape}. Run Track & crop again (--replace)."
            )
        if len(dataset) and int(dataset.objects["t"].max()) >= frames:
            raise ProjectError(f"The project {project.path} is damaged: cells lie beyond the segmentation's frames.")
    return {"run": project.run_id, "n_crops": len(dataset), "frames": frames}
