import numpy as np
import pandas as pd
import pytest

from napari_cellstate.core.heads.apply import apply_head
from napari_cellstate.core.heads.compare import summarise_table1, symbolic_run_row
from napari_cellstate.core.heads.data import project_head_data
from napari_cellstate.core.labelling import LabelStore
from napari_cellstate.core.symbolic.data import inputs_from_head_data
from napari_cellstate.core.symbolic.files import load_expression_module, save_expression
from napari_cellstate.core.symbolic.search import SearchSettings, discover_expression


@pytest.mark.slow
def test_a_formula_found_on_a_project_classifies_every_cell_of_its_movie(labelled_project, tmp_path):
    data = project_head_data(labelled_project)
    train = data.rows("train")
    r = [abs(np.corrcoef(data.latents[train, j], data.labels[train])[0, 1]) for j in range(data.n_latents)]
    chosen = [f"z{j}" for j in np.argsort(r)[::-1][:3]]  # the latents that tell the classes apart best
    inputs = inputs_from_head_data(data, inputs=chosen)
    settings = SearchSettings(time_budget_s=6, n_processes=1, max_length=15)
    result = discover_expression(
        inputs.x, inputs.labels, inputs.names, inputs.split, groups=inputs.groups, settings=settings
    )
    save_expression(tmp_path / "symbolic", result.expression, inputs.columns, result.summary())
    module, card = load_expression_module(tmp_path / "symbolic")
    assert card["columns"] == [f"z{j}" for j in range(data.n_latents)]
    objects = apply_head(labelled_project, module)
    given = LabelStore(labelled_project / "labels.csv").labels_for(objects)
    labelled = given.isin(["interphase", "metaphase"])
    agreement = (objects.loc[labelled, "head_class"] == given[labelled]).mean()
    assert agreement >= 0.9
    assert np.array_equal(objects["head_score"] >= 0, objects["head_class"] == "metaphase")


def test_table1_gets_its_scheme4_row_beside_the_paper():
    summary = {
        "test_accuracy": 0.97,
        "test_balanced_accuracy": 0.96,
        "size": 13,
        "inputs_used": ["z3", "z11"],
        "seconds": 30.0,
    }
    runs = pd.DataFrame([symbolic_run_row(0, summary), symbolic_run_row(1, {**summary, "size": 17})])
    row = summarise_table1(runs).set_index("Scheme").loc[4]
    assert row["models"] == 2
    assert row["head weights"] == "N/A"
    assert row["expression size"] == "15 ± 3"
    assert row["accuracy"] == "97.0 %"
    assert row["paper expression size"] == "17 ± 7"
