"""Multi-process training under ``torchrun``: process groups, collectives, and leaving together."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
from dataclasses import dataclass
from datetime import timedelta

import torch

from .devices import select_device


@dataclass(frozen=True)
class Dist:
    """Where a process stands in a ``torchrun`` job (one process: world 1, rank 0)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0


def dist_env() -> Dist:
    """World size and ranks from the running process group, or from ``torchrun``'s environment."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    else:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    return Dist(world, rank, int(os.environ.get("LOCAL_RANK", str(rank))))


def training_device(preference: str, dist: Dist) -> torch.device:
    """The device for this process: one GPU per process under ``torchrun``, else the preferred one."""
    if dist.world > 1 and preference in ("auto", "cuda") and torch.cuda.is_available():
        return select_device(f"cuda:{dist.local_rank % torch.cuda.device_count()}")  # one GPU per process
    return select_device(preference)


def init_process_group(device: torch.device) -> None:
    """Join the torchrun job unless the caller already did; the group then lives until the process exits.

    It is not destroyed at the end of training: under torchrun a destroyed group cannot be joined again,
    and a script may train several models in turn.
    """
    if torch.distributed.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    atexit.register(destroy_process_group)


def destroy_process_group() -> None:
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


def comm_device(device: torch.device) -> torch.device:
    """Where collective operations' tensors must live (NCCL: on the GPU)."""
    return device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def all_ok(ok: bool, dist: Dist, device: torch.device) -> bool:
    """True when every process says ``ok`` (a no-op on one process)."""
    if dist.world == 1:
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=comm_device(device))
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def gather(tensor: torch.Tensor, dist: Dist, device: torch.device) -> list[torch.Tensor]:
    """Every process's copy of a same-shaped tensor, on the CPU."""
    if dist.world == 1:
        return [tensor.cpu()]
    comm = comm_device(device)
    parts = [torch.empty_like(tensor, device=comm) for _ in range(dist.world)]
    torch.distributed.all_gather(parts, tensor.to(comm))
    return [part.cpu() for part in parts]
