"""The train/test split, grouped by cell so that no track is on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["split_by_track"]


def split_by_track(objects: pd.DataFrame, test_fraction: float = 0.1, seed: int = 0) -> pd.Series:
    """Assign each row to "train" or "test" so that no cell is on both sides.

    Rows are grouped by (``source``, ``track_id``); an untracked row
    (``track_id`` 0) is a group of its own, identified by its ``object_id``.
    Groups are shuffled with ``seed`` and the first ones go to the test set,
    as many as bring the number of test rows closest to ``test_fraction`` of
    all rows.

    Parameters
    ----------
    objects : DataFrame
        Rows to split; ``source``, ``track_id`` and ``object_id`` are used when present.
    test_fraction : float, default=0.1
        Wanted fraction of rows in the test set, in [0, 1].
    seed : int, default=0
        The same seed and table give the same split.

    Returns
    -------
    Series of str
        "train" or "test", indexed like ``objects``.

    Examples
    --------
    >>> table = pd.DataFrame({"track_id": [1, 1, 2, 2, 3, 0, 0, 0], "object_id": range(8)})
    >>> split_by_track(table, test_fraction=0.25, seed=0).tolist()  # track 3 and untracked object 5 held out
    ['train', 'train', 'train', 'train', 'test', 'test', 'train', 'train']
    """
    if not 0 <= test_fraction <= 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    n = len(objects)
    if n == 0:
        return pd.Series([], index=objects.index, dtype="string", name="split")
    source = objects["source"].astype(str).to_numpy() if "source" in objects.columns else np.full(n, "")
    track = objects["track_id"].to_numpy(dtype=np.int64) if "track_id" in objects.columns else np.zeros(n, np.int64)
    object_id = objects["object_id"].to_numpy(dtype=np.int64) if "object_id" in objects.columns else np.arange(n)
    untracked = track == 0
    keys = pd.DataFrame({"source": source, "untracked": untracked, "id": np.where(untracked, object_id, track)})
    group = keys.groupby(["source", "untracked", "id"], sort=True).ngroup().to_numpy()
    sizes = np.bincount(group)
    order = np.random.default_rng(seed).permutation(len(sizes))
    taken = np.concatenate([[0], np.cumsum(sizes[order])])
    n_test_groups = int(np.argmin(np.abs(taken - test_fraction * n)))
    is_test = np.zeros(len(sizes), dtype=bool)
    is_test[order[:n_test_groups]] = True
    return pd.Series(np.where(is_test[group], "test", "train"), index=objects.index, dtype="string", name="split")


# ---------------------------------------------------------------------------------------------------------------------
