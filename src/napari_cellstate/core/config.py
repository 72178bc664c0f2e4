"""Settings of every step, one pydantic model each, with a JSON round trip.

Physical quantities carry their unit in the name; defaults follow
``docs/method.md`` (pixel size and nucleus sizes of the paper's data).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Activation",
    "CNNConfig",
    "CropConfig",
    "CropGeneratorConfig",
    "HeadConfig",
    "HeadScheme",
    "ImagingConfig",
    "RigLConfig",
    "SegmentationConfig",
    "SimulationConfig",
    "SparsityDistribution",
    "TCEstimator",
    "ThresholdMethod",
    "TrackingConfig",
    "TrainConfig",
    "VAEConfig",
]


# Caps on network sizes, far above anything useful, so that a hostile or mistyped config (a model card, a config
# file) is refused before a giant network is allocated.
MAX_UNITS = 4096  # units of a dense layer
MAX_LAYERS = 16  # hidden layers of a head, conv blocks of an encoder
MAX_CROP_SIZE_PX = 1024


def _bounded_sizes(value: tuple[int, ...], what: str) -> tuple[int, ...]:
    if len(value) > MAX_LAYERS or max(value, default=1) > MAX_UNITS or min(value, default=1) < 1:
        raise ValueError(f"{what} must be at most {MAX_LAYERS} layers of 1 to {MAX_UNITS} units each, got {value}")
    return value


def _power_of_two(value: int) -> int:
    if value & (value - 1):
        raise ValueError(f"crop_size_px must be a power of two (16, 32, 64, 128 ...), got {value}")
    return value


class _Config(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="forbid", frozen=False)


class ImagingConfig(_Config):
    """Microscope and camera model shared by the movie and the crop generator."""

    psf_sigma_um: float = Field(0.4, gt=0, description="Gaussian PSF sigma.")
    photons_per_pixel: float = Field(
        200.0, gt=0, description="Interphase chromatin signal per pixel, before bleaching."
    )
    background_photons: float = Field(250.0, ge=0, description="Out-of-focus background.")
    camera_offset_counts: float = Field(100.0, ge=0, description="Camera bias added to every pixel.")
    read_noise_counts: float = Field(4.0, ge=0, description="Gaussian read noise (std).")
    illumination_falloff: float = Field(
        0.3, ge=0, lt=1, description="Fraction of light lost at the darkest corner (uneven field)."
    )
    bleach_half_life_frames: float = Field(150.0, gt=0, description="Photobleaching half-life.")


class SimulationConfig(_Config):
    """A synthetic H2B time-lapse: scene, cell cycle, motion and imaging."""

    shape_yx: tuple[int, int] = Field((512, 512), description="Frame size (rows, columns) in px.")
    n_frames: int = Field(60, ge=2)
    n_cells: int = Field(80, ge=1, description="Nuclei in the first frame (sets the density).")
    n_divisions: int = Field(16, ge=0, description="Cells of the first frame that divide.")
    pixel_size_um: float = Field(0.33, gt=0)
    frame_interval_s: float = Field(240.0, gt=0)
    cell_cycle_h: float = Field(20.0, gt=0, description="Interphase growth time (area doubles).")
    motility_um: float = Field(0.35, ge=0, description="Random-walk step (std) per frame.")
    drift_um: tuple[float, float] = Field((0.08, 0.05), description="Stage drift per frame (rows, columns).")
    neighbour_exclusion_um: float = Field(
        3.0, ge=0, description="Extra clearance a rounding mitotic cell makes around itself."
    )
    neighbour_exclusion_strength: float = Field(
        1.0, ge=0, le=1, description="0 removes the emptier-neighbourhood shortcut; 1 is full."
    )
    neighbour_radius_um: float = Field(20.0, gt=0, description="Radius for the neighbour count.")
    end_on_plate_fraction: float = Field(0.15, ge=0, le=1, description="Metaphase plates seen end-on.")
    face_on_plate_fraction: float = Field(
        0.12, ge=0, le=1, description="Metaphase plates seen face-on: round, as large as a young nucleus."
    )
    imaging: ImagingConfig = Field(default_factory=ImagingConfig)
    seed: int = 0


class CropGeneratorConfig(_Config):
    """Balanced interphase/metaphase single-cell crops with their generating factors."""

    crop_size: int = Field(64, ge=16, le=MAX_CROP_SIZE_PX, description="Crop side in px.")
    pixel_size_um: float = Field(0.33, gt=0)
    mean_neighbours: float = Field(1.5, ge=0, description="Average neighbours around a cell.")
    neighbour_exclusion_um: float = Field(3.0, ge=0)
    neighbour_exclusion_strength: float = Field(1.0, ge=0, le=1)
    neighbour_radius_um: float = Field(20.0, gt=0)
    end_on_plate_fraction: float = Field(0.08, ge=0, le=1)
    face_on_plate_fraction: float = Field(0.06, ge=0, le=1)
    imaging: ImagingConfig = Field(default_factory=ImagingConfig)


class ThresholdMethod(StrEnum):
    """How nuclei are told from background."""

    OTSU = "otsu"  # one threshold per frame
    LOCAL = "local"  # a threshold per neighbourhood, for uneven illumination


class SegmentationConfig(_Config):
    """Nuclei per frame: smooth, threshold, split touching nuclei, filter by size."""

    pixel_size_um: float = Field(0.33, gt=0)
    smoothing_um: float = Field(0.5, ge=0, description="Gaussian smoothing before thresholding.")
    threshold: ThresholdMethod = ThresholdMethod.OTSU
    local_block_um: float = Field(40.0, gt=0, description="Neighbourhood of the local threshold.")
    threshold_scale: float = Field(
        1.0, gt=0, description="Scales the threshold's height above the background (lower finds dimmer nuclei)."
    )
    split_touching: bool = Field(True, description="Distance-transform watershed between touching nuclei.")
    min_separation_um: float = Field(5.0, gt=0, description="Closest two nucleus centres can be.")
    min_area_um2: float = Field(8.0, ge=0)
    max_area_um2: float = Field(400.0, gt=0)
    fill_holes: bool = True


class CropConfig(_Config):
    """Single-cell crops around each object."""

    size_px: int = Field(64, ge=8, le=MAX_CROP_SIZE_PX, description="Crop side in px (after rescaling).")
    pixel_size_um: float | None = Field(
        None, gt=0, description="Rescale crops to this pixel size; None keeps the movie's."
    )
    standardise: bool = Field(True, description="Subtract the crop mean, divide by its std.")
    clip: float | None = Field(4.0, gt=0, description="Clip standardised values to +-clip.")
    mask_neighbours: bool = Field(False, description="Blank every labelled nucleus but the central one.")


class TrackingConfig(_Config):
    """btrack settings: the packaged cell model unless a user's JSON is given.

    The distances default to multiples of the movie's typical nucleus diameter (the median equivalent diameter of
    the segmented objects), so they hold at any magnification and cell size.
    """

    max_search_radius_um: float | None = Field(
        None, gt=0, description="How far a cell may move between frames; None: 1.5 nucleus diameters."
    )
    recover_divisions: bool = Field(True, description="Split tracks where a sister appears beside them.")
    division_radius_um: float | None = Field(
        None, gt=0, description="How close a new track must start to split another one; None: 1.5 nucleus diameters."
    )
    config_path: str | None = Field(None, description="A btrack JSON configuration replacing the packaged one.")
    verbose: bool = Field(False, description="Show btrack's and the optimiser's console output.")


class TCEstimator(StrEnum):
    """How the β-TCVAE estimates log q(z) from a minibatch (Chen et al. 2018)."""

    MWS = "mws"  # minibatch-weighted sampling
    MSS = "mss"  # minibatch-stratified sampling


class VAEConfig(_Config):
    """The β-TCVAE: architecture and loss weights (α·MI + β·TC + γ·dimension-wise KL)."""

    crop_size_px: int = Field(64, ge=16, le=MAX_CROP_SIZE_PX, description="Input crop side; a power of two.")
    n_latents: int = Field(32, ge=1, le=MAX_UNITS)
    channels: tuple[int, ...] = Field((8, 16, 32, 64), description="Filters of each encoder block.")
    dense_units: int = Field(256, ge=1, le=MAX_UNITS)
    alpha: float = Field(1.0, ge=0, description="Weight of the index-code mutual information.")
    beta: float = Field(6.0, ge=0, description="Weight of the total correlation.")
    gamma: float = Field(1.0, ge=0, description="Weight of the dimension-wise KL.")
    estimator: TCEstimator = Field(
        TCEstimator.MSS,
        description="MSS is unbiased; MWS is a lower bound whose MI/TC/DWKL carry constant log N offsets.",
    )
    input_noise: float = Field(
        0.0,
        ge=0,
        description="Std of Gaussian noise added to each training crop the encoder sees (standardised units); the "
        "decoder still reconstructs the clean crop, so the encoder learns to ignore pixel noise (denoising).",
    )

    _power_of_two = field_validator("crop_size_px")(_power_of_two)

    @field_validator("channels")
    @classmethod
    def _positive_channels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError(f"channels must be one or more positive filter counts, got {value}")
        return _bounded_sizes(value, "channels")


class TrainConfig(_Config):
    """One training loop for every model: the VAE, the heads and the CNN."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=1, description="Global batch (split across processes under torchrun).")
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    mixed_precision: bool = Field(True, description="bfloat16 autocast on CUDA; ignored on CPU.")
    checkpoint_every_epochs: int = Field(1, ge=1)


class HeadScheme(StrEnum):
    """The paper's classification schemes (Scheme 4, symbolic, is distilled from Scheme 3)."""

    CNN = "cnn"  # Scheme 1: a CNN reduces the crop to 32 numbers, then the dense head
    DENSE = "dense"  # Scheme 2: the dense head on the β-TCVAE latents
    SPARSE = "sparse"  # Scheme 3: the same head topology trained sparse with RigL

    @property
    def number(self) -> int:
        """The scheme's number in the paper's Table 1."""
        return list(HeadScheme).index(self) + 1


class Activation(StrEnum):
    """Activation of the head's hidden units."""

    SILU = "silu"
    RELU = "relu"
    TANH = "tanh"
    ELU = "elu"


class HeadConfig(_Config):
    """A head: an MLP from ``n_inputs`` features to one score f(x); f(x) >= 0 means metaphase."""

    n_inputs: int = Field(32, ge=1, le=MAX_UNITS, description="Latents (Schemes 2-3) or CNN features (Scheme 1).")
    hidden: tuple[int, ...] = Field((16, 16, 16), description="Units of each hidden layer.")
    activation: Activation = Activation.SILU

    @field_validator("hidden")
    @classmethod
    def _positive_units(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _bounded_sizes(value, "hidden")


class CNNConfig(_Config):
    """Scheme 1's image encoder: conv blocks, then a dense layer to the head's inputs."""

    crop_size_px: int = Field(64, ge=16, le=MAX_CROP_SIZE_PX)
    channels: tuple[int, ...] = Field((8, 16, 32, 64), description="Filters of each conv block (each pools 2x).")

    _power_of_two = field_validator("crop_size_px")(_power_of_two)
    _bounded_channels = field_validator("channels")(lambda value: _bounded_sizes(value, "channels"))


class SparsityDistribution(StrEnum):
    """How RigL spreads the active weights over the layers (Evci et al. 2020)."""

    UNIFORM = "uniform"  # the same density in every layer
    ERK = "erk"  # Erdős-Rényi-Kernel: density proportional to (fan_in + fan_out) / (fan_in * fan_out)


class RigLConfig(_Config):
    """RigL sparse training (Scheme 3); defaults follow the reference implementation."""

    density: float = Field(0.03, gt=0, le=1, description="Fraction of the head's weights kept active.")
    distribution: SparsityDistribution = SparsityDistribution.ERK
    update_every_steps: int = Field(100, ge=1, description="ΔT: steps between connectivity updates.")
    end_fraction: float = Field(0.75, gt=0, le=1, description="T_end as a fraction of the sparse training steps.")
    drop_fraction: float = Field(0.3, gt=0, lt=1, description="α: the cosine schedule's initial drop fraction.")
    warmup_epochs: int = Field(
        2, ge=0, description="Dense epochs before the network is made sparse (at least update_every_steps steps)."
    )
    prune: bool = Field(True, description="Prune connections and units the trained network does not need.")
    prune_tolerance: float = Field(
        0.01, ge=0, le=1, description="Training-set balanced accuracy pruning may give up (0: none)."
    )
