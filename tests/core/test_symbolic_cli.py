import json

import numpy as np
import pandas as pd
import pytest

from napari_cellstate.cli import main
from napari_cellstate.core.symbolic.data import inputs_from_head_data
from napari_cellstate.core.symbolic.files import load_expression
from napari_cellstate.core.symbolic.search import SymbolicDataError


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 3))
    label = np.where(x[:, 0] * x[:, 1] > 0.2, "metaphase", "interphase")
    path = tmp_path / "cells.csv"
    pd.DataFrame({"size": x[:, 0], "ecc": x[:, 1], "noise": x[:, 2], "label": label}).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_a_csv_table_gives_one_json_object_and_a_saved_formula(table, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["discover-expression", "--table", str(table), "--out", str(out), "--json", "--time-budget", "8"])
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # exactly one JSON document on stdout
    assert set(result) >= {"expression", "size", "train_accuracy", "test_accuracy", "inputs", "seconds", "pareto"}
    assert result["inputs"] == ["size", "ecc", "noise"]
    assert result["test_accuracy"] >= 0.9  # the product's sign is easy to find
    assert result["test_accuracy"] > result["baseline_test_accuracy"]  # a line cannot draw this boundary
    assert {"size", "ecc"} <= set(result["inputs_used"])
    expression, _card = load_expression(out / "symbolic")
    assert expression.text == result["expression"]
    assert (out / "pareto.csv").exists()
    assert (out / "symbolic_boundary.png").exists()


@pytest.mark.parametrize(
    ("table_text", "message"),
    [
        ("a,b\n1,2\n", "no 'label' column"),
        ("a,b,label\nx,2,metaphase\ny,3,interphase\n", "must be numeric"),
        ("a,label\n1,mitosis\n", "labels must be interphase/metaphase"),
    ],
)
def test_bad_tables_are_refused_with_a_message_and_nothing_written(tmp_path, capsys, table_text, message):
    path = tmp_path / "bad.csv"
    path.write_text(table_text)
    out = tmp_path / "out"
    assert main(["discover-expression", "--table", str(path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_one_class_only_is_refused(tmp_path, capsys):
    path = tmp_path / "one.csv"
    pd.DataFrame({"a": np.arange(50.0), "label": ["interphase"] * 50}).to_csv(path, index=False)
    assert main(["discover-expression", "--table", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "one class only" in capsys.readouterr().err


def test_pysr_without_julia_is_explained(table, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PYTHON_JULIAPKG_EXE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no julia on it
    out = tmp_path / "out"
    assert main(["discover-expression", "--table", str(table), "--engine", "pysr", "--out", str(out)]) == 2
    assert "PySR needs Julia" in capsys.readouterr().err
    assert not out.exists()


def test_no_sparse_head_and_no_inputs_says_what_to_do(head_data):
    with pytest.raises(SymbolicDataError, match="No inputs chosen and no sparse head"):
        inputs_from_head_data(head_data)
    chosen = inputs_from_head_data(head_data, inputs=["z3", "z11"])
    assert chosen.names == ["z3", "z11"]
    assert chosen.x.shape == (len(head_data.labels), 2)
    with pytest.raises(SymbolicDataError, match="Unknown inputs"):
        inputs_from_head_data(head_data, inputs=["z99"])
