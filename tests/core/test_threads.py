import os

import pytest

from napari_cellstate.core import threads
from napari_cellstate.core.threads import (
    THREADS_ENV_VAR,
    ThreadSettingError,
    choose_threads,
    sensible_torch_threads,
    usable_cores,
)


@pytest.mark.parametrize(
    ("cores", "load", "expected"),
    [
        (8, 0.0, 8),  # idle machine: every core
        (8, 0.4, 8),  # background noise is not other work
        (8, 1.2, 7),  # one core's worth of other work
        (8, 3.0, 5),
        (2, 3.5, 1),  # more work than cores: still one thread
        (2, 40.0, 1),
        (1, 0.0, 1),
    ],
)
def test_threads_leave_the_busy_cores_to_other_work(cores, load, expected):
    assert choose_threads(cores, load) == expected


def test_threads_come_from_the_usable_cores_and_the_load(monkeypatch):
    monkeypatch.delenv(THREADS_ENV_VAR, raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.2, 1.0, 0.5))
    assert sensible_torch_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 1.0, 0.5))
    assert sensible_torch_threads() == 4


def test_environment_variable_overrides_the_rule(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    monkeypatch.setenv(THREADS_ENV_VAR, "3")
    assert sensible_torch_threads() == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_environment_variable_is_named_with_the_fix(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV_VAR, value)
    with pytest.raises(ThreadSettingError, match=f"{THREADS_ENV_VAR}.*positive integer"):
        sensible_torch_threads()


def test_usable_cores_stay_within_the_affinity():
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= usable_cores() <= allowed
