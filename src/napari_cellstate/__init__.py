"""napari-cellstate: interpretable cell-state models from H2B time-lapse movies.

Names load lazily, so ``import napari_cellstate`` is instant and pulls in
neither napari nor torch.
"""

from importlib.metadata import PackageNotFoundError, version

import lazy_loader

try:
    __version__ = version("napari-cellstate")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "core.config": ["CropGeneratorConfig", "ImagingConfig", "SimulationConfig"],
        "core.simulate": ["generate_crops", "iter_simulate_movie", "simulate_movie"],
        "core.track": ["track_objects"],
        "core.io": ["save_simulation"],
    },
)
__all__ = [*__all__, "__version__"]
