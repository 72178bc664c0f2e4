"""Track a small simulated movie into a project (run in a subprocess that the tests kill)."""

import sys

from napari_cellstate.core.config import CropConfig, SimulationConfig
from napari_cellstate.core.pipeline import track_and_crop
from napari_cellstate.core.simulate import simulate_movie

if __name__ == "__main__":
    project, frames = sys.argv[1], int(sys.argv[2])
    sample = simulate_movie(SimulationConfig(shape_yx=(128, 128), n_frames=frames, n_cells=6, n_divisions=0, seed=1))
    print("ready", flush=True)
    track_and_crop(sample.movie, pixel_size_um=0.33, crops=CropConfig(), project=project, replace=True)
    print("done", flush=True)
