"""Progress events of long computations, and a way to run them to the end."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Progress", "run_to_completion"]

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """One step of a long computation: ``step`` of ``total`` done."""

    step: int
    total: int
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


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
