"""Progress events of long computations, and a way to run them to the end."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Progress", "relay", "run_to_completion"]

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """One step of a long computation: ``step`` of ``total`` done.

    ``message`` is for people; programs read ``stage`` (which part of a
    pipeline, e.g. "segmenting") and ``kind`` (e.g. "step", or "epoch_end"
    when a training epoch finished and ``metrics`` hold its means).
    """

    step: int
    total: int
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    stage: str = ""
    kind: str = "step"


def run_to_completion(steps: Generator[Progress, None, R], on_progress: Callable[[Progress], Any] | None = None) -> R:
    """Drive an ``iter_*`` generator and return its result.

    >>> def iter_count():
    ...     yield Progress(1, 1)
    ...     return "done"
    >>> run_to_completion(iter_count())
    'done'
    """
    while True:
        try:
            event = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(event)


def relay(steps: Generator[Progress, None, R], stage: str) -> Generator[Progress, None, R]:
    """Pass a sub-step's progress on, named as ``stage``; return its result (``yield from relay(...)``).

    >>> def iter_count():
    ...     yield Progress(1, 2, "half")
    ...     return "done"
    >>> [event.stage for event in relay(iter_count(), "counting")]
    ['counting']
    """
    while True:
        try:
            event = next(steps)
        except StopIteration as stop:
            return stop.value
        message = f"{stage}: {event.message}" if event.message else stage
        yield Progress(event.step, event.total, message, event.metrics, stage=stage, kind=event.kind)
