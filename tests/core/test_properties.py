"""Property tests (Hypothesis): rules that must hold for every input, not just the examples in other files."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_cellstate.core.project import split_by_track

# Reproducible and quiet: a fixed example sequence, no example database written into the checkout, and no
# deadline (the cores may be shared).
PROPERTY_SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=50)


@st.composite
def objects_tables(draw, min_tracks=0):
    """Objects tables: cells (tracks, several rows each) from one or two movies, plus untracked rows (track 0)."""
    sources = draw(st.sampled_from([["movie"], ["a", "b"]]))
    rows = []
    for track_id in range(1, draw(st.integers(min_tracks, 25)) + 1):
        source = draw(st.sampled_from(sources))
        rows += [(source, track_id)] * draw(st.integers(1, 12))
    rows += [(draw(st.sampled_from(sources)), 0) for _ in range(draw(st.integers(0, 15)))]
    if not rows:
        rows = [(sources[0], 0)]
    order = draw(st.permutations(range(len(rows))))
    table = pd.DataFrame([rows[i] for i in order], columns=["source", "track_id"])
    table["object_id"] = np.arange(len(table))
    # an index that is not 0..n-1, as after filtering a larger table
    table.index = pd.RangeIndex(len(table)) * 3 + 7
    return table


@PROPERTY_SETTINGS
@given(table=objects_tables(), test_fraction=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_no_cell_is_on_both_sides_of_the_split(table, test_fraction, seed):
    split = split_by_track(table, test_fraction, seed)
    assert split.index.equals(table.index)
    assert set(split) <= {"train", "test"}
    tracked = table[table.track_id > 0].assign(split=split)
    sides_per_cell = tracked.groupby(["source", "track_id"])["split"].nunique()
    assert (sides_per_cell == 1).all()


@PROPERTY_SETTINGS
@given(table=objects_tables(), test_fraction=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_the_test_fraction_is_honoured_to_within_one_cell(table, test_fraction, seed):
    split = split_by_track(table, test_fraction, seed)
    cell_sizes = table[table.track_id > 0].groupby(["source", "track_id"]).size()
    largest_cell = max(cell_sizes.max() if len(cell_sizes) else 1, 1)
    # whole cells move together, so the test set can miss the wanted size by at most one cell's rows
    assert abs((split == "test").sum() - test_fraction * len(table)) <= largest_cell


@PROPERTY_SETTINGS
@given(table=objects_tables(), test_fraction=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_the_same_seed_gives_the_same_split(table, test_fraction, seed):
    first = split_by_track(table, test_fraction, seed)
    second = split_by_track(table.copy(), test_fraction, seed)
    assert first.equals(second)


@PROPERTY_SETTINGS
@given(table=objects_tables(min_tracks=8), test_fraction=st.floats(0.2, 0.8))
def test_different_seeds_give_different_splits(table, test_fraction):
    splits = {tuple(split_by_track(table, test_fraction, seed)) for seed in range(5)}
    assert len(splits) > 1
