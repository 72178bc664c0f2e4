"""The "Synthetic H2B time-lapse" sample: movie, true labels, cells coloured by true state."""

from __future__ import annotations

from napari.types import LayerDataTuple

from ..core.config import SimulationConfig
from ..core.simulate import simulate_movie
from ._layers import cells_layer, labels_layer, movie_layer


def make_synthetic_sample() -> list[LayerDataTuple]:
    """Simulate the default movie (about 5 s) and return its three layers."""
    result = simulate_movie(SimulationConfig())
    px = result.config.pixel_size_um
    return [
        movie_layer(result.movie, px, name="synthetic H2B"),
        labels_layer(result.labels, result.objects, px, name="true nuclei", id_column="track_id"),
        cells_layer(result.objects, px, name="true states", colour_by="state"),
    ]
