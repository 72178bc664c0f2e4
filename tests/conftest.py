import pytest

from napari_cellstate.core.config import SimulationConfig
from napari_cellstate.core.simulate import simulate_movie


@pytest.fixture(scope="session")
def default_sample():
    """The built-in sample exactly as users get it (about 4 s)."""
    return simulate_movie(SimulationConfig())


@pytest.fixture(scope="session")
def small_sample():
    """A small, fast movie with a few divisions."""
    return simulate_movie(SimulationConfig(shape_yx=(256, 256), n_frames=24, n_cells=20, n_divisions=6, seed=3))


@pytest.fixture(scope="session")
def head_data():
    """1,500 balanced synthetic crops encoded by the packaged β-TCVAE (about 3 s)."""
    from napari_cellstate.core.heads.data import synthetic_head_data

    return synthetic_head_data(1500, seed=0)
