import json

import pytest
import sympy

from napari_cellstate.core.symbolic.expression import SymbolicExpression, symbol
from napari_cellstate.core.symbolic.files import ExpressionFileError, load_expression, save_expression

LATENTS = [f"z{j}" for j in range(32)]
z3, z17, z21, z29 = (symbol(n) for n in ("z3", "z17", "z21", "z29"))
H1 = SymbolicExpression(1.2 * z29 * (z17**2 + z21**2) - sympy.exp(sympy.exp(0.93 * z3)) + 0.1)


def test_a_formula_round_trips_through_text_and_card(tmp_path):
    written = save_expression(tmp_path / "symbolic", H1, LATENTS, {"test_accuracy": 0.97})
    assert written.read_text().strip() == H1.text
    expression, card = load_expression(tmp_path / "symbolic.json")
    assert sympy.simplify(expression.expr - H1.expr) == 0
    assert card["size"] == H1.size
    assert card["columns"] == LATENTS
    assert card["test_accuracy"] == 0.97


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os').system('rm -rf ~')", "Unexpected character"),
        ("lambda: z3", "Unexpected character ':'"),
        ("getattr(z3)", "Unknown function 'getattr'"),
        ("z3 + erfc(z17)", "Unknown function 'erfc'"),
        ("z3 + z99", "Unknown name 'z99'"),
    ],
)
def test_an_edited_formula_that_is_not_an_expression_is_refused_clearly(tmp_path, text, reason):
    path = save_expression(tmp_path / "symbolic", H1, LATENTS)
    path.write_text(text)
    with pytest.raises(ExpressionFileError, match=f"does not hold a valid expression: {reason}"):
        load_expression(path)


def test_a_card_that_is_not_ours_is_refused(tmp_path):
    path = save_expression(tmp_path / "symbolic", H1, LATENTS)
    path.with_suffix(".json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ExpressionFileError, match="not a napari-cellstate expression card"):
        load_expression(path)
    with pytest.raises(ExpressionFileError, match="not found"):
        load_expression(tmp_path / "missing")


def test_nothing_is_written_when_the_card_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_expression(tmp_path / "symbolic", H1, LATENTS, {"bad": object()})
    with pytest.raises(ValueError, match="not among the columns"):
        save_expression(tmp_path / "symbolic", H1, ["z3"])
    assert list(tmp_path.iterdir()) == []
