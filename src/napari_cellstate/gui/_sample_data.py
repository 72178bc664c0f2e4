"""The "Synthetic H2B time-lapse" sample: movie, true labels, cells coloured by true state."""

from __future__ import annotations

from collections.abc import Generator

from napari.types import LayerDataTuple

from ..core.config import SimulationConfig
from ..core.progress import Progress
from ._layers import cells_layer, labels_layer, movie_layer

SAMPLE_MOVIE = "synthetic H2B"
TRUTH_LAYER = "true states"


def iter_sample_layers(cfg: SimulationConfig | None = None) -> Generator[Progress, None, list[LayerDataTuple]]:
    """Simulate a movie (the default one: about 5 s) and return its three layers, with progress.

    The movie layer records the simulator's settings (``metadata["cellstate_simulation"]``), so a project
    tracked from it can bring the movie back.
    """
    from ..core.simulate import iter_simulate_movie

    cfg = cfg or SimulationConfig()
    result = yield from iter_simulate_movie(cfg)
    px = result.config.pixel_size_um
    movie = movie_layer(result.movie, px, name=SAMPLE_MOVIE)
    movie[1]["metadata"] = {"cellstate_simulation": result.config.model_dump(mode="json")}
    return [
        movie,
        labels_layer(result.labels, result.objects, px, name="true nuclei", id_column="track_id"),
        cells_layer(result.objects, px, name=TRUTH_LAYER, colour_by="state"),
    ]


def make_synthetic_sample() -> list[LayerDataTuple]:
    """Napari's File ▸ Open Sample entry (blocking: the CellState panel's Sample button runs it in a worker)."""
    from ..core.progress import run_to_completion

    return run_to_completion(iter_sample_layers())
