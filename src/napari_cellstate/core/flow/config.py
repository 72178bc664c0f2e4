"""The settings of a whole run, read from one TOML or YAML file with documented defaults.

:func:`default_config_text` writes every setting with its description and default, as TOML; reading that text
back gives :class:`FlowConfig` unchanged, so the printed defaults are the defaults.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import CropConfig, SegmentationConfig, SimulationConfig, TrackingConfig

__all__ = ["STEPS", "FlowConfig", "FlowConfigError", "default_config_text", "read_flow_config"]

#: The steps of a run, in order. ``inputs`` makes the crop dataset (sample movie, movies, or a crop folder).
STEPS = ("inputs", "labels", "vae", "encode", "heads", "symbolic", "audit", "report")


class FlowConfigError(ValueError):
    """A run configuration that cannot be read or says something impossible."""


class _Section(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="forbid")


class MovieInput(_Section):
    """One movie to segment, track and crop."""

    path: str = Field(description="(T, Y, X) movie: .tif/.tiff or .zarr")
    pixel_size_um: float = Field(gt=0, description="pixel size in micrometres")
    labels: str | None = Field(None, description="an existing (T, Y, X) segmentation to use instead of segmenting")
    name: str | None = Field(None, description="name of the movie in the crop dataset (default: the file's stem)")


class SampleInput(_Section):
    """The built-in synthetic movie, with ground truth (labels and scores come from it)."""

    n_frames: int = Field(40, ge=2, description="frames of the sample movie")
    n_cells: int = Field(40, ge=1, description="nuclei in its first frame")
    n_divisions: int = Field(10, ge=0, description="cells of the first frame that divide")
    size_px: int = Field(384, ge=64, description="frame side in px")
    seed: int = Field(0, description="seed of the simulation")

    def simulation(self) -> SimulationConfig:
        """The simulation settings of this sample."""
        return SimulationConfig(
            n_frames=self.n_frames,
            n_cells=self.n_cells,
            n_divisions=self.n_divisions,
            shape_yx=(self.size_px, self.size_px),
            seed=self.seed,
        )


class CropFolderInput(_Section):
    """Crops made elsewhere, imported instead of tracking movies."""

    path: str = Field(description="folder of single-cell crop images")
    positions_json: str | None = Field(None, description="JSON of each crop's t, y, x (optional)")


class InputsStep(_Section):
    """Where the crops come from: the sample, movies, or a folder of crops (one of them)."""

    sample: SampleInput | None = Field(None, description="the built-in synthetic sample")
    movies: list[MovieInput] = Field(default_factory=list, description="movies to segment, track and crop")
    crop_folder: CropFolderInput | None = Field(None, description="import crops instead")
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    crops: CropConfig = Field(default_factory=CropConfig)


class LabelsStep(_Section):
    """Cell labels (interphase/metaphase) for training and testing the heads."""

    csv: str | None = Field(None, description="a labels CSV (t, y, x, label) to import; the sample's truth if unset")


class VAEStep(_Section):
    """The β-TCVAE that encodes the crops."""

    path: str | None = Field(None, description="a saved β-TCVAE (.safetensors + .json); the packaged one if unset")
    finetune_epochs: int = Field(0, ge=0, description="epochs of fine-tuning on the project's train crops (0: none)")
    batch_size: int = Field(256, ge=1, description="fine-tuning batch size")
    learning_rate: float = Field(1e-4, gt=0, description="fine-tuning learning rate")


class EncodeStep(_Section):
    """Encoding every crop into latents."""

    batch_size: int = Field(1024, ge=1, description="crops per forward pass")
    device: str = Field("cpu", description="cpu, cuda or cuda:N")


class HeadsStep(_Section):
    """Schemes 1-3 (Table 1), each trained with several seeds, and the logistic-regression baseline."""

    schemes: list[str] = Field(["cnn", "dense", "sparse"], description="cnn (1), dense (2), sparse (3)")
    seeds: int = Field(3, ge=1, description="models per scheme (the paper trained ten)")
    epochs: int | None = Field(None, ge=1, description="epochs per model (default: each scheme's own)")
    density: float = Field(0.03, gt=0, le=1, description="RigL's fraction of active weights (Scheme 3)")


class SymbolicStep(_Section):
    """Scheme 4: a formula over the sparse head's latents and up to 4 more, distilled from the dense head."""

    enabled: bool = Field(True, description="run Scheme 4 when the symbolic module is installed")
    time_budget_s: float = Field(20.0, gt=0, description="seconds per search (one per seed)")


class AuditStep(_Section):
    """Adversarial attacks and the domain audit of every trained head."""

    max_cells: int = Field(200, ge=2, description="test cells audited at most")
    n_minimal: int = Field(30, ge=0, description="cells searched for their minimal flipping epsilon")
    gallery_cells: int = Field(6, ge=1, description="cells shown in each attack gallery")


class ScaleStep(_Section):
    """Where the per-movie work and encoding run."""

    scheduler: str | None = Field(None, description="address of a dask.distributed scheduler (tcp://host:8786)")
    workers: int = Field(1, ge=1, description="local dask workers when no scheduler is given (1: no dask)")


class FlowConfig(_Section):
    """Everything a run needs: one file, every step's settings."""

    project: str = Field("cellstate-project", description="project folder (created if needed)")
    seed: int = Field(0, description="seed of every step")
    inputs: InputsStep = Field(default_factory=InputsStep)
    labels: LabelsStep = Field(default_factory=LabelsStep)
    vae: VAEStep = Field(default_factory=VAEStep)
    encode: EncodeStep = Field(default_factory=EncodeStep)
    heads: HeadsStep = Field(default_factory=HeadsStep)
    symbolic: SymbolicStep = Field(default_factory=SymbolicStep)
    audit: AuditStep = Field(default_factory=AuditStep)
    scale: ScaleStep = Field(default_factory=ScaleStep)

    def checked(self, base: Path | None = None) -> FlowConfig:
        """The config with relative paths made absolute against ``base``; refuses an input-less run."""
        inputs = self.inputs
        given = [inputs.sample is not None, bool(inputs.movies), inputs.crop_folder is not None]
        if sum(given) != 1:
            raise FlowConfigError(
                "Say where the crops come from with exactly one of [inputs.sample], [[inputs.movies]] or "
                f"[inputs.crop_folder] (this config gives {sum(given)})."
            )
        if base is None:
            return self
        data = self.model_dump(mode="json")

        def absolute(value: str | None) -> str | None:
            return None if value is None else str((base / os.path.expanduser(value)).absolute())

        data["project"] = absolute(data["project"])
        for movie in data["inputs"]["movies"]:
            movie["path"], movie["labels"] = absolute(movie["path"]), absolute(movie["labels"])
        if data["inputs"]["crop_folder"]:
            folder = data["inputs"]["crop_folder"]
            folder["path"], folder["positions_json"] = absolute(folder["path"]), absolute(folder["positions_json"])
        data["labels"]["csv"] = absolute(data["labels"]["csv"])
        data["vae"]["path"] = absolute(data["vae"]["path"])
        return FlowConfig.model_validate(data)


def read_flow_config(path: os.PathLike | str) -> FlowConfig:
    """Read a run configuration (``.toml``, ``.yaml``/``.yml`` or ``.json``); relative paths are from its folder.

    Raises
    ------
    FlowConfigError
        An unreadable file, an unknown setting or a bad value (the message names it).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise FlowConfigError(f"Cannot read the run configuration {path}: {err.strerror or err}.") from err
    try:
        data = _parse(text, path.suffix.lower())
    except ValueError as err:
        raise FlowConfigError(f"{path} is not valid {path.suffix.lstrip('.').upper()}: {err}") from err
    try:
        config = FlowConfig.model_validate(data or {})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise FlowConfigError(
            f"{path}: {problems}. See `napari-cellstate run --print-default-config` for every setting."
        ) from None
    return config.checked(path.parent)


def _parse(text: str, suffix: str) -> Any:
    if suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(str(err)) from err
    if suffix == ".json":
        import json

        return json.loads(text)
    raise ValueError("expected a .toml, .yaml, .yml or .json file")


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # numbers and strings: JSON's forms are TOML's


def _section_lines(model: type[BaseModel], values: dict, name: str) -> list[str]:
    scalars, tables = [], []
    for key, field in model.model_fields.items():
        value = values.get(key)
        kind = field.annotation
        inner = getattr(kind, "__args__", None) or (kind,)
        nested = next((k for k in inner if isinstance(k, type) and issubclass(k, BaseModel)), None)
        note = f"# {field.description}" if field.description else None
        if nested is not None and isinstance(value, dict):
            tables.append(("", nested, value, f"{name}.{key}" if name else key, note))
            continue
        if nested is not None:  # an optional section (or list of them), absent by default: shown commented out
            title = f"{name}.{key}" if name else key
            tables.append(("# ", nested, None, f"[{title}]" if isinstance(value, list) else title, note))
            continue
        if note:
            scalars.append(note)
        scalars.append(f"# {key} = ..." if value is None else f"{key} = {_toml_value(value)}")
    lines = scalars
    for prefix, nested, value, title, note in tables:
        lines += ["", *([note] if note else []), f"{prefix}[{title}]"]
        if value is None:
            lines += [f"# {line}" if line and not line.startswith("#") else line for line in _example_lines(nested)]
        else:
            lines += _section_lines(nested, value, title)
    return lines


def _example_lines(model: type[BaseModel]) -> list[str]:
    lines = []
    for key, field in model.model_fields.items():
        if field.description:
            lines.append(f"# {field.description}")
        default = field.get_default(call_default_factory=True) if not field.is_required() else None
        lines.append(f"{key} = {_toml_value(default)}" if default is not None else f"{key} = ...")
    return lines


def default_config_text() -> str:
    """Every setting of a run with its description and default, as a TOML file to copy and edit."""
    head = [
        "# napari-cellstate run configuration (TOML; YAML with the same keys works too).",
        "# Give exactly one input: [inputs.sample], [[inputs.movies]] (repeat per movie) or [inputs.crop_folder].",
        "# Relative paths are read from this file's folder.",
    ]
    return "\n".join([*head, *_section_lines(FlowConfig, FlowConfig().model_dump(mode="json"), "")]) + "\n"
