"""Per-movie work and encoding on a dask.distributed LocalCluster give the same project as one process."""

import numpy as np
import pandas as pd
import pytest

from napari_cellstate.core.config import SimulationConfig
from napari_cellstate.core.flow import FlowConfig, run_flow
from napari_cellstate.core.io import save_simulation
from napari_cellstate.core.project import load_crop_dataset
from napari_cellstate.core.simulate import simulate_movie

distributed = pytest.importorskip("distributed")


def _movies(folder):
    movies = []
    for seed in (1, 2):
        cfg = SimulationConfig(n_frames=6, n_cells=12, n_divisions=2, shape_yx=(160, 160), seed=seed)
        save_simulation(simulate_movie(cfg), folder / f"m{seed}")
        movies.append({"path": str(folder / f"m{seed}" / "movie.tif"), "pixel_size_um": 0.33, "name": f"m{seed}"})
    return movies


@pytest.mark.slow
def test_cluster_gives_the_same_objects_and_crops(tmp_path):
    movies = _movies(tmp_path)
    steps = ["inputs", "encode"]

    def run(name, scale):
        config = FlowConfig.model_validate(
            {"project": str(tmp_path / name), "inputs": {"movies": movies}, "scale": scale}
        )
        run_flow(config, steps=steps)
        return load_crop_dataset(tmp_path / name)

    alone = run("alone", {"workers": 1})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        together = run("cluster", {"scheduler": c.scheduler_address})
    assert list(alone.objects["source"].unique()) == ["m1", "m2"]  # both movies, in the config's order
    pd.testing.assert_frame_equal(alone.objects, together.objects)
    np.testing.assert_array_equal(np.asarray(alone.crops), np.asarray(together.crops))
    assert {"z0", "z31"} <= set(together.objects.columns)
