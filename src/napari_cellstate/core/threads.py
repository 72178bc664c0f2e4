"""How many CPU threads torch should use when other work may share the cores.

torch starts one compute thread per physical core. When other processes keep some of those cores
busy, its threads wait on each other at every parallel region and a training run can take many
times longer than with fewer threads (the demo: 427 s instead of 49 s on 2 shared cores, most of
it in the CNN head). :func:`sensible_torch_threads` leaves the cores that other work is using to
that work.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["THREADS_ENV_VAR", "ThreadSettingError", "choose_threads", "sensible_torch_threads", "usable_cores"]

#: Environment variable that sets the number of torch threads outright (a positive integer).
THREADS_ENV_VAR = "CELLSTATE_TORCH_THREADS"


class ThreadSettingError(ValueError):
    """The thread-count environment variable is not a positive integer."""


def choose_threads(cores: int, load_1min: float) -> int:
    """The rule: all usable cores, less those that other work keeps busy, and at least one.

    Other work is the one-minute load average rounded to whole cores (so a load under 0.5 is
    an idle machine).

    Parameters
    ----------
    cores : int
        Cores this process may use (physical cores, within its CPU affinity).
    load_1min : float
        One-minute load average of the machine, measured before the work starts.

    Returns
    -------
    int
        Number of threads for torch, between 1 and ``cores``.

    Examples
    --------
    >>> choose_threads(8, 0.2), choose_threads(8, 3.0), choose_threads(2, 3.5)
    (8, 5, 1)
    """
    busy = int(max(load_1min, 0.0) + 0.5)
    return max(1, min(cores, cores - busy))


def _physical_cores() -> int | None:
    """Number of physical cores from /proc/cpuinfo (Linux); None where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores, physical_id = set(), ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical_id = value.strip()
        elif key == "core id":
            cores.add((physical_id, value.strip()))
    return len(cores) or None


def usable_cores() -> int:
    """Cores this process may use: physical cores, but no more than its CPU affinity allows."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    physical = _physical_cores()
    return max(1, min(logical, physical) if physical else logical)


def sensible_torch_threads() -> int:
    """Number of torch threads to use now: ``CELLSTATE_TORCH_THREADS`` if set, else :func:`choose_threads`.

    Call it once, before the first torch computation, and pass the result to
    ``torch.set_num_threads``. The load average counts the whole machine (in a container, the
    host), so where it misleads, set ``CELLSTATE_TORCH_THREADS``.

    Returns
    -------
    int
        A positive number of threads.

    Raises
    ------
    ThreadSettingError
        ``CELLSTATE_TORCH_THREADS`` is set but is not a positive integer.
    """
    setting = os.environ.get(THREADS_ENV_VAR, "").strip()
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise ThreadSettingError(
                f"{THREADS_ENV_VAR}={setting!r} is not a positive integer; set it to a number of threads such "
                f"as 1 or 4, or unset it to choose from the free cores."
            )
        return int(setting)
    load_1min = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return choose_threads(usable_cores(), load_1min)
