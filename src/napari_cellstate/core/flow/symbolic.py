"""Scheme 4 in a run: one formula search per seed over the latents the best sparse head kept.

Imported only when :mod:`napari_cellstate.core.symbolic` is installed (see
:func:`~napari_cellstate.core.flow.steps.symbolic_available`). The runs are added to Table 1.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pandas as pd

from ..progress import Progress, relay
from .config import FlowConfig

__all__ = ["iter_scheme4"]


def iter_scheme4(project: Path, heads: Path, out: Path, config: FlowConfig) -> Generator[Progress, None, list[Path]]:
    """Search a formula per seed over the inputs of ``heads/sparse_head``; keep the best as ``out/symbolic``.

    As in ``train-heads``: the sparse head's latents and up to a few more that add to a logistic regression on the
    training rows (:func:`~napari_cellstate.core.symbolic.data.informative_inputs`); the target is the score of
    ``heads/dense_head`` where there is one (distillation; the choice and the accuracy use the labels), and each
    run takes the front's point with the lowest held-out loss (Table 1 compares accuracy at a size limit).

    Table 1's Scheme 4 rows go to ``out/table1_runs.csv`` (the report adds them to the heads' runs). Returns the
    files written.
    """
    from ..heads import load_head
    from ..heads.compare import symbolic_run_row
    from ..heads.data import project_head_data
    from ..symbolic.data import table1_inputs
    from ..symbolic.files import save_expression
    from ..symbolic.plots import save_figures
    from ..symbolic.search import SearchSettings, iter_discover_for

    data = project_head_data(project)
    head, _ = load_head(heads / "sparse_head")
    dense = load_head(heads / "dense_head")[0] if (heads / "dense_head.safetensors").exists() else None
    inputs = table1_inputs(data, head, dense)
    seeds = [config.seed + k for k in range(config.heads.seeds)]
    rows, best = [], None
    for seed in seeds:
        settings = SearchSettings(time_budget_s=config.symbolic.time_budget_s, seed=seed, selection="accuracy")
        result = yield from relay(
            iter_discover_for(inputs, settings),
            f"Scheme 4, seed {seed}",
        )
        rows.append(symbolic_run_row(seed, result.summary()))
        if best is None or result.point.validation_accuracy > best.point.validation_accuracy:
            best = result
    out.mkdir(parents=True, exist_ok=True)
    text = Path(save_expression(out / "symbolic", best.expression, inputs.columns, best.summary()))
    written = [text, text.with_suffix(".json")]
    written += list(save_figures(best, inputs.x, inputs.labels, inputs.names, out).values())
    pd.DataFrame(rows).to_csv(out / "table1_runs.csv", index=False)
    return [Path(p) for p in [*written, out / "table1_runs.csv"]]
