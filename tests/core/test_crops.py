import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import binary_dilation
from skimage.measure import label as connected_components
from skimage.transform import resize

from napari_cellstate.core.config import CropConfig
from napari_cellstate.core.crops import extract_crops, iter_extract_crops
from napari_cellstate.core.objects import validate_objects

RAW = CropConfig(standardise=False)


@pytest.fixture(scope="module")
def sample(small_sample):
    return small_sample


@pytest.fixture(scope="module")
def objects(small_sample):
    return validate_objects(small_sample.objects.assign(object_id=small_sample.objects.track_id))


def reference_crop(movie, labels, row, cfg: CropConfig, pixel_size_um=None):
    """One crop the slow, obvious way: pad, slice, mask, resize, standardise."""
    size = cfg.size_px
    window = size if cfg.pixel_size_um is None else round(size * cfg.pixel_size_um / pixel_size_um)
    half = window // 2
    t, cy, cx = int(row.t), round(row.y), round(row.x)
    frame = np.pad(movie[t].astype(np.float64), half, mode="reflect")
    crop = frame[cy : cy + window, cx : cx + window].copy()
    if cfg.mask_neighbours:
        lab = np.pad(labels[t], half, mode="reflect")[cy : cy + window, cx : cx + window]
        neighbour = (lab != 0) & (lab != row.object_id)
        crop[neighbour] = np.median(crop[lab == 0])
    if window != size:
        crop = resize(crop, (size, size), order=1, mode="reflect", anti_aliasing=window > size, preserve_range=True)
    if cfg.standardise:
        crop = (crop - crop.mean()) / crop.std()
        if cfg.clip is not None:
            crop = np.clip(crop, -cfg.clip, cfg.clip)
    return crop


def test_crop_is_centred_on_the_object(sample, objects):
    res = extract_crops(sample.movie, objects, RAW)
    assert res.crops.shape == (len(objects), 64, 64)
    assert res.crops.dtype == np.float32
    t = objects.t.to_numpy()
    cy, cx = np.rint(objects.y).astype(int), np.rint(objects.x).astype(int)
    np.testing.assert_array_equal(res.crops[:, 32, 32], sample.movie[t, cy, cx])
    # and the whole window is the movie's pixels, for an object well inside the frame
    inside = np.flatnonzero(~res.objects.crop_at_border.to_numpy())[0]
    r = objects.iloc[inside]
    window = sample.movie[r.t, round(r.y) - 32 : round(r.y) + 32, round(r.x) - 32 : round(r.x) + 32]
    np.testing.assert_array_equal(res.crops[inside], window)


def test_result_keeps_the_rows_their_order_and_index(sample, objects):
    shuffled = objects.sample(frac=1.0, random_state=1)
    res = extract_crops(sample.movie, shuffled, RAW)
    ordered = extract_crops(sample.movie, objects, RAW)
    pd.testing.assert_index_equal(res.objects.index, shuffled.index)
    pd.testing.assert_frame_equal(res.objects.drop(columns="crop_at_border"), shuffled)
    np.testing.assert_array_equal(res.crops, ordered.crops[objects.index.get_indexer(shuffled.index)])
    assert "crop_at_border" not in objects.columns  # the input is not modified


def test_border_objects_are_flagged_and_reflect_padded(sample):
    height = sample.movie.shape[1]
    objects = pd.DataFrame({"t": [0, 0, 0, 3], "y": [3.0, 128.0, 128.2, height - 1.0], "x": [100.0, 128.0, 40.0, 5.0]})
    res = extract_crops(sample.movie, objects, RAW)
    assert res.objects.crop_at_border.tolist() == [True, False, False, True]
    crop, frame = res.crops[0], sample.movie[0].astype(np.float32)
    # object row 3 sits at crop row 32, so frame row 0 is crop row 29 and the rows above mirror the frame
    np.testing.assert_array_equal(crop[29], frame[0, 68:132])
    for k in range(1, 30):
        np.testing.assert_array_equal(crop[29 - k], frame[k, 68:132])
    # bottom-left corner: mirrored in both directions
    corner = res.crops[3]
    last = height - 1
    np.testing.assert_array_equal(corner[32, 27], sample.movie[3, last, 0])
    np.testing.assert_array_equal(corner[33, 26], sample.movie[3, last - 1, 1])


def test_border_flag_matches_the_window(sample, objects):
    res = extract_crops(sample.movie, objects, RAW)
    cy, cx = np.rint(objects.y).astype(int), np.rint(objects.x).astype(int)
    expected = (cy < 32) | (cx < 32) | (cy + 32 > 256) | (cx + 32 > 256)
    np.testing.assert_array_equal(res.objects.crop_at_border.to_numpy(), expected.to_numpy())
    assert res.objects.crop_at_border.dtype == bool
    assert 0 < expected.sum() < len(objects)


def test_standardised_crops_have_zero_mean_unit_std_and_respect_the_clip(sample, objects):
    unclipped = extract_crops(sample.movie, objects, CropConfig(clip=None)).crops.astype(np.float64)
    np.testing.assert_allclose(unclipped.mean(axis=(1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(unclipped.std(axis=(1, 2)), 1, atol=1e-4)
    assert np.abs(unclipped).max() > 4  # bright nuclei on dark background exceed 4 std somewhere

    res = extract_crops(sample.movie, objects, CropConfig(clip=4.0))
    assert np.abs(res.crops).max() <= 4.0
    assert np.isclose(np.abs(res.crops).max(), 4.0)
    assert res.settings["clip"] == 4.0
    assert res.settings["standardise"] is True


def test_uniform_crop_standardises_to_zeros_not_nan():
    movie = np.full((1, 80, 80), 7, dtype=np.uint16)
    res = extract_crops(movie, pd.DataFrame({"t": [0], "y": [40.0], "x": [40.0]}), CropConfig(size_px=16))
    assert np.isfinite(res.crops).all()
    assert (res.crops == 0).all()


def _neighbours_in_window(labels, objects, size=64):
    half = size // 2
    hits = []
    for i, row in enumerate(objects.itertuples()):
        cy, cx = round(row.y), round(row.x)
        if half <= cy < labels.shape[1] - half and half <= cx < labels.shape[2] - half:
            window = labels[row.t, cy - half : cy + half, cx - half : cx + half]
            if ((window != 0) & (window != row.object_id)).sum() > 100:
                hits.append(i)
    return hits


def test_mask_neighbours_removes_neighbours_and_keeps_the_central_nucleus(sample, objects):
    with_neighbours = _neighbours_in_window(sample.labels, objects)
    assert len(with_neighbours) > 10
    picked = objects.iloc[with_neighbours]
    raw = extract_crops(sample.movie, picked, RAW)
    masked = extract_crops(sample.movie, picked, RAW.model_copy(update={"mask_neighbours": True}), labels=sample.labels)
    assert masked.settings["mask_neighbours"] is True
    ratios = []
    for i, row in enumerate(picked.itertuples()):
        cy, cx = round(row.y), round(row.x)
        window = sample.labels[row.t, cy - 32 : cy + 32, cx - 32 : cx + 32]
        own, neighbour, background = window == row.object_id, (window != 0) & (window != row.object_id), window == 0
        # the central nucleus is untouched
        np.testing.assert_array_equal(masked.crops[i][own], raw.crops[i][own])
        # the neighbours' signal is gone: they now read as the crop's background level
        np.testing.assert_allclose(masked.crops[i][neighbour], np.median(raw.crops[i][background]))
        # so the brightest pixel away from the central nucleus (and its 3 px blur halo) is dimmer
        away = ~binary_dilation(own, iterations=3)
        ratios.append(masked.crops[i][away].max() / raw.crops[i][away].max())
    assert max(ratios) < 1
    assert np.median(ratios) < 0.8


def test_mask_neighbours_then_standardise_matches_reference(sample, objects):
    picked = objects.iloc[_neighbours_in_window(sample.labels, objects)[:5]]
    cfg = CropConfig(mask_neighbours=True)
    res = extract_crops(sample.movie, picked, cfg, labels=sample.labels)
    for i, row in enumerate(picked.itertuples()):
        expected = reference_crop(sample.movie, sample.labels, row, cfg)
        np.testing.assert_allclose(res.crops[i], expected, atol=1e-4)


@pytest.mark.parametrize(
    "cfg",
    [
        CropConfig(),
        CropConfig(standardise=False),
        CropConfig(size_px=32, clip=None),
        CropConfig(size_px=48, pixel_size_um=0.66),  # downscale: window 96 px
        CropConfig(size_px=64, pixel_size_um=0.2),  # upscale: window 39 px
    ],
)
def test_vectorised_path_equals_per_crop_reference(sample, objects, cfg):
    border = extract_crops(sample.movie, objects, RAW).objects.crop_at_border.to_numpy()
    rows = [*np.flatnonzero(border)[:3], *np.flatnonzero(~border)[:3]]
    picked = objects.iloc[rows]
    res = extract_crops(sample.movie, picked, cfg, pixel_size_um=0.33)
    for i, row in enumerate(picked.itertuples()):
        expected = reference_crop(sample.movie, sample.labels, row, cfg, pixel_size_um=0.33)
        scale = 1.0 if cfg.standardise else float(np.abs(expected).max())
        np.testing.assert_allclose(res.crops[i], expected, atol=2e-4 * scale)


def test_rescaling_to_twice_the_pixel_size_halves_the_nucleus(sample, objects):
    inside = objects[(objects.y.between(70, 186)) & (objects.x.between(70, 186)) & (objects.area > 150)].head(25)
    mask_movie = (sample.labels > 0).astype(np.float32) * 100
    native = extract_crops(mask_movie, inside, RAW, pixel_size_um=0.33)
    coarse = extract_crops(mask_movie, inside, RAW.model_copy(update={"pixel_size_um": 0.66}), pixel_size_um=0.33)
    assert coarse.settings["window_px"] == 128
    assert coarse.settings["pixel_size_um"] == pytest.approx(0.66)

    def central_area(crop):
        parts = connected_components(crop > 50)
        centre = parts[31:34, 31:34].max()
        assert centre > 0
        return (parts == centre).sum()

    ratios = [central_area(c) / central_area(n) for c, n in zip(coarse.crops, native.crops, strict=True)]
    assert np.median(ratios) == pytest.approx(0.25, abs=0.04)  # half the size: a quarter of the area


def test_dask_and_zarr_movies_give_the_same_crops(sample, objects, tmp_path):
    import dask.array as da
    import zarr

    expected = extract_crops(sample.movie, objects, CropConfig()).crops
    lazy = da.from_array(sample.movie, chunks=(1, 128, 128))
    np.testing.assert_array_equal(extract_crops(lazy, objects, CropConfig()).crops, expected)
    store = zarr.create_array(tmp_path / "movie.zarr", shape=sample.movie.shape, chunks=(1, 256, 256), dtype="uint16")
    store[:] = sample.movie
    np.testing.assert_array_equal(extract_crops(store, objects, CropConfig()).crops, expected)


def test_progress_reports_each_frame(sample, objects):
    steps = iter_extract_crops(sample.movie, objects, CropConfig())
    events = []
    while True:
        try:
            events.append(next(steps))
        except StopIteration as stop:
            result = stop.value
            break
    n_frames = objects.t.nunique()
    assert [e.step for e in events] == list(range(1, n_frames + 1))
    assert {e.total for e in events} == {n_frames}
    assert len(result.crops) == len(objects)


def test_no_objects_give_no_crops(sample, objects):
    res = extract_crops(sample.movie, objects.iloc[:0], CropConfig())
    assert res.crops.shape == (0, 64, 64)
    assert len(res.objects) == 0


def test_mask_neighbours_without_labels_is_refused(sample, objects):
    with pytest.raises(ValueError, match="needs the label image"):
        extract_crops(sample.movie, objects, CropConfig(mask_neighbours=True))


def test_mask_neighbours_with_labels_of_another_shape_is_refused(sample, objects):
    with pytest.raises(ValueError, match=r"labels of the movie's shape \(24, 256, 256\)"):
        extract_crops(sample.movie, objects, CropConfig(mask_neighbours=True), labels=sample.labels[:, :128])


def test_mask_neighbours_without_object_ids_is_refused(sample):
    assert "object_id" not in sample.objects.columns  # ground truth has track ids only
    with pytest.raises(ValueError, match="object_id"):
        extract_crops(sample.movie, sample.objects, CropConfig(mask_neighbours=True), labels=sample.labels)


def test_objects_in_frames_outside_the_movie_are_named(sample, objects):
    bad = objects.copy()
    bad.loc[bad.index[5], "t"] = 24
    bad.loc[bad.index[9], "t"] = -1
    with pytest.raises(ValueError, match=r"2 object\(s\) refer to frames outside the movie") as err:
        extract_crops(sample.movie, bad, CropConfig())
    assert f"row {bad.index[5]} (t=24)" in str(err.value)
    assert f"row {bad.index[9]} (t=-1)" in str(err.value)


def test_objects_centred_outside_the_frame_are_refused(sample):
    with pytest.raises(ValueError, match="no valid x position"):
        extract_crops(sample.movie, pd.DataFrame({"t": [0], "y": [10.0], "x": [300.0]}), CropConfig())
    with pytest.raises(ValueError, match="no valid y position"):
        extract_crops(sample.movie, pd.DataFrame({"t": [0], "y": [np.nan], "x": [3.0]}), CropConfig())


def test_rescaling_needs_the_movies_pixel_size(sample, objects):
    with pytest.raises(ValueError, match="the movie's pixel size is needed"):
        extract_crops(sample.movie, objects, CropConfig(pixel_size_um=0.5))


def test_a_single_frame_is_not_a_movie(sample, objects):
    with pytest.raises(ValueError, match=r"\(T, Y, X\) movie"):
        extract_crops(sample.movie[0], objects, CropConfig())


def test_streamed_crops_equal_the_kept_ones_and_need_frame_order(sample, objects):
    from napari_cellstate.core.progress import run_to_completion

    cfg = CropConfig(size_px=32)
    kept = extract_crops(sample.movie, objects, cfg)
    blocks = []
    streamed = run_to_completion(iter_extract_crops(sample.movie, objects, cfg, sink=blocks.append))
    assert streamed.crops is None  # nothing kept in memory
    assert max(len(b) for b in blocks) <= objects["t"].value_counts().max()  # one frame at a time
    np.testing.assert_array_equal(np.concatenate(blocks), kept.crops)
    with pytest.raises(ValueError, match="sorted by frame"):
        run_to_completion(iter_extract_crops(sample.movie, objects.iloc[::-1], cfg, sink=blocks.append))
