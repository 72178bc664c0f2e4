"""Cell labels made by a person: kept in the project folder as they are made.

Labels are keyed by ``object_id`` and also remember ``t, y, x``, so they can
be matched again to the objects of a later segmentation or tracking run.
Every change is written at once (atomically), so closing napari loses nothing.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_path
from .states import CellState

__all__ = ["LABEL_COLUMNS", "LabelStore", "LabelsFileError", "nearest_object", "read_labels_csv"]

LABEL_COLUMNS = ["object_id", "track_id", "t", "y", "x", "label"]
MATCH_DISTANCE_PX = 5.0  # how far a label may sit from the centre of the cell it marks
_INTEGER_COLUMNS = ("object_id", "track_id", "t")
_SHOWN_LINES = 8  # a message lists this many line numbers, then "and N more"


class LabelsFileError(ValueError):
    """A labels CSV is cut short, has missing or malformed fields, unrecognised classes or conflicting rows."""


def _lines(numbers) -> str:
    numbers = [int(n) for n in numbers]
    shown = ("line " if len(numbers) == 1 else "lines ") + ", ".join(map(str, numbers[:_SHOWN_LINES]))
    return shown + (f" and {len(numbers) - _SHOWN_LINES} more" if len(numbers) > _SHOWN_LINES else "")


def _class_problem(label: str) -> str | None:
    """Why ``label`` is not a class name, or None: a cell state, or a custom class (letters, digits, space, -, _)."""
    import difflib

    states = [state.value for state in CellState]
    if label in states:
        return None
    near = [s for s in states if s == label.strip().lower()] or difflib.get_close_matches(label.lower(), states, 1, 0.8)
    if near:
        return f"unrecognised class {label!r} (did you mean {near[0]!r}?)"
    if label != label.strip() or not label or not all(ch.isalnum() or ch in " -_" for ch in label):
        return f"unrecognised class {label!r} (class names are letters, digits, spaces, - and _)"
    return None


def read_labels_csv(path: os.PathLike | str) -> pd.DataFrame:
    r"""Read and check a labels CSV: every row complete, every class recognised, no two rows disagreeing.

    A file is refused whole, never used in part, when its last line has no line break (cut short), a row misses
    a field or holds a malformed number, a class is unrecognised (``Metaphase``, `` metaphase``, ``metaphse``:
    near misses of a cell state), or two rows for the same cell (same ``object_id``, or same ``t, y, x`` when
    there is no ``object_id``) give different classes. Identical repeated rows are kept once. Custom classes
    (letters, digits, spaces, - and _, as the Label cells widget allows) are accepted.

    Parameters
    ----------
    path : path-like
        The CSV: columns ``t, y, x, label`` and optionally ``object_id, track_id``.

    Returns
    -------
    DataFrame
        Columns :data:`LABEL_COLUMNS`; ``object_id`` and ``track_id`` are 0 when the file has none.

    Raises
    ------
    LabelsFileError
        Naming the file, the line numbers and the fix.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
    >>> _ = path.write_text("t,y,x,label\n0,5.0,6.0,Metaphase\n")
    >>> read_labels_csv(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.labelling.LabelsFileError: ...: unrecognised class 'Metaphase' (did you mean 'metaphase'?) ...
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise LabelsFileError(
            f"{path}: the last line has no line break, so the file may have been cut short (an interrupted copy or "
            "save). Check its last row against your records; if it is complete, add a line break at the end."
        )
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise LabelsFileError(f"{path} is not a labels CSV ({err}).") from err
    missing = sorted({"t", "y", "x", "label"} - set(table.columns))
    if missing:
        raise LabelsFileError(f"{path} lacks columns {missing}; a labels CSV needs t, y, x and label.")
    table = table.fillna("")
    table.index = table.index + 2  # line numbers in the file (line 1 is the header)
    table = table[(table != "").any(axis=1)]  # blank lines
    columns = [c for c in LABEL_COLUMNS if c in table.columns]

    problems = []
    if len(empty := table.index[(table[columns] == "").any(axis=1)]):
        problems.append(
            f"{_lines(empty)} {'misses' if len(empty) == 1 else 'miss'} a field (cut short or edited by hand)"
        )
    numbers = {c: pd.to_numeric(table[c], errors="coerce") for c in columns if c != "label"}
    bad = pd.Series(False, index=table.index)
    for column, values in numbers.items():
        wrong = ~np.isfinite(values.astype(float))
        if column in _INTEGER_COLUMNS:
            wrong |= values.fillna(0) % 1 != 0
        bad |= wrong & (table[column] != "")
    if bad.any():
        problems.append(f"{_lines(table.index[bad])} hold a malformed number")
    for label, rows in table[table["label"] != ""].groupby("label").groups.items():
        if reason := _class_problem(label):
            problems.append(f"{reason} on {_lines(rows)}")
    if problems:
        raise LabelsFileError(
            f"{path} is refused, not used in part: " + "; ".join(problems) + ". Correct those lines (class names "
            "are case-sensitive, e.g. 'metaphase') or export the labels again from the Label cells widget."
        )

    for column, values in numbers.items():
        table[column] = values.astype(int) if column in _INTEGER_COLUMNS else values.astype(float)
    for column in ("object_id", "track_id"):
        if column not in table.columns:
            table[column] = 0
    key = ["object_id"] if (table["object_id"] != 0).all() else ["t", "y", "x"]
    table = table.drop_duplicates([*key, "label"])
    conflicts = table[table.duplicated(key, keep=False)]
    if len(conflicts):
        cells = conflicts.groupby(key if len(key) > 1 else key[0]).groups
        described = "; ".join(
            f"{_lines(rows)} give {sorted(set(table.loc[rows, 'label']))}" for rows in list(cells.values())[:5]
        )
        raise LabelsFileError(
            f"{path} is refused: {len(cells)} cell(s) have conflicting labels ({described}). Keep one row per cell "
            "(delete the wrong ones) and open it again."
        )
    return table[LABEL_COLUMNS].reset_index(drop=True)


class LabelStore:
    """Labels of cells, saved to ``path`` (CSV) after every change, with undo.

    Parameters
    ----------
    path : path
        CSV file, usually ``<project>/labels.csv``; loaded if it exists.
    """

    def __init__(self, path: os.PathLike | str) -> None:
        self.path = Path(path)
        self._history: list[pd.DataFrame] = []
        self.table = self._read(self.path) if self.path.exists() else pd.DataFrame(columns=LABEL_COLUMNS)

    @staticmethod
    def _read(path: Path) -> pd.DataFrame:
        return read_labels_csv(path)

    def _save(self) -> None:
        from .project import project_lock
        from .project.folder import PROJECT_FILE

        in_project = (self.path.parent / PROJECT_FILE).exists()  # labels of a project: one writer at a time
        with (
            project_lock(self.path.parent, "label cells") if in_project else nullcontext(),
            atomic_path(self.path) as tmp,
        ):
            self.table.to_csv(tmp, index=False)

    def _change(self, table: pd.DataFrame) -> None:
        self._history.append(self.table)
        self.table = table.reset_index(drop=True)
        self._save()

    def assign(self, objects: pd.DataFrame, label: str) -> int:
        """Give ``label`` to these objects (rows of the objects table); "" removes their labels.

        Returns the number of objects changed.
        """
        label = label.strip()
        kept = self.table[~self.table["object_id"].isin(objects["object_id"])]
        if label:
            new = objects[["object_id", "track_id", "t", "y", "x"]].assign(label=label)
            kept = pd.concat([kept, new], ignore_index=True) if len(kept) else new
        self._change(kept[LABEL_COLUMNS])
        return len(objects)

    def propagate(self, objects: pd.DataFrame, track_id: int, label: str, t_start: int, t_stop: int) -> int:
        """Label every object of a track between frames ``t_start`` and ``t_stop`` (inclusive)."""
        rows = objects[(objects["track_id"] == track_id) & objects["t"].between(t_start, t_stop)]
        if rows.empty:
            raise ValueError(f"Track {track_id} has no cells between frames {t_start} and {t_stop}.")
        return self.assign(rows, label)

    def undo(self) -> bool:
        """Go back one change; False if there is nothing to undo."""
        if not self._history:
            return False
        self.table = self._history.pop()
        self._save()
        return True

    def counts(self) -> dict[str, int]:
        """Labelled cells per class."""
        return self.table["label"].value_counts().sort_index().to_dict()

    def matched_objects(self, objects: pd.DataFrame, max_distance_px: float = MATCH_DISTANCE_PX) -> np.ndarray:
        """For each label row, the ``object_id`` of the cell it marks, or -1 if no cell is there.

        A label marks the cell of its frame nearest its position, within ``max_distance_px`` (its own object id
        wins a tie): ids alone are never trusted, since another run of tracking numbers cells anew. Labels without
        a position (imported crops) match by object id.
        """
        out = np.full(len(self.table), -1, np.int64)
        if self.table.empty or objects.empty:
            return out
        table = self.table.reset_index(drop=True)
        placed = np.isfinite(table[["t", "y", "x"]].to_numpy(np.float64)).all(axis=1)
        unplaced = np.flatnonzero(~placed)
        known = set(objects["object_id"].tolist())
        out[unplaced] = [i if i in known else -1 for i in table.loc[unplaced, "object_id"].tolist()]
        rows = table[placed]
        for t, labels in rows.groupby(rows["t"].astype(np.int64)):
            candidates = objects[objects["t"] == t]
            if candidates.empty:
                continue
            centres = candidates[["y", "x"]].to_numpy(np.float64)
            wanted = labels[["y", "x"]].to_numpy(np.float64)
            distance = np.hypot(wanted[:, None, 0] - centres[None, :, 0], wanted[:, None, 1] - centres[None, :, 1])
            same_id = labels["object_id"].to_numpy()[:, None] == candidates["object_id"].to_numpy()[None, :]
            distance = np.where(same_id, distance - 1e-6, distance)  # its own id wins a tie
            best = np.argmin(distance, axis=1)
            close = distance[np.arange(len(labels)), best] <= max_distance_px
            out[labels.index[close]] = candidates["object_id"].to_numpy()[best[close]]
        return out

    def labels_for(self, objects: pd.DataFrame, max_distance_px: float = MATCH_DISTANCE_PX) -> pd.Series:
        """The label of each object ("" if none), aligned with ``objects``, matched by position (see above)."""
        matched = self.matched_objects(objects, max_distance_px)
        hit = matched >= 0
        mapping = dict(zip(matched[hit].tolist(), self.table["label"].to_numpy()[hit].tolist(), strict=True))
        return objects["object_id"].map(lambda object_id: mapping.get(object_id, "")).astype(str)

    def export_csv(self, path: os.PathLike | str) -> Path:
        """Write the labels to a CSV elsewhere (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            self.table.to_csv(tmp, index=False)
        return path

    def import_csv(self, path: os.PathLike | str, objects: pd.DataFrame, max_distance_px: float = 5.0) -> int:
        """Add labels from a CSV, matched to ``objects`` by frame and nearest centre.

        Matching by position (not id) lets labels made on another run of
        segmentation or tracking be reused. Returns how many were matched.
        """
        incoming = self._read(Path(path))
        matched = _match_by_position(incoming, objects, max_distance_px)
        if matched.empty:
            raise ValueError(f"None of the {len(incoming)} labels in {path} is within {max_distance_px} px of a cell.")
        kept = self.table[~self.table["object_id"].isin(matched["object_id"])]
        self._change(pd.concat([kept, matched[LABEL_COLUMNS]], ignore_index=True) if len(kept) else matched)
        return len(matched)

    def incoming_labels(
        self, incoming: pd.DataFrame, objects: pd.DataFrame, max_distance_px: float = 5.0
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Labels (``t, y, x, label``) matched to ``objects``, and which of them would replace a different label.

        Returns the matched rows (:data:`LABEL_COLUMNS`) and a boolean array, True where the cell already carries
        another label: the caller asks before :meth:`merge` replaces those.
        """
        matched = _match_by_position(incoming, objects, max_distance_px).reset_index(drop=True)
        current = self.labels_for(matched) if len(matched) else pd.Series([], dtype=str)
        clash = ((current != "") & (current != matched["label"].astype(str))).to_numpy()
        return matched, clash

    def merge(self, matched: pd.DataFrame) -> int:
        """Add labels matched by :meth:`incoming_labels` (all, or those kept after asking); returns how many."""
        if matched.empty:
            return 0
        kept = self.table[~self.table["object_id"].isin(matched["object_id"])]
        self._change(pd.concat([kept, matched[LABEL_COLUMNS]], ignore_index=True) if len(kept) else matched)
        return len(matched)

    def import_ground_truth(self, truth: pd.DataFrame, objects: pd.DataFrame, max_distance_px: float = 5.0) -> int:
        """Label cells with the simulator's true ``state`` (matched by position)."""
        incoming = truth.rename(columns={"state": "label"})[["t", "y", "x", "label"]].astype({"label": str})
        matched = _match_by_position(incoming, objects, max_distance_px)
        self._change(matched[LABEL_COLUMNS])
        return len(matched)


def nearest_object(objects: pd.DataFrame, t: int, y: float, x: float, max_distance_px: float) -> pd.DataFrame:
    """The object of frame ``t`` nearest to (y, x), as a one-row table, or an empty table if none is close."""
    frame = objects[objects["t"] == t]
    if frame.empty:
        return frame
    distance = np.hypot(frame["y"].to_numpy() - y, frame["x"].to_numpy() - x)
    best = int(np.argmin(distance))
    return frame.iloc[[best]] if distance[best] <= max_distance_px else frame.iloc[:0]


def _match_by_position(labels: pd.DataFrame, objects: pd.DataFrame, max_distance_px: float) -> pd.DataFrame:
    """Each label row joined with the nearest object of the same frame, if close enough."""
    from scipy.spatial import cKDTree

    found = []
    for t, rows in labels.groupby("t"):
        candidates = objects[objects["t"] == t]
        if candidates.empty:
            continue
        tree = cKDTree(candidates[["y", "x"]].to_numpy())
        distance, index = tree.query(rows[["y", "x"]].to_numpy(), distance_upper_bound=max_distance_px)
        ok = np.isfinite(distance)
        hit = candidates.iloc[index[ok]][["object_id", "track_id", "t", "y", "x"]].reset_index(drop=True)
        found.append(hit.assign(label=rows["label"].to_numpy()[ok]))
    if not found:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    return pd.concat(found, ignore_index=True).drop_duplicates("object_id", keep="last")
