"""Movie checks: the max projection on every array type, and each damaged or misleading input named as such."""

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_cellstate.core.movie import MovieError, check_label_image, check_movie, max_project_z

STACK = np.random.default_rng(0).integers(0, 1000, size=(3, 4, 16, 16)).astype(np.uint16)


@pytest.mark.parametrize("kind", ["numpy", "zarr", "dask"])
def test_max_project_on_every_array_type(tmp_path, kind):
    if kind == "zarr":
        movie = zarr.create_array(str(tmp_path / "m.zarr"), shape=STACK.shape, chunks=(1, 2, 16, 16), dtype="uint16")
        movie[:] = STACK
    else:
        movie = da.from_array(STACK, chunks=(1, 4, 16, 16)) if kind == "dask" else STACK
    projected = max_project_z(movie)
    assert projected.shape == (3, 16, 16)
    np.testing.assert_array_equal(np.asarray(projected), STACK.max(axis=1))
    with pytest.raises(MovieError, match=r"needs a \(T, Z, Y, X\) movie with 4 axes; got shape \(3, 16, 16\)"):
        max_project_z(STACK[:, 0])


def test_values_too_large_are_not_called_nan():
    movie = np.random.default_rng(0).random((4, 16, 16)) + 1.0
    movie[2, 1, 1] = 1e303
    with pytest.raises(MovieError, match=r"Frame 2 of the movie holds values too large \(1e\+303"):
        check_movie(movie)
    movie[2, 1, 1] = np.inf
    with pytest.raises(MovieError, match="Frame 2 of the movie contains infinite values"):
        check_movie(movie)
    movie[2, 1, 1] = np.nan
    with pytest.raises(MovieError, match="Frame 2 of the movie contains NaN values"):
        check_movie(movie)


def test_every_frame_is_checked_unless_sampling_is_asked_for():
    movie = np.random.default_rng(0).random((30, 16, 16))
    movie[13] = 0.0
    with pytest.raises(MovieError, match="Frame 13 is uniform"):
        check_movie(movie)
    assert check_movie(movie, sample_frames=8) is movie  # frames 0, 4, 8, 12, 16, ...: 13 is not among them


def test_label_images_hold_whole_non_negative_ids():
    labels = np.zeros((2, 16, 16), np.float64)
    labels[1, 4:8, 4:8] = 3.0
    assert check_label_image(labels, (2, 16, 16)) is labels  # whole numbers saved as float are fine
    labels[1, 0, 0] = np.nan
    with pytest.raises(MovieError, match="Frame 1 of the label image contains NaN or infinite values"):
        check_label_image(labels)
    with pytest.raises(MovieError, match=r"ids outside 0 to 2147483647 \(min -2"):
        check_label_image(np.full((1, 16, 16), -2, np.int64))
    with pytest.raises(MovieError, match="are not numbers"):
        check_label_image(np.full((1, 16, 16), "a"))
