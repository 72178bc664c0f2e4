import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy

from napari_cellstate.core.symbolic import engines
from napari_cellstate.core.symbolic.engines import EngineUnavailableError, pysr_equations_to_candidates
from napari_cellstate.core.symbolic.expression import SymbolicExpression, symbol
from napari_cellstate.core.symbolic.parse import parse_expression

TABLE = Path(__file__).parents[1] / "data" / "pysr_equations.csv"
NAMES = ["z3", "z17", "z21", "z29", "z5"]


def test_pysr_equation_table_becomes_formulas_in_our_names():
    candidates = pysr_equations_to_candidates(pd.read_csv(TABLE), NAMES)
    assert [c.length for c in candidates] == [1, 3, 5, 7, 9, 10, 12, 14]
    h1 = parse_expression(candidates[5].text, NAMES)
    z3, z17, z21, z29 = (symbol(n) for n in NAMES[:4])
    assert sympy.simplify(h1 - (z29 * (z17**2 + z21**2) - sympy.exp(sympy.exp(z3)))) == 0
    assert SymbolicExpression(h1).size == 15  # PySR counts 10: Table 1 counts every node of the tree
    assert "z5" in SymbolicExpression(parse_expression(candidates[6].text, NAMES)).inputs
    constant = parse_expression(candidates[0].text, NAMES)
    assert constant.is_Number


def test_an_equation_reading_an_input_that_was_not_given_is_refused():
    table = pd.DataFrame({"complexity": [3], "loss": [0.1], "score": [0.0], "equation": ["x7 + 1"]})
    with pytest.raises(ValueError, match="reads x7"):
        pysr_equations_to_candidates(table, NAMES)


def test_pysr_without_julia_says_what_to_do(monkeypatch):
    monkeypatch.delenv("PYTHON_JULIAPKG_EXE", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EngineUnavailableError, match=r"needs Julia.*pyoperon"):
        engines.run_pysr(np.zeros((10, 2)), np.arange(10) % 2, ["a", "b"], classify=True)


@pytest.mark.slow
@pytest.mark.skipif(not engines.julia_available(), reason="needs a Julia runtime with PySR's packages (offline here)")
def test_pysr_finds_a_formula_when_julia_is_available():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 2))
    candidates = engines.run_pysr(x, (x[:, 0] > x[:, 1]).astype(int), ["a", "b"], classify=True, time_s=30)
    assert candidates
