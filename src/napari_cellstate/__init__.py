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
        "core.config": [
            "CropConfig",
            "CropGeneratorConfig",
            "ImagingConfig",
            "SegmentationConfig",
            "SimulationConfig",
            "TrackingConfig",
            "TrainConfig",
            "VAEConfig",
        ],
        "core.crops": ["extract_crops", "iter_extract_crops"],
        "core.project": [
            "Project",
            "append_crop_dataset",
            "import_crop_folder",
            "load_crop_dataset",
            "open_or_create",
            "write_crop_dataset",
        ],
        "core.labelling": ["LabelStore"],
        "core.pipeline": ["iter_track_and_crop", "track_and_crop"],
        "core.segment": ["segment_movie", "iter_segment_movie", "detection_scores"],
        "core.track_metrics": ["score_tracking"],
        "core.training": ["iter_train", "select_device", "train"],
        "core.vae": ["BetaTCVAE", "load_vae", "save_vae"],
        "core.vae.fit": ["iter_train_vae", "load_default_vae", "train_vae"],
        "core.vae.encode": ["encode_crops", "encode_project", "iter_encode_project"],
        "core.vae.naming": ["mutual_information_gap", "name_latents"],
        "core.simulate": ["generate_crops", "iter_simulate_movie", "simulate_movie"],
        "core.track": ["track_objects"],
        "core.io": ["read_movie", "save_simulation"],
    },
)
__all__ = [*__all__, "__version__"]
