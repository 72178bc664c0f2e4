"""One training loop for every model of the project: the VAE, the heads and the CNN.

A model enters the loop wrapped in a *task* (:class:`TrainingTask`): the model
plus a ``loss`` method that turns a batch into the scalar to minimise and named
terms to log. :func:`iter_train` does the rest: seeding, shuffling, Adam,
device placement, bfloat16 autocast on CUDA, checkpoints and resuming, and
multi-process data parallel training under ``torchrun``.

Checkpoint layout (no pickle anywhere: safetensors for tensors, JSON for the rest)::

    <checkpoint_dir>/
        epoch-0004/                      the latest checkpoint (older ones are removed)
            model.safetensors            the model's state_dict (parameters and buffers)
            training_state.safetensors   optimizer.<i>.<name>: optimizer state of parameter i
                                         (Adam: step, exp_avg, exp_avg_sq);
                                         rng.torch.rank<r>, rng.<cuda|mps>.rank<r>: RNG states
                                         of each process; rng.shuffle: the shuffling generator
            state.json                   format, version, epoch, step, dataset_size, world_size,
                                         history, config (TrainConfig), optimizer class and
                                         param-group hyper-parameters, sha256 of both files

A checkpoint folder is built under a hidden temporary name and renamed into
place, so the folder ``epoch-NNNN`` is either complete or absent, whatever
happens during the write (a crash, a full disk, a cancelled run).

Multi-process training: launched under ``torchrun`` (``WORLD_SIZE`` > 1),
:func:`iter_train` initialises ``torch.distributed`` (gloo on CPU, NCCL on
CUDA) unless the caller did, wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel` and gives each process
``batch_size / world_size`` samples of the same global batch a single process
would see. Because a task's loss is a per-sample mean, averaging gradients
over the processes gives the single-process gradient. Models must not use
BatchNorm (its statistics would be per process); use GroupNorm.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import math
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import TrainConfig
from .io import sha256_file, write_json_atomic
from .progress import Progress, run_to_completion

__all__ = [
    "CheckpointError",
    "TrainResult",
    "TrainingTask",
    "available_devices",
    "iter_train",
    "latest_checkpoint",
    "select_device",
    "train",
]

CHECKPOINT_FORMAT = "napari-cellstate checkpoint"
CHECKPOINT_VERSION = 1
MODEL_FILE = "model.safetensors"
TRAINING_STATE_FILE = "training_state.safetensors"
STATE_FILE = "state.json"
_CHECKPOINT_NAME = re.compile(r"epoch-(\d+)")
_RESERVED_TERMS = ("epoch", "step", "loss")
_SIDECAR_KEYS = ("epoch", "step", "dataset_size", "world_size", "history", "config", "optimizer", "files")


class TrainingTask(Protocol):
    """A model and its loss: what :func:`iter_train` needs to train anything.

    Attributes
    ----------
    model : torch.nn.Module
        The model to train. :func:`iter_train` moves it to the training device
        and leaves it there. Under DDP it is replaced by its
        ``DistributedDataParallel`` wrapper while training runs (and put back
        afterwards), so ``loss`` must call the model through ``self.model(...)``
        (its ``forward``), once per step; methods other than ``forward`` bypass
        the gradient synchronisation. No BatchNorm: use GroupNorm.

    Notes
    -----
    A task may also define any of these optional methods:

    ``after_backward(step, total_steps, optimizer) -> bool | None``
        Called after ``loss.backward()`` (under DDP the gradients are already
        averaged) and before ``optimizer.step()``; return True to skip this
        optimizer step (RigL's connectivity updates do). ``step`` counts from 1.
        Under DDP every process must return the same answer.
    ``after_optimizer_step(step, total_steps, optimizer) -> None``
        Called after the optimizer step (or where it was skipped), e.g. to
        re-apply sparsity masks.
    ``on_epoch_end(epoch) -> dict[str, float] | None``
        Called after each epoch with the model in eval mode under
        ``torch.no_grad()``; the metrics it returns (e.g. validation accuracy)
        join the epoch's history entry.

    State these methods need across a resume must live in the model's
    parameters or buffers (e.g. sparsity masks as buffers), which checkpoints
    keep.
    """

    model: torch.nn.Module

    def loss(
        self, batch: torch.Tensor | tuple, dataset_size: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """Loss of one batch.

        Parameters
        ----------
        batch : Tensor or tuple of Tensor
            The collated samples (as ``torch.utils.data.default_collate``
            makes them, tuples kept as tuples), already on the training device.
        dataset_size : int
            Number of samples in the whole dataset (not in the batch, nor in
            this process's share): the β-TCVAE's estimators need it.

        Returns
        -------
        loss : Tensor of shape ()
            The per-sample mean loss to minimise.
        terms : dict of str to float or Tensor of shape ()
            Named quantities to log (e.g. reconstruction, KL); not ``epoch``,
            ``step`` or ``loss``.
        """
        ...


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    history : list of dict of str to float
        One entry per epoch since the start of training (resumed runs include
        the epochs before the checkpoint): ``epoch``, ``step`` and the
        sample-weighted means of ``loss`` and of the task's terms, plus the
        task's ``on_epoch_end`` metrics.
    epoch : int
        Epochs done.
    step : int
        Optimisation steps done.
    device : str
        Device the model trained on, e.g. ``"cpu"`` or ``"cuda:0"``.
    checkpoint_path : Path or None
        The latest checkpoint folder, or None without ``checkpoint_dir``.
    wall_time_s : float
        Duration of this call in seconds (not counting runs before a resume).
    world_size : int, default=1
        Number of processes that trained together.
    """

    history: list[dict[str, float]]
    epoch: int
    step: int
    device: str
    checkpoint_path: Path | None
    wall_time_s: float
    world_size: int = 1


class CheckpointError(ValueError):
    """A checkpoint is unreadable, damaged or does not fit the model being trained."""


# ---------------------------------------------------------------------------------------------------------------------
# Devices


def available_devices() -> list[str]:
    """Devices this machine can train on, CPU first.

    Returns
    -------
    list of str
        ``"cpu"``, then ``"cuda:N"`` for each visible GPU, then ``"mps"`` on Apple silicon.

    Examples
    --------
    >>> available_devices()[0]
    'cpu'
    """
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def select_device(preference: str = "auto") -> torch.device:
    """The torch device to train on.

    Parameters
    ----------
    preference : str, default="auto"
        ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"`` (the
        current GPU), ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        When the device is unknown or not available here; the message lists
        the available ones.

    Examples
    --------
    >>> select_device("cpu")
    device(type='cpu')
    """
    available = available_devices()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if "mps" in available else torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Unknown device {preference!r}; available: auto, {', '.join(available)}.") from err
    if device.type == "cuda" and torch.cuda.is_available():
        index = torch.cuda.current_device() if device.index is None else device.index
        if index < torch.cuda.device_count():
            return torch.device("cuda", index)
    elif device.type == "cpu" or (device.type == "mps" and "mps" in available):
        return device
    raise ValueError(
        f"Device {preference!r} is not available on this machine; available: auto, {', '.join(available)}."
    )


# ---------------------------------------------------------------------------------------------------------------------
# Multi-process


@dataclass(frozen=True)
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0


def _dist_env() -> _Dist:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    else:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    return _Dist(world, rank, int(os.environ.get("LOCAL_RANK", str(rank))))


def _training_device(preference: str, dist: _Dist) -> torch.device:
    if dist.world > 1 and preference in ("auto", "cuda") and torch.cuda.is_available():
        return select_device(f"cuda:{dist.local_rank % torch.cuda.device_count()}")  # one GPU per process
    return select_device(preference)


def _init_process_group(device: torch.device) -> None:
    """Join the torchrun job unless the caller already did; the group then lives until the process exits.

    It is not destroyed at the end of training: under torchrun a destroyed group cannot be joined again,
    and a script may train several models in turn.
    """
    if torch.distributed.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    """Leave the job at exit: together, and with no DDP wrapper alive (gloo can abort a process otherwise).

    The barrier is bounded, so a process whose partner died still exits.
    """
    if not torch.distributed.is_initialized():
        return
    gc.collect()
    if torch.distributed.get_backend() == "gloo":
        with contextlib.suppress(RuntimeError):
            torch.distributed.monitored_barrier(timeout=timedelta(seconds=30))
    torch.distributed.destroy_process_group()


def _comm_device(device: torch.device) -> torch.device:
    """Where collective operations' tensors must live (NCCL: on the GPU)."""
    return device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def _all_ok(ok: bool, dist: _Dist, device: torch.device) -> bool:
    """True when every process says ``ok`` (a no-op on one process)."""
    if dist.world == 1:
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=_comm_device(device))
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def _gather(tensor: torch.Tensor, dist: _Dist, device: torch.device) -> list[torch.Tensor]:
    """Every process's copy of a same-shaped tensor, on the CPU."""
    if dist.world == 1:
        return [tensor.cpu()]
    comm = _comm_device(device)
    parts = [torch.empty_like(tensor, device=comm) for _ in range(dist.world)]
    torch.distributed.all_gather(parts, tensor.to(comm))
    return [part.cpu() for part in parts]


# ---------------------------------------------------------------------------------------------------------------------
# Batches


def _steps_per_epoch(n: int, batch_size: int, world: int) -> int:
    """Full batches, plus the last partial one when it can give every process a sample."""
    return n // batch_size + (1 if n % batch_size >= world else 0)


def _collate(dataset: torch.utils.data.Dataset, indices: list[int]) -> Any:
    getitems = getattr(dataset, "__getitems__", None)
    samples = getitems(indices) if getitems is not None else [dataset[i] for i in indices]
    batch = torch.utils.data.default_collate(samples)
    return tuple(batch) if isinstance(batch, list) else batch


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _step_metrics(
    loss: torch.Tensor, terms: Mapping[str, Any], n_local: int, n_global: int, dist: _Dist, device: torch.device
) -> dict[str, float]:
    """Loss and terms as floats, averaged over the global batch (weighted by each process's share)."""
    if loss.ndim != 0:
        raise ValueError(f"The task's loss must be a scalar (a per-sample mean); got shape {tuple(loss.shape)}.")
    reserved = [name for name in terms if name in _RESERVED_TERMS]
    if reserved:
        raise ValueError(f"The task's terms may not be named {reserved}: these names are the loop's own.")
    names = ["loss", *terms]
    values = []
    for name, value in zip(names, [loss, *terms.values()], strict=True):
        value = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
        if value.numel() != 1:
            raise ValueError(f"Term {name!r} must be a scalar; got shape {tuple(value.shape)}.")
        values.append(value.reshape(()).to(device=device, dtype=torch.float64))
    stacked = torch.stack(values)
    if dist.world > 1:
        stacked = stacked.to(_comm_device(device)) * (n_local / n_global)
        torch.distributed.all_reduce(stacked)
    return dict(zip(names, stacked.tolist(), strict=True))


def _check_batching(model: torch.nn.Module, n: int, batch_size: int, dist: _Dist) -> int:
    """Steps per epoch, after checking that the data and the model can be trained by ``dist.world`` processes."""
    if n == 0:
        raise ValueError("The dataset is empty: nothing to train on.")
    if dist.world > 1 and batch_size % dist.world:
        raise ValueError(
            f"batch_size={batch_size} is the global batch and must be divisible by the {dist.world} "
            f"processes; use e.g. {max(dist.world, batch_size // dist.world * dist.world)}."
        )
    if dist.world > 1:
        batch_norms = [
            name
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
            and not isinstance(module, torch.nn.SyncBatchNorm)
        ]
        if batch_norms:
            raise ValueError(
                f"BatchNorm layers {batch_norms} would normalise with per-process batch statistics under DDP: "
                "use GroupNorm (or torch.nn.SyncBatchNorm)."
            )
    steps_per_epoch = _steps_per_epoch(n, batch_size, dist.world)
    if steps_per_epoch == 0:
        raise ValueError(f"{n} samples are too few for {dist.world} processes.")
    return steps_per_epoch


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints


def latest_checkpoint(checkpoint_dir: os.PathLike | str) -> Path | None:
    """The most advanced checkpoint folder in ``checkpoint_dir``.

    Parameters
    ----------
    checkpoint_dir : path
        Folder given to :func:`iter_train`.

    Returns
    -------
    Path or None
        ``checkpoint_dir/epoch-NNNN`` with the highest epoch; None when there
        is none (or the folder does not exist).
    """
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_NAME.fullmatch(p.name)) and p.is_dir()]
    return max(found)[1] if found else None


def _cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", copy=True).contiguous()  # a copy: tied weights must not share memory


def _device_rng(device: torch.device) -> torch.Tensor | None:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def _set_device_rng(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state)


def _rng_tensors(shuffle: torch.Generator, dist: _Dist, device: torch.device) -> dict[str, torch.Tensor]:
    """RNG states of every process (a collective under DDP: all processes must call it)."""
    out = {"rng.shuffle": shuffle.get_state()}
    for rank, state in enumerate(_gather(torch.get_rng_state(), dist, device)):
        out[f"rng.torch.rank{rank}"] = state
    device_state = _device_rng(device)
    if device_state is not None:
        for rank, state in enumerate(_gather(device_state, dist, device)):
            out[f"rng.{device.type}.rank{rank}"] = state
    return out


def _optimizer_payload(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, state in state_dict["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = _cpu_copy(value)
            else:
                scalars.setdefault(str(index), {})[name] = value
    meta = {"class": type(optimizer).__name__, "param_groups": state_dict["param_groups"], "state_scalars": scalars}
    return tensors, meta


def _write_checkpoint(
    folder: Path, model: torch.nn.Module, training_tensors: dict[str, torch.Tensor], meta: dict
) -> Path:
    """Write a checkpoint folder atomically (built hidden, renamed into place), then drop older checkpoints."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        save_file({k: _cpu_copy(v) for k, v in model.state_dict().items()}, staging / MODEL_FILE)
        save_file(training_tensors, staging / TRAINING_STATE_FILE)
        meta = {
            **meta,
            "files": {name: {"sha256": sha256_file(staging / name)} for name in (MODEL_FILE, TRAINING_STATE_FILE)},
        }
        write_json_atomic(staging / STATE_FILE, meta)
        _remove_folder(folder)  # a damaged leftover of the same epoch, if any
        os.replace(staging, folder)
    finally:
        _remove_folder(staging)
    for old in folder.parent.iterdir():
        match = _CHECKPOINT_NAME.fullmatch(old.name)
        if match and old.is_dir() and int(match.group(1)) < meta["epoch"]:
            _remove_folder(old)
    return folder


def _remove_folder(folder: Path) -> None:
    """Delete a folder by first renaming it to a hidden name, so it never lies around half-deleted under its name."""
    if not folder.exists():
        return
    trash = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.old"
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale_temporaries(checkpoint_dir: Path) -> None:
    """Hidden folders left by a process killed while writing or deleting a checkpoint."""
    for path in checkpoint_dir.iterdir():
        if path.name.startswith(".epoch-") and path.suffix in (".tmp", ".old") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _read_checkpoint(folder: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The sidecar and both tensor files of a checkpoint, checked against their sha256."""
    hint = "Delete this folder to start training afresh, or pass the folder of an intact checkpoint."
    try:
        meta = json.loads((folder / STATE_FILE).read_text())
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{STATE_FILE} is not a {CHECKPOINT_FORMAT}")
        if meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"format version {meta.get('version')}, this version reads {CHECKPOINT_VERSION}")
        missing = [k for k in _SIDECAR_KEYS if k not in meta]
        if missing:
            raise ValueError(f"{STATE_FILE} lacks {missing}")
        for name in (MODEL_FILE, TRAINING_STATE_FILE):
            if sha256_file(folder / name) != meta["files"][name]["sha256"]:
                raise ValueError(f"{name} does not match the checksum recorded in {STATE_FILE}")
        return meta, load_file(folder / MODEL_FILE), load_file(folder / TRAINING_STATE_FILE)
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as err:
        raise CheckpointError(f"Checkpoint {folder} is damaged or incomplete ({err}). {hint}") from err


def _restore(
    folder: Path,
    checkpoint: tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    cfg: TrainConfig,
    n: int,
    dist: _Dist,
    device: torch.device,
) -> None:
    """Load a checkpoint (as :func:`_read_checkpoint` gives it) into the model, the optimizer and the RNGs."""
    meta, model_tensors, training_tensors = checkpoint
    try:
        model.load_state_dict(model_tensors)
    except RuntimeError as err:
        raise CheckpointError(f"Checkpoint {folder} holds weights of a different model: {err}") from err
    saved = meta["optimizer"]
    if saved["class"] != type(optimizer).__name__ or len(saved["param_groups"]) != len(optimizer.param_groups):
        raise CheckpointError(f"Checkpoint {folder} holds the state of another optimizer ({saved['class']}).")
    current = optimizer.state_dict()
    groups = []
    for now, before in zip(current["param_groups"], saved["param_groups"], strict=True):
        before = {k: tuple(v) if isinstance(now.get(k), tuple) else v for k, v in before.items()}
        groups.append({**now, **before, "params": now["params"]})
    state: dict[int, dict[str, Any]] = {}
    for key, value in training_tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, scalars in saved["state_scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"Checkpoint {folder}: the optimizer state does not fit this model: {err}") from err
    before_cfg = meta["config"]
    for group in optimizer.param_groups:  # settings changed since the checkpoint take effect
        if cfg.learning_rate != before_cfg["learning_rate"]:
            group["lr"] = cfg.learning_rate
        if cfg.weight_decay != before_cfg["weight_decay"]:
            group["weight_decay"] = cfg.weight_decay

    shuffle.set_state(training_tensors["rng.shuffle"])
    own = training_tensors.get(f"rng.torch.rank{dist.rank}")
    if own is not None:
        torch.set_rng_state(own)
    own_device = training_tensors.get(f"rng.{device.type}.rank{dist.rank}")
    if own_device is not None:
        _set_device_rng(device, own_device)
    if own is None or meta["world_size"] != dist.world:
        warnings.warn(
            f"Checkpoint {folder} was written by {meta['world_size']} process(es), this run has {dist.world}: "
            "training continues, but not exactly as an uninterrupted run would.",
            stacklevel=3,
        )
    if meta["dataset_size"] != n:
        warnings.warn(
            f"Checkpoint {folder} was trained on {meta['dataset_size']} samples, the dataset now has {n}.",
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------------------------------------
# The loop


def iter_train(
    task: TrainingTask,
    dataset: torch.utils.data.Dataset,
    cfg: TrainConfig,
    *,
    checkpoint_dir: os.PathLike | str | None = None,
    resume: bool = False,
) -> Generator[Progress, None, TrainResult]:
    """Train ``task.model`` with Adam, yielding progress after every step and every epoch.

    Seeds torch's global RNG with ``cfg.seed`` (plus the process rank) and
    shuffles every epoch with a generator seeded with ``cfg.seed``, so on the
    CPU the same seed and the same initial model give bitwise the same weights
    (on CUDA, cuDNN may choose non-deterministic kernels unless
    ``torch.use_deterministic_algorithms(True)``).
    Batches hold ``cfg.batch_size`` samples (the last one fewer). The model is
    moved to ``select_device(cfg.device)`` and stays there; on CUDA with
    ``cfg.mixed_precision`` the loss runs under bfloat16 autocast, elsewhere in
    float32. Do not use torch's global RNG in other threads while this runs.
    NumPy's and Python's global RNGs are neither seeded nor checkpointed: a
    dataset that draws random numbers (augmentation) should own a seeded
    generator.

    Stop early by no longer iterating (``close()`` the generator, napari's
    ``worker.quit()``): checkpoints are complete or absent, and ``task.model``
    is put back (unwrapped from DDP, in its former train/eval mode).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) this trains data-parallel as the
    module docstring says: each process gets ``cfg.batch_size / world_size``
    samples of the same global batch; the last, partial batch is split as
    evenly as possible (and each process's loss weighted by its share), or
    skipped when it has fewer samples than processes. Only rank 0 writes
    checkpoints; every process yields the same (globally averaged) progress
    and must be driven to the end. A loss that pairs samples within a batch
    must gather the other processes' share itself, as the β-TCVAE's task
    does (``vae_train.VAETask``), to equal the single-process loss.

    Parameters
    ----------
    task : TrainingTask
        The model and its loss.
    dataset : torch.utils.data.Dataset
        Map-style dataset; samples are collated with ``default_collate``.
    cfg : TrainConfig
        Epochs, global batch size, learning rate, weight decay, seed, device,
        mixed precision and checkpoint interval.
    checkpoint_dir : path, optional
        Folder for checkpoints, written every ``cfg.checkpoint_every_epochs``
        epochs and after the last one; only the latest is kept. Without
        ``resume`` it must not already hold checkpoints.
    resume : bool, default=False
        Continue from the latest checkpoint in ``checkpoint_dir`` (start
        afresh when there is none). With the same settings the result equals
        an uninterrupted run's, bitwise on the CPU. A changed learning rate or
        weight decay takes effect; ``cfg.epochs`` is the total number of epochs.

    Yields
    ------
    Progress
        After each optimisation step: ``step`` of ``total`` steps, message
        ``"epoch E/N, step S/M"``, metrics ``epoch``, ``step``, ``loss`` and
        the task's terms (means over the global batch). After each epoch:
        message ``"epoch E/N done"``, metrics the epoch's history entry.

    Returns
    -------
    TrainResult
        History, epochs and steps done, device, latest checkpoint, wall time.

    Raises
    ------
    ValueError
        Empty dataset, a batch size not divisible by the number of processes, BatchNorm under DDP,
        ``resume`` without ``checkpoint_dir``, a checkpoint beyond ``cfg.epochs``.
    FileExistsError
        ``checkpoint_dir`` holds checkpoints but ``resume`` is False.
    CheckpointError
        The checkpoint to resume from is damaged or belongs to another model.
    FloatingPointError
        The loss became NaN or infinite (the step is not taken).

    Examples
    --------
    >>> import torch
    >>> class LineTask:
    ...     def __init__(self):
    ...         self.model = torch.nn.Linear(3, 1)
    ...     def loss(self, batch, dataset_size):
    ...         x, y = batch
    ...         mse = torch.nn.functional.mse_loss(self.model(x), y)
    ...         return mse, {"rmse": mse.sqrt()}
    >>> data = torch.utils.data.TensorDataset(torch.randn(40, 3), torch.randn(40, 1))
    >>> steps = iter_train(LineTask(), data, TrainConfig(epochs=2, batch_size=16, device="cpu"))
    >>> events = list(steps)
    >>> events[0].message, events[-1].message, events[-1].total
    ('epoch 1/2, step 1/3', 'epoch 2/2 done', 6)
    >>> sorted(events[-1].metrics)
    ['epoch', 'loss', 'rmse', 'step']
    """
    started = time.perf_counter()
    n = len(dataset)
    dist = _dist_env()
    steps_per_epoch = _check_batching(task.model, n, cfg.batch_size, dist)
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    if resume and folder is None:
        raise ValueError("resume=True needs the checkpoint_dir to resume from.")
    latest = None if folder is None else latest_checkpoint(folder)
    if latest is not None and not resume:
        raise FileExistsError(
            f"{folder} already holds a checkpoint ({latest.name}): pass resume=True to continue that run, "
            "or choose an empty folder."
        )
    checkpoint = None
    if resume and latest is not None:
        checkpoint = _read_checkpoint(latest)
        if checkpoint[0]["epoch"] > cfg.epochs:
            raise ValueError(
                f"{latest} is at epoch {checkpoint[0]['epoch']}, beyond cfg.epochs={cfg.epochs}: raise epochs to go on."
            )
    device = _training_device(cfg.device, dist)
    use_amp = device.type == "cuda" and cfg.mixed_precision
    if use_amp and not torch.cuda.is_bf16_supported():
        warnings.warn(f"{device} has no bfloat16 support: training in float32.", stacklevel=2)
        use_amp = False

    model = task.model
    was_training = model.training
    try:
        if dist.world > 1:
            _init_process_group(device)
        if folder is not None and dist.rank == 0 and folder.is_dir():
            _remove_stale_temporaries(folder)
        torch.manual_seed(cfg.seed + dist.rank)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        model.to(device)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        history: list[dict[str, float]] = []
        first_epoch, step, checkpoint_path = 1, 0, None
        if checkpoint is not None:
            _restore(latest, checkpoint, model, optimizer, shuffle, cfg, n, dist, device)
            meta = checkpoint[0]
            history, first_epoch, step, checkpoint_path = meta["history"], meta["epoch"] + 1, meta["step"], latest
            checkpoint = None  # free the tensors
        total = step + (cfg.epochs - first_epoch + 1) * steps_per_epoch
        if dist.world > 1:
            device_ids = [device.index] if device.type == "cuda" else None
            task.model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        after_backward = getattr(task, "after_backward", None)
        after_optimizer_step = getattr(task, "after_optimizer_step", None)
        on_epoch_end = getattr(task, "on_epoch_end", None)
        autocast = (
            (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
        )

        for epoch in range(first_epoch, cfg.epochs + 1):
            order = torch.randperm(n, generator=shuffle)
            sums: dict[str, float] = {}
            seen = 0
            for batch_index in range(steps_per_epoch):
                global_batch = order[batch_index * cfg.batch_size : (batch_index + 1) * cfg.batch_size]
                local = torch.tensor_split(global_batch, dist.world)[dist.rank]
                batch = _to_device(_collate(dataset, local.tolist()), device)
                with autocast():
                    loss, terms = task.loss(batch, n)
                metrics = _step_metrics(loss, terms, len(local), len(global_batch), dist, device)
                if not math.isfinite(metrics["loss"]):
                    raise FloatingPointError(
                        f"The loss became {metrics['loss']} at epoch {epoch}, step {step + 1}: "
                        "try a lower learning rate (the last checkpoint is intact)."
                    )
                step += 1
                optimizer.zero_grad(set_to_none=True)
                share = len(local) * dist.world / len(global_batch)  # 1 except in an unevenly split last batch
                (loss * share if share != 1 else loss).backward()
                if not (after_backward is not None and after_backward(step, total, optimizer)):
                    optimizer.step()
                if after_optimizer_step is not None:
                    after_optimizer_step(step, total, optimizer)
                seen += len(global_batch)
                for name, value in metrics.items():
                    sums[name] = sums.get(name, 0.0) + value * len(global_batch)
                yield Progress(
                    step,
                    total,
                    f"epoch {epoch}/{cfg.epochs}, step {batch_index + 1}/{steps_per_epoch}",
                    {"epoch": float(epoch), "step": float(step), **metrics},
                )

            entry = {"epoch": float(epoch), "step": float(step), **{k: v / seen for k, v in sums.items()}}
            if on_epoch_end is not None:
                model.eval()
                with torch.no_grad():
                    entry.update({k: float(v) for k, v in (on_epoch_end(epoch) or {}).items()})
                model.train()
            history.append(entry)
            if folder is not None and (epoch % cfg.checkpoint_every_epochs == 0 or epoch == cfg.epochs):
                checkpoint_path = _checkpoint(
                    folder, epoch, step, n, history, cfg, model, optimizer, shuffle, dist, device
                )
            yield Progress(step, total, f"epoch {epoch}/{cfg.epochs} done", dict(entry), kind="epoch_end")
    finally:
        task.model = model
        model.train(was_training)

    return TrainResult(
        history=history,
        epoch=len(history),
        step=step,
        device=str(device),
        checkpoint_path=checkpoint_path,
        wall_time_s=time.perf_counter() - started,
        world_size=dist.world,
    )


def _checkpoint(
    folder: Path,
    epoch: int,
    step: int,
    n: int,
    history: list[dict[str, float]],
    cfg: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    dist: _Dist,
    device: torch.device,
) -> Path:
    """Rank 0 writes the checkpoint; every process learns whether that worked."""
    from .. import __version__

    rng = _rng_tensors(shuffle, dist, device)  # collective: before rank 0 goes its own way
    path, error = folder / f"epoch-{epoch:04d}", None
    if dist.rank == 0:
        optimizer_tensors, optimizer_meta = _optimizer_payload(optimizer)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": epoch,
            "step": step,
            "dataset_size": n,
            "world_size": dist.world,
            "model_class": type(model).__name__,
            "history": history,
            "config": cfg.model_dump(mode="json"),
            "optimizer": optimizer_meta,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": {"napari_cellstate": __version__, "torch": torch.__version__},
        }
        try:
            _write_checkpoint(path, model, {**optimizer_tensors, **rng}, meta)
        except Exception as err:  # re-raised below, once the other processes know
            error = err
    if not _all_ok(error is None, dist, device):
        if error is not None:
            raise error
        raise RuntimeError(f"Rank 0 could not write the checkpoint {path}; see its error.")
    return path


def train(
    task: TrainingTask,
    dataset: torch.utils.data.Dataset,
    cfg: TrainConfig,
    *,
    checkpoint_dir: os.PathLike | str | None = None,
    resume: bool = False,
    on_progress: Callable[[Progress], Any] | None = None,
) -> TrainResult:
    """Blocking :func:`iter_train`: train to the end and return the result.

    Parameters
    ----------
    task, dataset, cfg, checkpoint_dir, resume
        As for :func:`iter_train`.
    on_progress : callable, optional
        Called with every :class:`~napari_cellstate.core.progress.Progress` event.

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import torch
    >>> class MeanTask:
    ...     def __init__(self):
    ...         self.model = torch.nn.Linear(1, 1)
    ...     def loss(self, batch, dataset_size):
    ...         (x,) = batch
    ...         return (self.model(x) - 1).pow(2).mean(), {}
    >>> data = torch.utils.data.TensorDataset(torch.zeros(8, 1))
    >>> result = train(MeanTask(), data, TrainConfig(epochs=3, batch_size=4, device="cpu"))
    >>> result.epoch, result.step, result.device, len(result.history)
    (3, 6, 'cpu', 3)
    """
    return run_to_completion(iter_train(task, dataset, cfg, checkpoint_dir=checkpoint_dir, resume=resume), on_progress)
