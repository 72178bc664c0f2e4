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

__all__ = ["LABEL_COLUMNS", "LabelStore", "nearest_object"]

LABEL_COLUMNS = ["object_id", "track_id", "t", "y", "x", "label"]
MATCH_DISTANCE_PX = 5.0  # how far a label may sit from the centre of the cell it marks


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
        try:
            table = pd.read_csv(path, dtype={"label": str}, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not a labels CSV ({err}).") from err
        missing = sorted({"t", "y", "x", "label"} - set(table.columns))
        if missing:
            raise ValueError(f"{path} lacks columns {missing}; a labels CSV needs t, y, x and label.")
        for column in ("object_id", "track_id"):
            if column not in table.columns:
                table[column] = 0
        return table[LABEL_COLUMNS]

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
