"""Save a formula as text plus a JSON card, and read it back without running anything.

A Scheme 4 model saved as ``models/symbolic`` is two files:

* ``models/symbolic.txt``: the formula, one line, in the names of its inputs (``z29*(z17**2 + z21**2) - ...``);
* ``models/symbolic.json``: the card: ``format`` ("napari-cellstate expression"), ``format_version`` (1),
  ``columns`` (the names of the model's input columns, e.g. all latents ``z0 .. z31``), ``expression`` (the same
  text, to detect edits of one file only), sizes, accuracies, the Pareto front and the search settings.

Reading parses the text with the whitelist parser of :mod:`.parse` (no ``eval``, no ``sympify``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..io import atomic_path
from .expression import ExpressionModule, SymbolicExpression
from .parse import ExpressionSyntaxError, parse_expression

__all__ = [
    "FORMAT",
    "ExpressionFileError",
    "expression_paths",
    "is_expression_card",
    "load_expression",
    "load_expression_module",
    "save_expression",
]

FORMAT = "napari-cellstate expression"
FORMAT_VERSION = 1


class ExpressionFileError(ValueError):
    """A saved formula is missing, unreadable, or not an expression of the allowed grammar."""


def expression_paths(path: os.PathLike | str) -> tuple[Path, Path]:
    """The text and card paths of a saved formula (a ``.txt`` or ``.json`` suffix is dropped).

    >>> [p.name for p in expression_paths("models/symbolic.json")]
    ['symbolic.txt', 'symbolic.json']
    """
    path = Path(path)
    if path.suffix.lower() in (".txt", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".txt"), path.with_name(path.name + ".json")


def is_expression_card(path: os.PathLike | str) -> bool:
    """Whether ``path`` names a saved formula (its card's ``format`` is ours), e.g. in a folder of heads.

    Reads only the card's JSON; a missing or unreadable card, or a head's card, is not a formula.
    """
    try:
        card = json.loads(expression_paths(path)[1].read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(card, dict) and card.get("format") == FORMAT


def save_expression(
    path: os.PathLike | str, expression: SymbolicExpression, columns: list[str], card: dict | None = None
) -> Path:
    """Write the formula (text) and its card (JSON), each atomically; the card is written first.

    Parameters
    ----------
    path : path-like
        Where to save, with or without ``.txt``/``.json``.
    expression : SymbolicExpression
    columns : list of str
        Names of the input columns the model takes (all latents for a project), in order.
    card : dict, optional
        Anything JSON-serialisable to keep beside (accuracies, front, settings).

    Returns
    -------
    Path
        The text file.
    """
    text_path, card_path = expression_paths(path)
    missing = sorted(set(expression.inputs) - set(columns))
    if missing:
        raise ValueError(f"The formula reads {missing}, which are not among the columns {columns}.")
    full = {
        **(card or {}),
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "scheme": "symbolic",
        "expression": expression.text,
        "latex": expression.latex(),
        "size": expression.size,
        "columns": list(columns),
        "inputs_used": expression.inputs,
    }
    try:  # fails before anything is written
        body = json.dumps(full, indent=2, default=float) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"The expression card is not JSON-serialisable: {err}") from err
    with atomic_path(card_path) as tmp:
        tmp.write_text(body, encoding="utf-8")
    with atomic_path(text_path) as tmp:
        tmp.write_text(expression.text + "\n", encoding="utf-8")
    return text_path


def load_expression(path: os.PathLike | str) -> tuple[SymbolicExpression, dict]:
    """Read a saved formula safely: the text is parsed by the whitelist grammar in the card's column names.

    Returns
    -------
    expression : SymbolicExpression
    card : dict

    Raises
    ------
    ExpressionFileError
        Missing files, a card that is not ours, or text that is not an expression of the grammar (e.g.
        ``__import__('os')``, a lambda, an unknown function or name); the message quotes the parser's reason.
    """
    text_path, card_path = expression_paths(path)
    missing = [str(p) for p in (text_path, card_path) if not p.is_file()]
    if missing:
        raise ExpressionFileError(f"Expression file(s) not found: {', '.join(missing)} (a .txt and a .json).")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        text = text_path.read_text(encoding="utf-8").strip()
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExpressionFileError(f"{card_path} or {text_path} is not readable text/JSON: {err}") from err
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ExpressionFileError(f"{card_path} is not a napari-cellstate expression card (format {FORMAT!r}).")
    if card.get("format_version") != FORMAT_VERSION:
        raise ExpressionFileError(f"{card_path} has format_version {card.get('format_version')!r}; expected 1.")
    columns = card.get("columns")
    if not isinstance(columns, list) or not all(isinstance(c, str) and c.isidentifier() for c in columns):
        raise ExpressionFileError(f"{card_path}: 'columns' must be a list of input names.")
    try:
        expr = parse_expression(text, columns)
    except ExpressionSyntaxError as err:
        raise ExpressionFileError(f"{text_path} does not hold a valid expression: {err}") from err
    return SymbolicExpression(expr), card


def load_expression_module(path: os.PathLike | str) -> tuple[ExpressionModule, dict]:
    """A saved formula as a torch module over its card's columns (what *Apply* runs), and the card."""
    expression, card = load_expression(path)
    return expression.torch_module(card["columns"]), card
