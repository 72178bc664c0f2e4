import numpy as np
import pytest
from skimage.draw import ellipse
from skimage.measure import label, regionprops

from napari_cellstate.core.config import CropGeneratorConfig
from napari_cellstate.core.simulate import generate_crops
from napari_cellstate.core.simulate._crops import mask_shape
from napari_cellstate.core.simulate.realism import REAL_CROP_STATISTICS, crop_statistics


@pytest.fixture(scope="module")
def batch():
    return generate_crops(2000, seed=7)


def test_crops_are_balanced_and_shaped(batch):
    assert batch.images.shape == (2000, 64, 64)
    assert batch.images.dtype == np.uint16
    assert batch.labels.sum() == 1000
    assert (batch.factors["state"] == "metaphase").to_numpy().tolist() == (batch.labels == 1).tolist()


def test_factors_separate_the_classes_imperfectly(batch):
    f = batch.factors
    meta, inter = f[batch.labels == 1], f[batch.labels == 0]
    assert meta["area"].median() < 0.6 * inter["area"].median()
    assert meta["eccentricity"].median() > 0.85
    assert meta["brightness"].mean() > 1.3 * inter["brightness"].mean()
    # some metaphase plates are seen end-on (small and round): morphology is not a perfect cue
    assert 0.05 < (meta["eccentricity"] < 0.6).mean() < 0.3


@pytest.mark.slow
def test_crops_look_like_real_crops_in_numbers():
    """Every median of the real-crop table (docs/method.md) lies within the real crops' 10th-90th percentiles."""
    batch = generate_crops(600, seed=3)
    stats = crop_statistics(batch.images)
    for code, (state, real) in enumerate(REAL_CROP_STATISTICS.items()):
        mine = stats[batch.labels == code]
        for column, (_, low, high) in real.items():
            assert low <= mine[column].median() <= high, (state, column, mine[column].median())


@pytest.mark.slow
def test_neighbourhood_shortcut_follows_its_strength():
    """Metaphase crops show fewer neighbours (as real ones do) by as much as the shortcut's strength says."""

    def gap(strength):
        batch = generate_crops(1000, CropGeneratorConfig(neighbour_exclusion_strength=strength), seed=1)
        objects = crop_statistics(batch.images)["objects"]
        return objects[batch.labels == 0].mean() - objects[batch.labels == 1].mean()

    with_shortcut = gap(1.0)
    assert with_shortcut > 0.3
    assert abs(gap(0.0)) < 0.3 * with_shortcut


def test_orientation_factor_matches_what_regionprops_measures(batch):
    f = batch.factors
    errors = []
    for i in np.flatnonzero((f["eccentricity"] > 0.7).to_numpy())[:80]:
        crop = batch.images[i].astype(float)
        mask = label(crop > crop.min() + 0.5 * (np.percentile(crop, 99.5) - crop.min()))
        centre = mask[32, 32] or mask[31, 31]
        if not centre:
            continue
        measured = next(r for r in regionprops(mask) if r.label == centre).orientation
        diff = (measured - f["orientation"].iloc[i] + np.pi / 2) % np.pi - np.pi / 2
        errors.append(abs(diff))
    assert len(errors) > 40
    assert np.median(errors) < 0.2


def test_same_seed_same_crops():
    a, b = generate_crops(50, seed=3), generate_crops(50, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, generate_crops(50, seed=4).images)


def test_bad_count_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        generate_crops(0)


def test_mask_shape_is_what_regionprops_measures():
    rng = np.random.default_rng(0)
    masks = np.zeros((12, 48, 48), bool)
    for mask in masks:
        rr, cc = ellipse(24, 24, rng.uniform(4, 18), rng.uniform(3, 9), shape=mask.shape, rotation=rng.uniform(-3, 3))
        mask[rr, cc] = True
        mask[24 + rng.integers(-12, 12, 30), 24 + rng.integers(-12, 12, 30)] ^= True  # a rough, holed outline
    area, eccentricity, orientation = mask_shape(masks)
    for i, mask in enumerate(masks):
        props = regionprops(mask.astype(int))[0]
        assert area[i] == props.area
        assert eccentricity[i] == pytest.approx(props.eccentricity, abs=1e-9)
        assert orientation[i] == pytest.approx(props.orientation, abs=1e-9)
