import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from napari_cellstate.core.config import TrainConfig
from napari_cellstate.core.training import (
    CheckpointError,
    TrainResult,
    iter_train,
    latest_checkpoint,
    select_device,
    train,
)

SCRIPT = Path(__file__).with_name("_ddp_script.py")
_spec = importlib.util.spec_from_file_location("_ddp_script", SCRIPT)
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)
TinyTask, tiny_dataset = _tiny.TinyTask, _tiny.tiny_dataset


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, "learning_rate": 3e-3, "seed": 5, "device": "cpu", **kw})


def _weights(task) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.model.state_dict().items()}


def _assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_tiny_task_trains_and_reports_every_step():
    task, data = TinyTask(), tiny_dataset()
    events = []
    result = train(task, data, _cfg(epochs=6), on_progress=events.append)
    assert isinstance(result, TrainResult)
    steps_per_epoch = 8  # 245 samples in batches of 32: 7 full and one of 21
    assert (result.epoch, result.step, result.device, result.world_size) == (6, 6 * steps_per_epoch, "cpu", 1)
    assert result.checkpoint_path is None
    assert result.wall_time_s > 0
    assert len(events) == 6 * (steps_per_epoch + 1)
    assert all(e.total == 6 * steps_per_epoch for e in events)
    assert events[0].message == "epoch 1/6, step 1/8"
    assert events[0].step == 1
    assert set(events[0].metrics) == {"epoch", "step", "loss", "mae", "dataset_size"}
    assert all(isinstance(v, float) for e in events for v in e.metrics.values())
    assert events[8].message == "epoch 1/6 done"
    assert events[8].metrics == result.history[0]
    assert result.history[0]["dataset_size"] == 245  # the true size, not the batch's
    # the epoch entry is the sample-weighted mean of the steps' losses
    step_losses = [e.metrics["loss"] for e in events[:8]]
    weighted = (sum(step_losses[:7]) * 32 + step_losses[7] * 21) / 245
    assert result.history[0]["loss"] == pytest.approx(weighted)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert task.model.training


def test_same_seed_same_weights_other_seed_other_weights():
    data = tiny_dataset()
    runs = {}
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        task = TinyTask(dropout=0.2)  # the global RNG matters too
        train(task, data, _cfg(seed=seed))
        runs[name] = _weights(task)
    _assert_bitwise_equal(runs["a"], runs["b"])
    assert not torch.equal(runs["a"]["5.weight"], runs["c"]["5.weight"])


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    data, cfg = tiny_dataset(), _cfg(epochs=4, checkpoint_every_epochs=1)
    straight = TinyTask(dropout=0.2)
    reference = train(straight, data, cfg)

    first = TinyTask(dropout=0.2)
    train(first, data, cfg.model_copy(update={"epochs": 2}), checkpoint_dir=tmp_path)
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch-0002"
    resumed_task = TinyTask(init_seed=99, dropout=0.2)  # fresh process: other weights until the checkpoint loads
    resumed = train(resumed_task, data, cfg, checkpoint_dir=tmp_path, resume=True)

    _assert_bitwise_equal(_weights(straight), _weights(resumed_task))
    assert resumed.history == reference.history
    assert (resumed.epoch, resumed.step) == (4, reference.step)
    assert resumed.checkpoint_path == tmp_path / "epoch-0004"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0004"]  # only the latest is kept

    # resuming a finished run does nothing; going back is refused; a fresh run will not overwrite
    again = train(TinyTask(), data, cfg, checkpoint_dir=tmp_path, resume=True)
    assert again.step == reference.step
    assert again.history == reference.history
    with pytest.raises(ValueError, match=r"beyond cfg\.epochs=3"):
        train(TinyTask(), data, cfg.model_copy(update={"epochs": 3}), checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(FileExistsError, match="resume=True"):
        train(TinyTask(), data, cfg, checkpoint_dir=tmp_path)


def test_resume_without_checkpoint_starts_afresh_and_needs_a_folder(tmp_path):
    data = tiny_dataset(64)
    result = train(TinyTask(), data, _cfg(epochs=1), checkpoint_dir=tmp_path / "new", resume=True)
    assert result.checkpoint_path == tmp_path / "new" / "epoch-0001"
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(TinyTask(), data, _cfg(), resume=True)


def test_cancel_mid_epoch_leaves_only_complete_checkpoints(tmp_path):
    task = TinyTask()
    steps = iter_train(task, tiny_dataset(), _cfg(epochs=5), checkpoint_dir=tmp_path)
    for event in steps:
        if event.step == 12:  # epoch 2, after the first epoch's checkpoint
            break
    steps.close()
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001"]
    assert sorted(p.name for p in (tmp_path / "epoch-0001").iterdir()) == [
        "model.safetensors",
        "state.json",
        "training_state.safetensors",
    ]
    assert isinstance(task.model, torch.nn.Sequential)
    # the interrupted run resumes from its last complete epoch
    result = train(task, tiny_dataset(), _cfg(epochs=2), checkpoint_dir=tmp_path, resume=True)
    assert result.epoch == 2
    assert len(result.history) == 2


def test_checkpoint_is_safetensors_and_json_only(tmp_path):
    task = TinyTask()
    train(task, tiny_dataset(), _cfg(epochs=1), checkpoint_dir=tmp_path)
    folder = tmp_path / "epoch-0001"
    for name in ("model.safetensors", "training_state.safetensors"):
        assert not (folder / name).read_bytes().startswith(b"\x80")  # no pickle protocol header
    model = load_file(folder / "model.safetensors")
    _assert_bitwise_equal(model, _weights(task))
    state = load_file(folder / "training_state.safetensors")
    assert {"rng.shuffle", "rng.torch.rank0", "optimizer.0.exp_avg", "optimizer.0.step"} <= state.keys()
    assert state["rng.torch.rank0"].dtype == torch.uint8
    meta = json.loads((folder / "state.json").read_text())
    assert meta["format"] == "napari-cellstate checkpoint"
    assert (meta["epoch"], meta["step"], meta["dataset_size"], meta["world_size"]) == (1, 8, 245, 1)
    assert meta["config"]["seed"] == 5
    assert meta["optimizer"]["class"] == "Adam"
    assert meta["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-3)
    assert len(meta["history"]) == 1


def _truncate(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


def _flip_bytes(folder: Path) -> None:
    path = folder / "training_state.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-50:-40] = bytes(10)  # same size, still a valid safetensors file: only the checksum tells
    path.write_bytes(bytes(raw))


def _break_json(folder: Path) -> None:
    (folder / "state.json").write_text('{"format": "napari-cellstate checkpoint", "ep')


def _remove_file(folder: Path) -> None:
    (folder / "training_state.safetensors").unlink()


@pytest.mark.parametrize("damage", [_truncate, _flip_bytes, _break_json, _remove_file])
def test_damaged_checkpoint_gives_a_clear_error(tmp_path, damage):
    train(TinyTask(), tiny_dataset(64), _cfg(epochs=1), checkpoint_dir=tmp_path)
    damage(tmp_path / "epoch-0001")
    task = TinyTask(init_seed=3)
    before = _weights(task)
    with pytest.raises(CheckpointError, match=r"epoch-0001 is damaged or incomplete .*Delete this folder"):
        train(task, tiny_dataset(64), _cfg(epochs=2), checkpoint_dir=tmp_path, resume=True)
    _assert_bitwise_equal(before, _weights(task))  # nothing loaded


def test_checkpoint_of_another_model_is_refused(tmp_path):
    train(TinyTask(), tiny_dataset(64), _cfg(epochs=1), checkpoint_dir=tmp_path)
    other = TinyTask()
    other.model[-1] = torch.nn.Linear(4 * 8 * 8, 2)
    with pytest.raises(CheckpointError, match="different model"):
        train(other, tiny_dataset(64), _cfg(epochs=2), checkpoint_dir=tmp_path, resume=True)


class _HookedTask(TinyTask):
    def __init__(self):
        super().__init__()
        self.calls = []

    def after_backward(self, step, total_steps, optimizer):
        self.calls.append(("backward", step, total_steps))
        return step % 2 == 0  # skip every other optimizer step

    def after_optimizer_step(self, step, total_steps, optimizer):
        self.calls.append(("step", step, total_steps))

    def on_epoch_end(self, epoch):
        self.calls.append(("epoch", epoch, self.model.training, torch.is_grad_enabled()))
        return {"validation": 0.5 * epoch}


def test_optional_hooks():
    task = _HookedTask()
    data = tiny_dataset(64)
    result = train(task, data, _cfg(epochs=2))
    assert task.calls[:3] == [("backward", 1, 4), ("step", 1, 4), ("backward", 2, 4)]
    assert ("epoch", 1, False, False) in task.calls
    assert [h["validation"] for h in result.history] == [0.5, 1.0]

    class NoStep(TinyTask):
        def after_backward(self, step, total_steps, optimizer):
            return True

    frozen = NoStep()
    before = _weights(frozen)
    train(frozen, data, _cfg(epochs=1))
    _assert_bitwise_equal(before, _weights(frozen))


def test_bad_losses_and_inputs():
    class VectorLoss(TinyTask):
        def loss(self, batch, dataset_size):
            x, y = batch
            return (self.model(x) - y).pow(2), {}

    class NanLoss(TinyTask):
        def loss(self, batch, dataset_size):
            return self.model(batch[0]).mean() * float("nan"), {}

    data = tiny_dataset(64)
    with pytest.raises(ValueError, match="scalar"):
        train(VectorLoss(), data, _cfg())
    with pytest.raises(FloatingPointError, match="nan at epoch 1, step 1"):
        train(NanLoss(), data, _cfg())
    with pytest.raises(ValueError, match="empty"):
        train(TinyTask(), tiny_dataset(0), _cfg())


def test_batch_size_must_split_across_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="batch_size=33 is the global batch and must be divisible by the 2"):
        train(TinyTask(), tiny_dataset(64), _cfg(batch_size=33))


def test_batch_norm_is_refused_under_ddp(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    task = TinyTask()
    task.model[1] = torch.nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match=r"BatchNorm layers \['1'\] .* use GroupNorm"):
        train(task, tiny_dataset(64), _cfg())


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    auto = select_device()
    assert auto.type == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"available: auto, cpu"):
        select_device("cuda:99")
    with pytest.raises(ValueError, match="Unknown device 'gpu please'"):
        select_device("gpu please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available"):
            select_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="'mps' is not available"):
            select_device("mps")


@pytest.mark.slow
def test_ddp_matches_single_process(tmp_path, run_torchrun):
    """Two gloo processes under torchrun, with a resume in between, end where one process does."""
    cfg = _cfg(epochs=2)
    done = run_torchrun(SCRIPT, tmp_path, cfg.model_dump_json(), "--resume-after", "1")
    assert done.returncode == 0, done.stderr[-4000:]

    single = TinyTask()
    reference = train(single, tiny_dataset(), cfg)
    ddp = load_file(tmp_path / "weights.safetensors")
    expected = _weights(single)
    assert ddp.keys() == expected.keys()
    difference = max((ddp[k] - expected[k]).abs().max().item() for k in ddp)
    print(f"max |DDP - single-process| weight difference: {difference:.2e}")
    assert difference < 1e-5
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world_size"] == 2
    assert result["step"] == reference.step
    assert "DistributedDataParallel" not in result["wrapped"]  # the task gets its plain model back
    for got, want in zip(result["history"], reference.history, strict=True):
        assert got == pytest.approx(want, rel=1e-5)
    # only rank 0 wrote checkpoints: one complete folder, nothing else
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0002"]
    meta = json.loads((tmp_path / "checkpoints" / "epoch-0002" / "state.json").read_text())
    assert meta["world_size"] == 2
    state = load_file(tmp_path / "checkpoints" / "epoch-0002" / "training_state.safetensors")
    assert {"rng.torch.rank0", "rng.torch.rank1"} <= state.keys()


# --- streaming from a chunked store ------------------------------------------------------------------------------


def _store(tmp_path, n: int, size: int = 8):
    """A sealed crop store of ``n`` crops whose every pixel holds the crop's row number."""
    import numpy as np

    from napari_cellstate.core.project.crop_store import open_crop_store, write_crop_store

    values = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, size, size), np.float32)
    write_crop_store(tmp_path / "crops.zarr", [values[i : i + 300] for i in range(0, n, 300)], size, {})
    return open_crop_store(tmp_path / "crops.zarr")


def _served_rows(stream, epoch, seed, batch_size, world, rank):
    return [
        batch[:, 0, 0, 0].long().tolist() for batch, _, _ in stream.local_batches(epoch, seed, batch_size, world, rank)
    ]


def test_streamed_batches_follow_the_seed_and_epoch(tmp_path):
    from napari_cellstate.core.training import ChunkStream

    stream = ChunkStream(_store(tmp_path, 2000), buffer_chunks=2)
    first = _served_rows(stream, 1, 0, 64, 1, 0)
    assert first == _served_rows(stream, 1, 0, 64, 1, 0)  # same seed and epoch: the same batches
    assert first != _served_rows(stream, 2, 0, 64, 1, 0) != _served_rows(stream, 1, 1, 64, 1, 0)
    served = [row for batch in first for row in batch]
    assert sorted(served) == list(range(2000))  # one process: every crop once per epoch
    assert len(first) == stream.steps_per_epoch(64, 1) == 32  # 31 full batches and one of 16
    # shuffled across chunks: a batch mixes rows of several chunks, and the first chunk read is not chunk 0
    assert len({row // 256 for row in first[0]}) > 1
    assert served[:256] != list(range(256))


@pytest.mark.parametrize(("n", "world"), [(2000, 2), (2001, 3), (1000, 4)])
def test_streamed_ranks_read_disjoint_rows_in_equal_steps(tmp_path, n, world):
    from napari_cellstate.core.training import ChunkStream

    stream = ChunkStream(_store(tmp_path, n), buffer_chunks=1)
    batch_size = 16 * world
    per_rank = [_served_rows(stream, 3, 7, batch_size, world, rank) for rank in range(world)]
    assert len({len(batches) for batches in per_rank}) == 1  # the same number of steps: DDP cannot hang
    rows = [[row for batch in batches for row in batch] for batches in per_rank]
    for a in range(world):
        for b in range(a + 1, world):
            assert not set(rows[a]) & set(rows[b])
    covered = set().union(*map(set, rows))
    assert len(covered) >= n - (world - 1)  # at most world - 1 rows left out of an epoch (too few for a step)
    # chunk-level sharding: each process reads only a share of the chunks, not every chunk
    for own in rows:
        assert len({row // 256 for row in own}) <= -(-n // 256) // world + 2


def test_a_training_subset_is_streamed_and_trains(tmp_path):
    import numpy as np

    from napari_cellstate.core.training import ChunkStream
    from napari_cellstate.core.training.streaming import training_rows

    crops = _store(tmp_path, 1200)
    train_rows = np.arange(0, 1200, 3)
    stream = training_rows(crops, train_rows, in_memory=list, limit=1000)
    assert isinstance(stream, ChunkStream)
    assert len(stream) == 400
    assert set(np.concatenate(_served_rows(stream, 1, 0, 40, 1, 0))) == set(train_rows)
    assert isinstance(training_rows(crops, train_rows, in_memory=list), list)  # small: read into memory

    class MeanTask:  # learns the mean pixel of the crops it is shown: 1198 / 2 when it saw the training rows
        def __init__(self):
            self.model = torch.nn.Linear(1, 1, bias=False)

        def loss(self, batch, dataset_size):
            x = batch.mean(dim=(1, 2, 3))[:, None] / 1000
            return (self.model(torch.ones_like(x)) - x).pow(2).mean(), {}

    runs = []
    for _ in range(2):
        task = MeanTask()
        torch.nn.init.zeros_(task.model.weight)
        result = train(task, stream, _cfg(epochs=30, batch_size=40, learning_rate=0.05))
        runs.append(task.model.weight.item())
    assert runs[0] == runs[1]  # same seed: bitwise the same
    assert result.step == 30 * 10
    assert runs[0] == pytest.approx(train_rows.mean() / 1000, abs=0.02)


@pytest.mark.slow
def test_train_vae_streams_the_training_rows_of_a_large_store(tmp_path, monkeypatch):
    import numpy as np

    from napari_cellstate.core.config import VAEConfig
    from napari_cellstate.core.project.crop_store import open_crop_store, write_crop_store
    from napari_cellstate.core.training import streaming
    from napari_cellstate.core.vae.fit import train_vae

    rng = np.random.default_rng(1)  # blobs of random position and size: something to reconstruct
    yy, xx = np.mgrid[:16, :16]
    centre, radius = rng.uniform(4, 12, (600, 2, 1, 1)), rng.uniform(1.5, 4, (600, 1, 1))
    crops = np.exp(-((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) / radius**2).astype(np.float32)
    write_crop_store(tmp_path / "crops.zarr", [crops], 16, {})
    store, rows = open_crop_store(tmp_path / "crops.zarr"), np.arange(0, 600, 2)
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 0)  # stream even this small store
    served, read = [], streaming.ChunkStream._read
    monkeypatch.setattr(streaming.ChunkStream, "_read", lambda self, r: served.append(r) or read(self, r))
    vae = VAEConfig(crop_size_px=16, n_latents=4, channels=(8,), dense_units=32)
    _, card = train_vae(store, vae, _cfg(epochs=4, batch_size=50, learning_rate=3e-3), rows=rows)
    assert card["data"]["n_crops"] == 300
    assert set(np.concatenate(served)) == set(rows)  # streamed, and only the training rows
    assert card["history"][-1]["recon"] < 0.8 * card["history"][0]["recon"]
