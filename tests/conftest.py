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


@pytest.fixture(scope="session")
def labelled_project(small_sample, tmp_path_factory):
    """A tracked, cropped, encoded project of the small sample, labelled from its ground truth."""
    from napari_cellstate.core.config import CropConfig
    from napari_cellstate.core.labelling import LabelStore
    from napari_cellstate.core.pipeline import track_and_crop
    from napari_cellstate.core.progress import run_to_completion
    from napari_cellstate.core.vae_train import iter_encode_project

    folder = tmp_path_factory.mktemp("labelled") / "project"
    result = track_and_crop(
        small_sample.movie, pixel_size_um=0.33, labels=small_sample.labels, crops=CropConfig(), project=folder
    )
    LabelStore(folder / "labels.csv").import_ground_truth(small_sample.objects, result.objects)
    run_to_completion(iter_encode_project(folder))
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny heads train faster on one thread, much faster when other processes share the cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
