"""One training loop for every model of the project: the VAE, the heads and the CNN.

A model enters the loop wrapped in a *task* (:class:`TrainingTask`): the model
plus a ``loss`` method that turns a batch into the scalar to minimise and named
terms to log. :func:`iter_train` does the rest: seeding, shuffling, Adam,
device placement, bfloat16 autocast on CUDA, checkpoints and resuming
(:mod:`.checkpoints`), and multi-process data parallel training under
``torchrun`` (:mod:`.distributed`).

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

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from ..config import TrainConfig
from ..progress import Progress, run_to_completion
from .checkpoints import (
    latest_checkpoint,
    read_checkpoint,
    remove_stale_temporaries,
    restore,
    save_checkpoint,
)
from .distributed import (
    Dist,
    comm_device,
    dist_env,
    init_process_group,
    training_device,
)

_RESERVED_TERMS = ("epoch", "step", "loss")


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


@runtime_checkable
class BatchStream(Protocol):
    """A dataset that serves each process its own batches (e.g. :class:`~.streaming.ChunkStream`).

    :func:`iter_train` asks it for the steps of an epoch and then, each epoch, for this process's
    ``(batch, rows here, rows in the global batch)`` triples; every process must get the same number of steps.
    """

    def __len__(self) -> int: ...

    def steps_per_epoch(self, batch_size: int, world: int) -> int:
        """Steps every process takes per epoch with global batches of ``batch_size``."""
        ...

    def local_batches(
        self, epoch: int, seed: int, batch_size: int, world: int = 1, rank: int = 0
    ) -> Iterator[tuple[Any, int, int]]:
        """Process ``rank``'s ``(batch, rows here, rows in the global batch)`` for each step of ``epoch``."""
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


def _shuffled_batches(
    dataset: torch.utils.data.Dataset, order: torch.Tensor, steps: int, cfg: TrainConfig, dist: Dist
) -> Iterator[tuple[Any, int, int]]:
    """Global batches of ``order``; this process collates its contiguous share of each."""
    for batch_index in range(steps):
        global_batch = order[batch_index * cfg.batch_size : (batch_index + 1) * cfg.batch_size]
        local = torch.tensor_split(global_batch, dist.world)[dist.rank]
        yield _collate(dataset, local.tolist()), len(local), len(global_batch)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _step_metrics(
    loss: torch.Tensor, terms: Mapping[str, Any], n_local: int, n_global: int, dist: Dist, device: torch.device
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
        stacked = stacked.to(comm_device(device)) * (n_local / n_global)
        torch.distributed.all_reduce(stacked)
    return dict(zip(names, stacked.tolist(), strict=True))


def _check_batching(model: torch.nn.Module, n: int, batch_size: int, dist: Dist) -> int:
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
    does (``vae.fit.VAETask``), to equal the single-process loss.

    Parameters
    ----------
    task : TrainingTask
        The model and its loss.
    dataset : torch.utils.data.Dataset or BatchStream
        Map-style dataset (samples collated with ``default_collate``, shuffled as above), or a
        :class:`BatchStream` that serves each process its own batches, e.g.
        :class:`~.streaming.ChunkStream` for data larger than memory (its order follows ``cfg.seed`` and the
        epoch; under DDP each process reads its own disjoint rows).
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
    dist = dist_env()
    steps_per_epoch = _check_batching(task.model, n, cfg.batch_size, dist)
    streamed = isinstance(dataset, BatchStream)
    if streamed:
        steps_per_epoch = dataset.steps_per_epoch(cfg.batch_size, dist.world)
        if steps_per_epoch == 0:
            raise ValueError(f"{n} samples are too few for {dist.world} processes.")
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
        checkpoint = read_checkpoint(latest)
        if checkpoint[0]["epoch"] > cfg.epochs:
            raise ValueError(
                f"{latest} is at epoch {checkpoint[0]['epoch']}, beyond cfg.epochs={cfg.epochs}: raise epochs to go on."
            )
    device = training_device(cfg.device, dist)
    use_amp = device.type == "cuda" and cfg.mixed_precision
    if use_amp and not torch.cuda.is_bf16_supported():
        warnings.warn(f"{device} has no bfloat16 support: training in float32.", stacklevel=2)
        use_amp = False

    model = task.model
    was_training = model.training
    batches = None
    try:
        if dist.world > 1:
            init_process_group(device)
        if folder is not None and dist.rank == 0 and folder.is_dir():
            remove_stale_temporaries(folder)
        torch.manual_seed(cfg.seed + dist.rank)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        model.to(device)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        history: list[dict[str, float]] = []
        first_epoch, step, checkpoint_path = 1, 0, None
        if checkpoint is not None:
            restore(latest, checkpoint, model, optimizer, shuffle, cfg, n, dist, device)
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
            if streamed:
                batches = dataset.local_batches(epoch, cfg.seed, cfg.batch_size, dist.world, dist.rank)
            else:
                batches = _shuffled_batches(dataset, torch.randperm(n, generator=shuffle), steps_per_epoch, cfg, dist)
            sums: dict[str, float] = {}
            seen = 0
            for batch_index, (batch, n_local, n_global) in enumerate(batches):
                batch = _to_device(batch, device)
                with autocast():
                    loss, terms = task.loss(batch, n)
                metrics = _step_metrics(loss, terms, n_local, n_global, dist, device)
                if not math.isfinite(metrics["loss"]):
                    raise FloatingPointError(
                        f"The loss became {metrics['loss']} at epoch {epoch}, step {step + 1}: "
                        "try a lower learning rate (the last checkpoint is intact)."
                    )
                step += 1
                optimizer.zero_grad(set_to_none=True)
                share = n_local * dist.world / n_global  # 1 except in an unevenly split last batch
                (loss * share if share != 1 else loss).backward()
                if not (after_backward is not None and after_backward(step, total, optimizer)):
                    optimizer.step()
                if after_optimizer_step is not None:
                    after_optimizer_step(step, total, optimizer)
                seen += n_global
                for name, value in metrics.items():
                    sums[name] = sums.get(name, 0.0) + value * n_global
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
                checkpoint_path = save_checkpoint(
                    folder, epoch, step, n, history, cfg, model, optimizer, shuffle, dist, device
                )
            yield Progress(step, total, f"epoch {epoch}/{cfg.epochs} done", dict(entry), kind="epoch_end")
    finally:
        if batches is not None:
            batches.close()  # a stream's reader thread stops now, not when the generator is collected
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
