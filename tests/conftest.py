import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    from napari_cellstate.core.vae.encode import iter_encode_project

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


@pytest.fixture
def run_torchrun():
    """Run a test script under ``torchrun`` with two gloo processes on the CPU: ``run_torchrun(script, out, *args)``.

    gloo can abort a process while the interpreter shuts down ("terminate called without an active exception", a
    PyTorch race between its threads and finalisation) after all the work is done. A run that fails that way, and
    only that way, is repeated once in an emptied output folder.
    """
    return _run_torchrun


GLOO_EXIT_ABORT = "terminate called without an active exception"


def _run_torchrun(script: Path, out: Path, *args: str, timeout_s: int = 120) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 script out *args``; ``out`` is the script's output folder."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for _attempt in range(2):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        done = subprocess.run(
            [*command, str(script), str(out), *args], env=env, capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode == 0 or GLOO_EXIT_ABORT not in done.stderr:
            break
    return done


@pytest.fixture
def edit_card():
    """``edit_card(model_path, state=None, key=value, ...)`` rewrites the card inside a saved model; None drops a key.

    With ``state``, the tensors are replaced too and the card's hash updated to them (a hand-edited but consistent
    file, to test the checks after the hash). The ``.json`` copy is left as saved: it is never read.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from napari_cellstate.core.model_files import tensors_sha256

    def edit(path, state=None, **changes):
        path = path.with_suffix(".safetensors")
        with safe_open(path, "pt") as handle:
            metadata = handle.metadata()
        card = json.loads(metadata["card"])
        if state is not None:
            card["weights"] = {**card["weights"], "tensors_sha256": tensors_sha256(state)}
        for key, value in changes.items():
            if value is None:
                card.pop(key, None)
            else:
                card[key] = value
        save_file(load_file(path) if state is None else state, path, metadata={**metadata, "card": json.dumps(card)})

    return edit
