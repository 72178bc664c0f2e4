"""Run the steps of a config in order, skipping those already done and still valid; record what each did.

The record (``<project>/flow/state.json``) keeps, per step, the identity of what it read, what it wrote and how
long it took. A step whose inputs changed runs again, and so does every step after it that reads its outputs
(their identities include those outputs: the live run, the latents' encoder hash, the heads' hashes).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from pathlib import Path

from ..io import write_json_atomic
from ..progress import Progress
from ..project import open_or_create
from .config import STEPS, FlowConfig, FlowConfigError
from .scale import open_executor
from .steps import STEP_DEFINITIONS, FlowContext

__all__ = ["FlowResult", "iter_run_flow", "read_state", "run_flow"]

STATE_FILE = "state.json"


class FlowResult(dict):
    """What a run did: ``steps`` (name to ``ran``/``skipped`` and seconds), ``report`` (path) and ``state``."""


def read_state(project: Path) -> dict:
    """The run record of a project (empty when no run has finished a step)."""
    import json

    path = Path(project) / "flow" / STATE_FILE
    if not path.is_file():
        return {"steps": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {"steps": {}}  # a damaged record only means every step is checked by running it again


def _selected(steps: Sequence[str] | None) -> list[str]:
    if not steps:
        return list(STEPS)
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise FlowConfigError(f"Unknown steps {unknown}: choose among {', '.join(STEPS)}.")
    return [s for s in STEPS if s in steps]


def iter_run_flow(
    config: FlowConfig, *, steps: Sequence[str] | None = None, force: Sequence[str] = ()
) -> Generator[Progress, None, FlowResult]:
    """Run the pipeline of ``config`` (all steps, or ``steps``), resuming from what the project already holds.

    Parameters
    ----------
    config : FlowConfig
        With absolute paths (:meth:`FlowConfig.checked`).
    steps : sequence of str, optional
        Only these steps (each still skipped if done and valid); default: every step of :data:`STEPS`.
    force : sequence of str
        Steps to run even if done.

    Yields
    ------
    Progress
        ``stage`` is the step's name; ``kind`` "step_done" or "step_skipped" when a step ends.
    """
    config = config.checked()
    chosen = _selected(steps)
    project = Path(config.project)
    open_or_create(project)  # a project first: the run's own folder lives inside it
    state_path = project / "flow" / STATE_FILE
    state = read_state(project)
    state["config"] = config.model_dump(mode="json")
    done: dict[str, dict] = {}
    with open_executor(config.scale) as executor:
        ctx = FlowContext(config, project, executor)
        for k, step in enumerate(s for s in STEP_DEFINITIONS if s.name in chosen):
            identity = step.inputs(ctx)
            record = state["steps"].get(step.name)
            if (
                step.name not in force
                and record is not None
                and record.get("inputs") == identity
                and step.valid(ctx, record.get("outputs", {}))
            ):
                done[step.name] = {"status": "skipped", "seconds": record.get("seconds", 0.0)}
                yield Progress(
                    k + 1, len(chosen), f"{step.name}: done before, skipped", stage=step.name, kind="step_skipped"
                )
                continue
            start = time.perf_counter()
            outputs = yield from step.run(ctx)
            seconds = round(time.perf_counter() - start, 2)
            state["steps"][step.name] = {
                "inputs": identity,
                "outputs": outputs,
                "seconds": seconds,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            write_json_atomic(state_path, state)
            done[step.name] = {"status": "ran", "seconds": seconds}
            yield Progress(
                k + 1, len(chosen), f"{step.name}: done in {seconds:.1f} s", stage=step.name, kind="step_done"
            )
    report = state["steps"].get("report", {}).get("outputs", {}).get("report")
    return FlowResult(steps=done, report=report, state=state)


def run_flow(config: FlowConfig, **kwargs) -> FlowResult:
    """Blocking :func:`iter_run_flow`."""
    from ..progress import run_to_completion

    return run_to_completion(iter_run_flow(config, **kwargs))
