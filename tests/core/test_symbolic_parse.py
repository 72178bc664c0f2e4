import pytest
import sympy

from napari_cellstate.core.symbolic.expression import symbol
from napari_cellstate.core.symbolic.parse import ExpressionSyntaxError, parse_expression

NAMES = ["z3", "z17", "z21", "z29"]
z3, z17, z21, z29 = (symbol(n) for n in NAMES)
H1 = z29 * (z17**2 + z21**2) - sympy.exp(sympy.exp(z3))


@pytest.mark.parametrize(
    "text",
    [
        "z29*(z17**2 + z21**2) - exp(exp(z3))",
        "z29 * (square(z17) + square(z21)) - exp(exp(z3))",  # PySR's syntax
        "(z29 * ((z17 ^ 2) + (z21 ^ 2))) - exp(exp(z3))",  # Operon's
        "-(exp(exp(z3)) - z29*(z17^2 + z21^2))",
    ],
)
def test_the_syntaxes_of_our_files_pysr_and_operon_give_the_same_formula(text):
    assert sympy.simplify(parse_expression(text, NAMES) - H1) == 0


def test_numbers_powers_and_unary_minus_follow_the_usual_precedence():
    assert parse_expression("-2^2", ["x"]) == -4  # -(2^2), as Python reads -2**2
    assert parse_expression("2*x^-1 + 1.5e-3", ["x"]) == 2 / symbol("x") + sympy.Float("1.5e-3")
    assert parse_expression("x/2/2", ["x"]) == symbol("x") / 4


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os').system('ls')", "Unexpected character"),
        ("lambda x: x", "Unexpected character ':'"),
        ("lambda", "Unknown name 'lambda'"),
        ("z3.__class__", "Unexpected character"),
        ("eval(z3)", "Unknown function 'eval'"),
        ("open(z3)", "Unknown function 'open'"),
        ("os", "Unknown name 'os'"),
        ("exp(z3", "ends early"),
        ("z3 z17", "Unexpected 'z17'"),
        ("", "empty"),
        ("z3[0]", "Unexpected character"),
        ("(" * 500 + "z3" + ")" * 500, "nests deeper"),
    ],
)
def test_anything_outside_the_grammar_is_refused_with_the_reason(text, reason):
    with pytest.raises(ExpressionSyntaxError, match=reason):
        parse_expression(text, NAMES)


def test_names_are_limited_to_the_inputs_given():
    with pytest.raises(ExpressionSyntaxError, match="may use the inputs z3"):
        parse_expression("z5 + 1", ["z3"])
