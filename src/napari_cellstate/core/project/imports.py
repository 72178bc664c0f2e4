"""Importing a folder of crops sorted into class-named subfolders (crops made by another tool)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import CropConfig
from ..crops import CropResult, standardise_crops
from ..states import CellState
from .dataset import CropDataset, standard_table, write_crop_dataset
from .folder import Project, open_or_create

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")

__all__ = ["class_label", "import_crop_folder", "read_crop_folder"]


def class_label(folder_name: str) -> str:
    """The label a class folder's crops get: a known state's name if the folder names one, else the name itself.

    Matching ignores case and surrounding spaces, so ``Metaphase`` and ``INTERPHASE `` are the states the heads
    train on; any other name stays a class of its own (trimmed), never dropped.

    >>> class_label(" Metaphase"), class_label("apoptotic")
    ('metaphase', 'apoptotic')
    """
    trimmed = folder_name.strip()
    known = {state.value for state in CellState}
    return trimmed.lower() if trimmed.lower() in known else trimmed


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(image)
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        return np.asarray(image)


def _to_grey(image: np.ndarray, path: Path) -> tuple[np.ndarray, bool]:
    """A 2-D float image, and whether it was colour converted to grey."""
    image = np.squeeze(image)
    converted = False
    if image.ndim == 3 and image.shape[-1] in (2, 3, 4):  # grey+alpha, RGB, RGBA: drop alpha
        channels = image[..., :1] if image.shape[-1] == 2 else image[..., :3]
        if all(np.array_equal(channels[..., 0], channels[..., c]) for c in range(1, channels.shape[-1])):
            image = channels[..., 0]  # grey stored as colour
        else:
            weights = np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray's luminance
            image = channels.astype(np.float64) @ weights
            converted = True
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(
            f"{path} has shape {image.shape}; a crop must be a single 2-D grey (or RGB) image. Save one plane per file."
        )
    if image.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds {image.dtype} pixels, not intensities.")
    return image.astype(np.float32), converted


def _to_size(image: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    rows, cols = image.shape
    if rows != cols:  # pad to a square about the centre, so resizing keeps the aspect ratio
        side = max(rows, cols)
        pad = (
            ((side - rows) // 2, side - rows - (side - rows) // 2),
            ((side - cols) // 2, side - cols - (side - cols) // 2),
        )
        image = np.pad(image, pad, mode="reflect" if min(rows, cols) > 1 else "edge")
    if image.shape[0] != size:
        image = resize(
            image, (size, size), order=1, mode="reflect", anti_aliasing=image.shape[0] > size, preserve_range=True
        )
    return image.astype(np.float32)


def _read_positions(positions_json: os.PathLike | str, files: list[Path], folder: Path) -> tuple[dict, int]:
    """Map image index -> entry; return it and the number of JSON entries that matched no image."""
    path = Path(positions_json)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot read the positions file {path}: {err}.") from err
    if isinstance(raw, list):
        try:
            raw = {str(e.get("file", e.get("filename", e.get("path")))): e for e in raw}
        except AttributeError as err:
            raise ValueError(f"{path}: a list of positions must hold objects with a 'file' key.") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must map image names to {{'t', 'y', 'x'}} objects.")
    by_key: dict[str, list[int]] = {}
    for i, file in enumerate(files):
        relative = file.relative_to(folder).as_posix()
        for key in {relative, file.name, file.stem}:
            by_key.setdefault(key, []).append(i)
    positions: dict[int, dict] = {}
    unmatched = 0
    for key, entry in raw.items():
        key = str(key).replace("\\", "/")
        hits = by_key.get(key, [])
        if not hits:
            unmatched += 1
            continue
        if len(hits) > 1:
            names = [files[i].relative_to(folder).as_posix() for i in hits]
            raise ValueError(f"{path}: the key {key!r} matches several images {names}; use their relative paths.")
        t = entry.get("t", entry.get("frame")) if isinstance(entry, dict) else None
        try:
            values = {"t": int(t), "y": float(entry["y"]), "x": float(entry["x"])}
            if "track_id" in entry:
                values["track_id"] = int(entry["track_id"])
        except (TypeError, KeyError, ValueError) as err:
            raise ValueError(
                f"{path}: the entry for {key!r} is {entry!r}; it needs numbers 't' (or 'frame'), 'y' and 'x'."
            ) from err
        positions[hits[0]] = values
    if raw and unmatched == len(raw):
        raise ValueError(
            f"None of the {len(raw)} entries of {path} matches an image: keys must be an image's path relative to "
            f"{folder} (e.g. 'metaphase/cell_001.png'), its file name or its stem."
        )
    return positions, unmatched


def read_crop_folder(
    folder: os.PathLike | str,
    cfg: CropConfig | None = None,
    *,
    positions_json: os.PathLike | str | None = None,
) -> CropResult:
    """Read single-cell crops sorted into class-named subfolders.

    The layout crop-annotation tools export: ``folder/<class>/<image>``,
    e.g. ``interphase/cell_001.tif`` and ``metaphase/cell_002.png``; TIFF and
    PNG files directly inside each class folder are read (other files and
    deeper folders are ignored). Each image becomes one crop: colour images
    are converted to grey (luminance, as ``skimage.color.rgb2gray``; alpha is
    dropped; grey saved as RGB is kept exactly) and listed in
    ``settings["converted_to_grey"]``; non-square images are reflect-padded to
    a square about their centre; then each is resized to ``cfg.size_px``
    (bilinear, anti-aliased) if needed and standardised and clipped like
    extracted crops. Images are not rescaled to ``cfg.pixel_size_um`` (their
    pixel size is unknown); if set, it is recorded as the crops' pixel size.
    ``cfg.mask_neighbours`` does not apply (there are no labels).

    Parameters
    ----------
    folder : path
        The folder holding one subfolder per class.
    cfg : CropConfig, default=CropConfig()
    positions_json : path, optional
        JSON mapping an image to where it was cut, ``{"metaphase/cell_002.png":
        {"t": 12, "y": 140.5, "x": 88.0}, ...}``; a key may be the path
        relative to ``folder``, the file name or its stem (it must then be
        unique); ``"frame"`` may stand for ``"t"``, and ``"track_id"`` is read
        if given. A list of such objects with a ``"file"`` key works too.
        Images without an entry get ``t`` = -1 and NaN ``y``, ``x``.

    Returns
    -------
    CropResult
        Objects: ``object_id`` 1..N in file order (classes, then files, by
        name), ``label`` = the class folder's label (:func:`class_label`: a
        known state, matched ignoring case and spaces, or the trimmed folder
        name), ``file`` = path relative to ``folder``, ``track_id`` 0 unless
        given, ``crop_at_border`` False. ``settings["class_labels"]`` maps each
        folder name to its label and ``settings["classes"]`` counts crops per
        label.

    Raises
    ------
    ValueError
        The folder is missing, has no class subfolders, a class folder has no
        images, an image cannot be read or is not a 2-D image, or the
        positions file is unreadable or matches no image.
    """
    cfg = CropConfig() if cfg is None else cfg
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"The crop folder {folder} does not exist or is not a folder.")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    example = f"{folder / 'interphase'}/cell_001.tif and {folder / 'metaphase'}/cell_002.png"
    if not classes:
        raise ValueError(
            f"{folder} has no class subfolders: put the crops of each class in a subfolder named after the class, "
            f"e.g. {example}."
        )
    mapping = {c.name: class_label(c.name) for c in classes}
    if not all(mapping.values()):
        raise ValueError(f"A class folder of {folder} has a blank name: rename it after its class.")
    files: list[Path] = []
    labels: list[str] = []
    for class_folder in classes:
        images = sorted(
            p
            for p in class_folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not images:
            raise ValueError(
                f"The class folder {class_folder} holds no TIFF or PNG images: add its crops, or remove the folder."
            )
        files += images
        labels += [class_label(class_folder.name)] * len(images)

    size = cfg.size_px
    crops = np.empty((len(files), size, size), dtype=np.float32)
    converted = []
    for i, file in enumerate(files):
        try:
            raw = _read_image(file)
        except Exception as err:
            raise ValueError(f"Cannot read the image {file} ({err}): replace or remove that file.") from err
        image, was_colour = _to_grey(raw, file)
        if was_colour:
            converted.append(file.relative_to(folder).as_posix())
        crops[i] = _to_size(image, size)
    if cfg.standardise:
        standardise_crops(crops, cfg.clip)

    table = pd.DataFrame(
        {
            "object_id": np.arange(1, len(files) + 1),
            "track_id": 0,
            "t": -1,
            "y": np.nan,
            "x": np.nan,
            "label": labels,
            "file": [f.relative_to(folder).as_posix() for f in files],
        }
    )
    unmatched = 0
    if positions_json is not None:
        positions, unmatched = _read_positions(positions_json, files, folder)
        for i, values in positions.items():
            for name, value in values.items():
                table.loc[i, name] = value
    table = standard_table(table)
    table["crop_at_border"] = False
    settings = {
        "size_px": size,
        "window_px": None,
        "source_pixel_size_um": None,
        "target_pixel_size_um": cfg.pixel_size_um,
        "pixel_size_um": cfg.pixel_size_um,
        "standardise": cfg.standardise,
        "clip": cfg.clip if cfg.standardise else None,
        "mask_neighbours": False,
        "padding": "reflect to square",
        "resize": "bilinear, anti-aliased (skimage.transform.resize, order=1) where the size differs",
        "movie_shape": None,
        "imported_from": str(folder),
        "class_labels": mapping,
        "classes": {label: labels.count(label) for label in dict.fromkeys(mapping.values())},
        "converted_to_grey": converted,
        "positions_unmatched": unmatched,
    }
    return CropResult(crops=crops, objects=table, settings=settings)


def import_crop_folder(
    folder: os.PathLike | str,
    project: Project | os.PathLike | str,
    cfg: CropConfig | None = None,
    *,
    positions_json: os.PathLike | str | None = None,
    source: str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    replace: bool = False,
) -> CropDataset:
    """Make the project's crop dataset from a folder of crops in class-named subfolders.

    Reads the folder with :func:`read_crop_folder` (see there for the layout,
    conversions, class names and the positions file) and writes it with
    :func:`write_crop_dataset`, creating the project if needed and replacing
    any crop dataset of the project (one whose cells carry latents,
    predictions or labels only with ``replace=True``). To
    add the crops to an existing dataset instead, pass the result of
    :func:`read_crop_folder` to :func:`append_crop_dataset`.

    Parameters
    ----------
    folder : path
        One subfolder per class, named after it.
    project : Project or path
    cfg : CropConfig, default=CropConfig()
    positions_json : path, optional
        Where each crop was cut (frame, row, column).
    source : str, optional
        Name recorded in the ``source`` column; default: the folder's name.
    test_fraction : float, default=0.1
    seed : int, default=0
    replace : bool, default=False
        Allow replacing a dataset whose cells carry latents, predictions or labels.

    Returns
    -------
    CropDataset
        Its ``label`` column holds the class labels; ``metadata["sources"][-1]["settings"]`` the mapping.
    """
    result = read_crop_folder(folder, cfg, positions_json=positions_json)
    source = Path(folder).expanduser().absolute().name if source is None else source
    target = project if isinstance(project, Project) else open_or_create(project)
    return write_crop_dataset(
        target,
        result,
        source,
        result.settings["pixel_size_um"],
        test_fraction=test_fraction,
        seed=seed,
        replace=replace,
    )
