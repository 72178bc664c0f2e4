"""Cell-cycle states, stored by name everywhere (tables, layers, files)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MITOTIC_STATES", "STATE_COLOURS", "CellState", "state_codes", "state_names"]


class CellState(StrEnum):
    """States a nucleus passes through; the value is the name stored in tables."""

    INTERPHASE = "interphase"
    PROPHASE = "prophase"
    PROMETAPHASE = "prometaphase"
    METAPHASE = "metaphase"
    ANAPHASE = "anaphase"
    TELOPHASE = "telophase"

    @property
    def code(self) -> int:
        """Small integer used by vectorised code (position in the cycle)."""
        return _ORDER.index(self)


_ORDER = list(CellState)

#: States in which a rounding cell pushes its neighbours away.
MITOTIC_STATES = (
    CellState.PROPHASE,
    CellState.PROMETAPHASE,
    CellState.METAPHASE,
    CellState.ANAPHASE,
    CellState.TELOPHASE,
)


#: One colour per state, used by the napari layers and by the figures.
STATE_COLOURS = {
    CellState.INTERPHASE.value: "#4c9be8",
    CellState.PROPHASE.value: "#a6d854",
    CellState.PROMETAPHASE.value: "#ffd92f",
    CellState.METAPHASE.value: "#e7298a",
    CellState.ANAPHASE.value: "#fc8d62",
    CellState.TELOPHASE.value: "#b3a2f0",
}


def state_names(codes) -> list[str]:
    """Map integer codes to state names.

    >>> state_names([0, 3])
    ['interphase', 'metaphase']
    """
    return [_ORDER[int(c)].value for c in codes]


def state_codes(names) -> list[int]:
    """Map state names to integer codes.

    >>> state_codes(["metaphase", "interphase"])
    [3, 0]
    """
    return [CellState(n).code for n in names]
