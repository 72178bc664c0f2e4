import numpy as np
import pytest
from napari.utils.colormaps.standardize_color import transform_color

from napari_cellstate.core.states import STATE_COLOURS

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_sample_opens_with_movie_labels_and_coloured_cells(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellstate", "synthetic_h2b")
    kinds = {layer.name: type(layer).__name__ for layer in viewer.layers}
    assert kinds == {"synthetic H2B": "Image", "true nuclei": "Labels", "true states": "Points"}

    movie, labels, cells = (viewer.layers[name] for name in kinds)
    assert movie.data.shape == labels.data.shape == (60, 512, 512)
    assert np.allclose(movie.scale[1:], 0.33)
    features = cells.features
    assert {"track_id", "t", "state", "area", "eccentricity", "neighbour_count"} <= set(features.columns)
    assert (features["state"] == "metaphase").sum() >= 40
    metaphase = (features["state"] == "metaphase").to_numpy()
    expected = transform_color([STATE_COLOURS["metaphase"]] * metaphase.sum())
    np.testing.assert_allclose(cells.border_color[metaphase], expected)
    assert (labels.features["index"] == labels.features["track_id"]).all()

    viewer.dims.set_point(0, int(features.loc[metaphase, "t"].iloc[0]))
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.std() > 5, "the canvas should show nuclei, not a blank frame"
