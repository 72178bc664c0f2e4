"""Checkpoints of the training loop: built hidden and renamed into place, read back checked, resumed exactly.

Layout (no pickle anywhere: safetensors for tensors, JSON for the rest)::

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

The folder ``epoch-NNNN`` is either complete or absent, whatever happens during
the write (a crash, a full disk, a cancelled run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import TrainConfig
from ..io import remove_folder, sha256_file, staged_folder, write_json_atomic
from .distributed import (
    Dist,
    all_ok,
    gather,
)

CHECKPOINT_FORMAT = "napari-cellstate checkpoint"
CHECKPOINT_VERSION = 1
MODEL_FILE = "model.safetensors"
TRAINING_STATE_FILE = "training_state.safetensors"
STATE_FILE = "state.json"
_CHECKPOINT_NAME = re.compile(r"epoch-(\d+)")
_SIDECAR_KEYS = ("epoch", "step", "dataset_size", "world_size", "history", "config", "optimizer", "files")


class CheckpointError(ValueError):
    """A checkpoint is unreadable, damaged or does not fit the model being trained."""


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


def _rng_tensors(shuffle: torch.Generator, dist: Dist, device: torch.device) -> dict[str, torch.Tensor]:
    """RNG states of every process (a collective under DDP: all processes must call it)."""
    out = {"rng.shuffle": shuffle.get_state()}
    for rank, state in enumerate(gather(torch.get_rng_state(), dist, device)):
        out[f"rng.torch.rank{rank}"] = state
    device_state = _device_rng(device)
    if device_state is not None:
        for rank, state in enumerate(gather(device_state, dist, device)):
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
    with staged_folder(folder) as staging:  # replaces a damaged leftover of the same epoch, if any
        save_file({k: _cpu_copy(v) for k, v in model.state_dict().items()}, staging / MODEL_FILE)
        save_file(training_tensors, staging / TRAINING_STATE_FILE)
        meta = {
            **meta,
            "files": {name: {"sha256": sha256_file(staging / name)} for name in (MODEL_FILE, TRAINING_STATE_FILE)},
        }
        write_json_atomic(staging / STATE_FILE, meta)
    for old in folder.parent.iterdir():
        match = _CHECKPOINT_NAME.fullmatch(old.name)
        if match and old.is_dir() and int(match.group(1)) < meta["epoch"]:
            remove_folder(old)
    return folder


def remove_stale_temporaries(checkpoint_dir: Path) -> None:
    """Hidden folders left by a process killed while writing or deleting a checkpoint."""
    for path in checkpoint_dir.iterdir():
        if path.name.startswith(".epoch-") and path.suffix in (".tmp", ".old") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def read_checkpoint(folder: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
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


def restore(
    folder: Path,
    checkpoint: tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    cfg: TrainConfig,
    n: int,
    dist: Dist,
    device: torch.device,
) -> None:
    """Load a checkpoint (as :func:`read_checkpoint` gives it) into the model, the optimizer and the RNGs."""
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


def save_checkpoint(
    folder: Path,
    epoch: int,
    step: int,
    n: int,
    history: list[dict[str, float]],
    cfg: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    dist: Dist,
    device: torch.device,
) -> Path:
    """Rank 0 writes the checkpoint; every process learns whether that worked."""
    from ... import __version__

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
    if not all_ok(error is None, dist, device):
        if error is not None:
            raise error
        raise RuntimeError(f"Rank 0 could not write the checkpoint {path}; see its error.")
    return path
