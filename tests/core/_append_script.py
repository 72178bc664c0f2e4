"""Append (or write) a movie's worth of crops to a project (run in a subprocess that the tests kill).

    python tests/core/_append_script.py PROJECT SOURCE N_CROPS

Every crop of source ``SOURCE`` is filled with that source's number (the digits in its name), so a test can tell
whose crops a project holds.
"""

import sys

import numpy as np
import pandas as pd

from napari_cellstate.core.crops import CropResult
from napari_cellstate.core.project import append_crop_dataset, open_or_create


def movie_result(number: int, n: int) -> CropResult:
    """``n`` crops of 64 x 64 px, all of value ``number``, in tracks of 10 over 10 frames."""
    crops = np.full((n, 64, 64), number, np.float32)
    rows = np.arange(n)
    objects = pd.DataFrame(
        {"t": rows % 10, "y": 32.0 + rows // 10, "x": 32.0, "track_id": 1 + rows // 10, "object_id": 1 + rows}
    )
    return CropResult(crops, objects, {"size_px": 64, "standardise": True, "clip": 4.0})


if __name__ == "__main__":
    project, source, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = movie_result(int("".join(filter(str.isdigit, source))), n)
    print("ready", flush=True)
    append_crop_dataset(open_or_create(project), result, source)
    print("done", flush=True)
