import numpy as np
import pytest
from pydantic import ValidationError

from napari_cellstate.core.config import SimulationConfig
from napari_cellstate.core.simulate import simulate_movie
from napari_cellstate.core.states import CellState


def test_default_sample_has_the_promised_scale(default_sample):
    movie, objects = default_sample.movie, default_sample.objects
    assert movie.shape == (60, 512, 512)
    assert movie.dtype == np.uint16
    first = objects[objects["t"] == 0]
    assert 75 <= len(first) <= 85
    assert (objects["state"] == "metaphase").sum() >= 40
    assert len(default_sample.lineage) >= 2 * 10  # ten or more divisions seen


def test_interphase_nuclei_have_real_sizes(default_sample):
    """Real interphase nuclei are 10-16.5 um long (10th-90th percentile; docs/method.md real-crop table)."""
    px = default_sample.config.pixel_size_um
    inter = default_sample.objects.query("state == 'interphase'")
    length_um = inter["axis_major_length"] * px
    lo, hi = np.percentile(length_um, [5, 95])
    assert lo > 8.0
    assert hi < 17.0
    aspect = inter["axis_major_length"] / inter["axis_minor_length"]
    assert np.median(aspect) == pytest.approx(1.25, abs=0.2)


def test_metaphase_is_smaller_more_eccentric_and_brighter(default_sample):
    objects = default_sample.objects
    background = np.percentile(default_sample.movie[:, ::8, ::8], 5)
    inter = objects.query("state == 'interphase'")
    meta = objects.query("state == 'metaphase'")
    assert meta["area"].mean() < 0.4 * inter["area"].mean()
    assert meta["eccentricity"].median() > inter["eccentricity"].median() + 0.15
    ratio = (meta["intensity_mean"].mean() - background) / (inter["intensity_mean"].mean() - background)
    assert ratio > 1.3  # real plates stand about 1.6x as far above the background (docs/method.md)


def test_labels_match_the_table(small_sample):
    labels, objects = small_sample.labels, small_sample.objects
    for t in range(labels.shape[0]):
        rows = objects[objects["t"] == t]
        ids, areas = np.unique(labels[t][labels[t] > 0], return_counts=True)
        # every labelled pixel belongs to a listed nucleus: overlaps would create sums of ids
        assert set(ids.tolist()) == set(rows["track_id"].tolist())
        assert dict(zip(ids.tolist(), areas.tolist(), strict=True)) == dict(
            zip(rows["track_id"], rows["area"].astype(int), strict=True)
        )
        compact = rows[rows["state"] != CellState.ANAPHASE.value]  # anaphase centroids lie between plates
        at_centre = labels[t, np.rint(compact["y"]).astype(int), np.rint(compact["x"]).astype(int)]
        assert (at_centre == compact["track_id"].to_numpy()).mean() > 0.97


def test_divisions_form_a_lineage(default_sample):
    objects = default_sample.objects
    spans = objects.groupby("track_id")["t"].agg(["min", "max"])
    children = {}
    for daughter, parent in default_sample.lineage.items():
        children.setdefault(parent, []).append(daughter)
        assert spans.loc[daughter, "min"] == spans.loc[parent, "max"] + 1
        first_state = objects[objects["track_id"] == daughter].sort_values("t")["state"].iloc[0]
        assert first_state == "telophase"
    assert all(len(d) == 2 for d in children.values())
    # a mother passes through the mitotic phases in order
    mother = next(iter(children))
    order = objects[objects["track_id"] == mother].sort_values("t")["state"].astype(str).tolist()
    seen = [s for i, s in enumerate(order) if i == 0 or order[i - 1] != s]
    assert seen[-3:] == ["prometaphase", "metaphase", "anaphase"]


def test_same_seed_same_movie_and_other_seed_differs():
    cfg = SimulationConfig(shape_yx=(128, 128), n_frames=4, n_cells=6, n_divisions=1, seed=11)
    a, b = simulate_movie(cfg), simulate_movie(cfg)
    np.testing.assert_array_equal(a.movie, b.movie)
    np.testing.assert_array_equal(a.labels, b.labels)
    c = simulate_movie(cfg.model_copy(update={"seed": 12}))
    assert not np.array_equal(a.movie, c.movie)


def test_photobleaching_dims_the_movie(default_sample):
    means = default_sample.objects.query("state == 'interphase'").groupby("t")["intensity_mean"].mean()
    assert means.iloc[-5:].mean() < 0.85 * means.iloc[:5].mean()


def test_config_refuses_nonsense():
    with pytest.raises(ValidationError, match="n_frames"):
        SimulationConfig(n_frames=1)
    with pytest.raises(ValidationError, match="neighbour_exclusion_strength"):
        SimulationConfig(neighbour_exclusion_strength=2.0)
    assert SimulationConfig.model_validate_json(SimulationConfig(seed=5).model_dump_json()).seed == 5
