"""The operators a formula search may use (no heavy imports: the command line reads them for --help)."""

__all__ = ["DEFAULT_OPERATORS", "OPERATORS"]

#: Operators a search may use: our name -> (pyoperon symbol, PySR operator, arity).
OPERATORS = {
    "+": ("add", "+", 2),
    "-": ("sub", "-", 2),
    "*": ("mul", "*", 2),
    "/": ("div", "/", 2),
    "exp": ("exp", "exp", 1),
    "square": ("square", "square", 1),
    "log": ("log", "log", 1),
    "sqrt": ("sqrt", "sqrt", 1),
    "abs": ("abs", "abs", 1),
    "sin": ("sin", "sin", 1),
    "cos": ("cos", "cos", 1),
    "tanh": ("tanh", "tanh", 1),
}
DEFAULT_OPERATORS = ("+", "-", "*", "/", "exp", "square")
