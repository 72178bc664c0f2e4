"""Read an expression from text without running it: a whitelist recursive-descent parser that builds SymPy objects.

SymPy's ``sympify``/``parse_expr`` evaluate Python code, so a saved expression edited into ``__import__('os')``
would run. This parser accepts only the grammar below and builds the SymPy tree itself::

    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | "+" unary | power
    power   := atom (("^" | "**") unary)?
    atom    := NUMBER | NAME | FUNCTION "(" sum ")" | "(" sum ")"

NAME must be one of the variable names the caller allows; FUNCTION one of :data:`FUNCTIONS`. The same grammar
reads our saved expressions, pyoperon's infix output (``(x ^ 2)``) and PySR's (``square(x1)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

import sympy

__all__ = ["FUNCTIONS", "ExpressionSyntaxError", "parse_expression"]


class ExpressionSyntaxError(ValueError):
    """The text is not an expression of the allowed grammar; the message says where and why."""


def _square(x):
    return x**2


def _cube(x):
    return x**3


#: Functions an expression may call, by name.
FUNCTIONS: Mapping[str, Callable] = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "square": _square,
    "cube": _cube,
    "abs": sympy.Abs,
    "Abs": sympy.Abs,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "tanh": sympy.tanh,
}

_MAX_CHARS = 20_000
_MAX_DEPTH = 60  # each level is ~6 Python frames: well inside the recursion limit
_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>\*\*|[-+*/^()]))"
)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ExpressionSyntaxError(
                f"Unexpected character {text[position:].lstrip()[:1]!r} at position {position}."
            )
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, symbols: Mapping[str, sympy.Symbol]) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.symbols = symbols
        self.depth = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise ExpressionSyntaxError(f"The expression ends early{f': expected {value!r}' if value else ''}.")
        if value is not None and token[1] != value:
            raise ExpressionSyntaxError(f"Expected {value!r} at position {token[2]}, found {token[1]!r}.")
        self.index += 1
        return token

    def nested(self, parse: Callable[[], sympy.Expr]) -> sympy.Expr:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ExpressionSyntaxError(f"The expression nests deeper than {_MAX_DEPTH} levels.")
        try:
            return parse()
        finally:
            self.depth -= 1

    def sum(self) -> sympy.Expr:
        value = self.product()
        while (token := self.peek()) is not None and token[1] in "+-" and token[0] == "op":
            self.take()
            right = self.product()
            value = value + right if token[1] == "+" else value - right
        return value

    def product(self) -> sympy.Expr:
        value = self.unary()
        while (token := self.peek()) is not None and token[1] in ("*", "/"):
            self.take()
            right = self.unary()
            value = value * right if token[1] == "*" else value / right
        return value

    def unary(self) -> sympy.Expr:
        token = self.peek()
        if token is not None and token[1] in ("-", "+"):
            self.take()
            operand = self.nested(self.unary)
            return -operand if token[1] == "-" else operand
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.atom()
        token = self.peek()
        if token is not None and token[1] in ("^", "**"):
            self.take()
            return base ** self.nested(self.unary)
        return base

    def atom(self) -> sympy.Expr:
        kind, value, position = self.take()
        if kind == "number":
            number = sympy.Float(value) if any(c in value for c in ".eE") else sympy.Integer(value)
            return number
        if kind == "name":
            following = self.peek()
            if following is not None and following[1] == "(":
                if value not in FUNCTIONS:
                    raise ExpressionSyntaxError(
                        f"Unknown function {value!r} at position {position}; allowed: {', '.join(sorted(FUNCTIONS))}."
                    )
                self.take("(")
                argument = self.nested(self.sum)
                self.take(")")
                return FUNCTIONS[value](argument)
            if value not in self.symbols:
                known = ", ".join(sorted(self.symbols)) or "none"
                raise ExpressionSyntaxError(
                    f"Unknown name {value!r} at position {position}; the expression may use the inputs {known}."
                )
            return self.symbols[value]
        if value == "(":
            inner = self.nested(self.sum)
            self.take(")")
            return inner
        raise ExpressionSyntaxError(f"Unexpected {value!r} at position {position}.")


def parse_expression(text: str, names: Iterable[str]) -> sympy.Expr:
    """Build a SymPy expression from ``text``, allowing only numbers, ``names``, + - * / ^ ** and :data:`FUNCTIONS`.

    Parameters
    ----------
    text : str
        E.g. ``"z29*(z17**2 + z21**2) - exp(exp(z3))"``.
    names : iterable of str
        The variable names the expression may use; each becomes a real SymPy symbol.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ExpressionSyntaxError
        Anything outside the grammar: unknown names or functions, attribute access, lambdas, strings, calls of
        non-functions, unbalanced brackets, or text longer than 20,000 characters.

    Examples
    --------
    >>> parse_expression("z29*(z17**2 + z21**2) - exp(exp(z3))", ["z3", "z17", "z21", "z29"])
    z29*(z17**2 + z21**2) - exp(exp(z3))
    >>> parse_expression("(x0 * square(x1)) - 2.5", ["x0", "x1"])
    x0*x1**2 - 2.5
    >>> parse_expression("__import__('os')", ["z3"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.symbolic.parse.ExpressionSyntaxError: Unexpected character "'" at position 11.
    """
    if not isinstance(text, str):
        raise ExpressionSyntaxError(f"An expression is text, not {type(text).__name__}.")
    if len(text) > _MAX_CHARS:
        raise ExpressionSyntaxError(f"The expression is {len(text)} characters long; at most {_MAX_CHARS} are read.")
    if not text.strip():
        raise ExpressionSyntaxError("The expression is empty.")
    symbols = {name: sympy.Symbol(name, real=True) for name in names}
    parser = _Parser(text, symbols)
    value = parser.sum()
    leftover = parser.peek()
    if leftover is not None:
        raise ExpressionSyntaxError(f"Unexpected {leftover[1]!r} at position {leftover[2]} after the expression.")
    return value
