"""Fault injection on model files and user inputs: nothing lost, nothing silently wrong.

Each case damages something a user could hand napari-cellstate (a model file cut short or edited, a hostile
card, a labels CSV with conflicting rows, a crop size larger than the frame, a NaN label image, a truncated
TIFF, ...) or kills a process while it saves a model (``kill -9`` at a random moment), then checks the
invariant: either the old complete model or the new complete model is on disk, and every read either returns
correct data or refuses with a clear message (a ``ValueError`` subclass naming the problem).

Outcomes: ``correct`` (right data), ``clear refusal``, ``silent wrong`` (wrong data, no error: goal 0),
``data lost`` (the previous model unreadable after a failed save: goal 0) and ``unclear error`` (an exception that
is not a ValueError, or a message not naming the problem: goal 0).

The case list is a plain structure, ``CASES`` (fast) and ``KILL_CASES`` (subprocesses killed while saving), each
a list of ``(name, function)`` where ``function(folder: Path) -> Outcome``; ``tests/core/test_faults_models.py``
runs the same list. Run: python benchmarks/faults_models.py [--kills N]
"""

from __future__ import annotations

import argparse
import enum
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


class Outcome(enum.Enum):
    """What a case ended in; only the first two keep the invariant."""

    CORRECT = "correct"
    CLEAR_REFUSAL = "clear refusal"
    SILENT_WRONG = "silent wrong"
    DATA_LOST = "data lost"
    UNCLEAR_ERROR = "unclear error"


GOOD = (Outcome.CORRECT, Outcome.CLEAR_REFUSAL)


def refused(action: Callable[[], object], *patterns: str) -> Outcome:
    """CLEAR_REFUSAL if ``action`` raises a ValueError whose message matches every regex; SILENT_WRONG if it
    returns; UNCLEAR_ERROR for any other exception or a message missing a pattern (shown on stderr)."""
    try:
        action()
    except ValueError as err:
        message = str(err)
        missing = [p for p in patterns if not re.search(p, message)]
        if not missing and "Traceback" not in message:
            return Outcome.CLEAR_REFUSAL
        print(f"  unclear: {message!r} lacks {missing}", file=sys.stderr)
        return Outcome.UNCLEAR_ERROR
    except Exception as err:  # any other exception is what this benchmark counts as unclear
        print(f"  unclear: {type(err).__name__}: {err}", file=sys.stderr)
        return Outcome.UNCLEAR_ERROR
    return Outcome.SILENT_WRONG


# --- model files -----------------------------------------------------------------------------------------------


def _head(seed: int = 0):
    from napari_cellstate.core.config import HeadConfig
    from napari_cellstate.core.heads import MLPHead

    torch.manual_seed(seed)
    return MLPHead(HeadConfig(n_inputs=8, hidden=(6, 5)))


def _saved_head(folder: Path) -> Path:
    from napari_cellstate.core.heads import save_head

    return save_head(folder / "head", _head(), {"scheme": "dense"})


def _rewrite(path: Path, state=None, **changes) -> None:
    """Rewrite the card inside a model (and optionally its tensors, rehashed): a hand-edited but consistent file."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from napari_cellstate.core.model_files import tensors_sha256

    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    card = json.loads(metadata["card"])
    if state is not None:
        card["weights"]["tensors_sha256"] = tensors_sha256(state)
    card.update(changes)
    save_file(load_file(path) if state is None else state, path, metadata={**metadata, "card": json.dumps(card)})


def _load_head(path: Path):
    from napari_cellstate.core.heads import load_head

    return lambda: load_head(path)


def truncated_model(folder: Path) -> Outcome:
    path = _saved_head(folder)
    data = path.read_bytes()
    outcomes = []
    for keep in (0, 8, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:keep])
        outcomes.append(refused(_load_head(path), r"not a readable safetensors file \(truncated or corrupted\?\)"))
    return _worst(outcomes)


def flipped_byte_in_weights(folder: Path) -> Outcome:
    path = _saved_head(folder)
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x10
    path.write_bytes(bytes(data))
    return refused(_load_head(path), r"SHA-256 mismatch")


def card_without_hash(folder: Path) -> Outcome:
    path = _saved_head(folder)
    _rewrite(path, weights={"file": path.name})
    return refused(_load_head(path), r"has no valid weights\.tensors_sha256")


def weights_of_another_model(folder: Path) -> Outcome:
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = _saved_head(folder)
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    other = {k: v.clone() for k, v in _head(seed=1).state_dict().items()}
    save_file(other, path, metadata=metadata)  # other weights under the old card
    return refused(_load_head(path), r"SHA-256 mismatch")


def nan_weights_in_file(folder: Path) -> Outcome:
    path = _saved_head(folder)
    state = {k: v.clone() for k, v in _head().state_dict().items()}
    state["layers.2.weight"][0, 0] = float("nan")
    _rewrite(path, state=state)
    return refused(_load_head(path), r"hold NaN or infinite values")


def nan_weights_at_save(folder: Path) -> Outcome:
    from napari_cellstate.core.heads import load_head, save_head

    path = _saved_head(folder)
    broken = _head(seed=1)
    with torch.no_grad():
        broken.layers[0].weight.fill_(float("inf"))
    outcome = refused(lambda: save_head(path, broken), r"hold NaN or infinite values .* previous model")
    kept, _ = load_head(path)
    same = all(
        torch.equal(a, b) for a, b in zip(kept.state_dict().values(), _head().state_dict().values(), strict=True)
    )
    return outcome if same else Outcome.DATA_LOST


def giant_hidden_layers(folder: Path) -> Outcome:
    path = _saved_head(folder)
    _rewrite(path, config={"n_inputs": 8, "hidden": [20000, 20000], "activation": "silu"})
    return refused(_load_head(path), r"invalid head config.*at most 16 layers of 1 to 4096 units")


def giant_network_within_each_bound(folder: Path) -> Outcome:
    path = _saved_head(folder)
    _rewrite(path, config={"n_inputs": 8, "hidden": [4096] * 8, "activation": "silu"})
    return refused(_load_head(path), r"asks for [\d,]+ parameters, more than")


def deeply_nested_card(folder: Path) -> Outcome:
    path = _saved_head(folder)
    _rewrite(path, metrics=json.loads("[" * 900 + "]" * 900))
    return refused(_load_head(path), r"nests 90\d levels deep")


def card_not_json(folder: Path) -> Outcome:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = _saved_head(folder)
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    save_file(load_file(path), path, metadata={**metadata, "card": "epochs: 3"})
    return refused(_load_head(path), r"not valid JSON")


def version_1_model_read(folder: Path) -> Outcome:
    """A format version 1 pair (card beside the weights) still loads, with the same weights."""
    import hashlib

    from safetensors.torch import save_file

    from napari_cellstate.core.heads import load_head

    head = _head()
    path = folder / "old.safetensors"
    save_file(head.state_dict(), path, metadata={"format": "napari-cellstate model", "architecture": "mlp-head"})
    card = {
        "format": "napari-cellstate model",
        "format_version": 1,
        "architecture": "mlp-head",
        "config": head.cfg.model_dump(mode="json"),
        "weights": {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
    }
    path.with_suffix(".json").write_text(json.dumps(card))
    loaded, _ = load_head(path)
    x = torch.randn(5, 8)
    right = torch.equal(loaded(x), head.eval()(x))
    card["weights"].pop("sha256")
    path.with_suffix(".json").write_text(json.dumps(card))
    refusal = refused(lambda: load_head(path), r"old\.json has no valid weights\.sha256")
    return refusal if right else Outcome.SILENT_WRONG


def nan_encoder_output(folder: Path) -> Outcome:
    from napari_cellstate.core.config import VAEConfig
    from napari_cellstate.core.vae import BetaTCVAE
    from napari_cellstate.core.vae.encode import encode_crops

    model = BetaTCVAE(VAEConfig(crop_size_px=16, n_latents=2, channels=(4,), dense_units=8))
    with torch.no_grad():
        model.mu_head.bias.fill_(float("nan"))
    crops = np.random.default_rng(0).normal(size=(6, 16, 16)).astype(np.float32)
    return refused(lambda: encode_crops(model, crops), r"latents the VAE produced: 6 of 6 rows hold NaN")


# --- user inputs -------------------------------------------------------------------------------------------------


LABEL_CSVS = {
    "cut short": "object_id,track_id,t,y,x,label\n1,1,0,5,6,metaphase\n2,1,1,5,6,metaph",
    "missing field": "object_id,track_id,t,y,x,label\n1,1,0,5,6,metaphase\n2,1,1,5\n",
    "conflicting rows": "object_id,track_id,t,y,x,label\n1,1,0,5,6,metaphase\n1,1,0,5,6,interphase\n",
    "capitalised class": "t,y,x,label\n0,5,6,Metaphase\n",
    "padded class": "t,y,x,label\n0,5,6, metaphase\n",
    "bad number": "t,y,x,label\n0,5,nan,metaphase\n",
    "binary": "\x00\x01\x02",
}


def hostile_labels_csv(folder: Path) -> Outcome:
    from napari_cellstate.core.labelling import LabelStore

    outcomes = []
    for name, text in LABEL_CSVS.items():
        path = folder / f"{name}.csv"
        path.write_text(text)
        outcomes.append(refused(lambda path=path: LabelStore(path), r"labels CSV|refused|cut short"))
        if path.read_text() != text:  # a refused file is never rewritten
            return Outcome.DATA_LOST
    return _worst(outcomes)


def giant_crop_size(folder: Path) -> Outcome:
    from napari_cellstate.core.config import CropConfig
    from napari_cellstate.core.crops import check_crop_window

    too_big = refused(lambda: CropConfig(size_px=4096), r"less than or equal to 1024")
    larger_than_frame = refused(lambda: check_crop_window(CropConfig(size_px=512), (256, 300)), r"at most 256 px")
    return _worst([too_big, larger_than_frame])


def bad_label_images(folder: Path) -> Outcome:
    from napari_cellstate.core.movie import check_label_image

    nan = np.zeros((2, 32, 32), np.float32)
    nan[1, 3, 3] = np.nan
    fractional = np.full((2, 32, 32), 0.5)
    negative = np.full((2, 32, 32), -1, np.int32)
    return _worst(
        [
            refused(lambda: check_label_image(nan), r"Frame 1 of the label image contains NaN"),
            refused(lambda: check_label_image(fractional), r"fractional ids"),
            refused(lambda: check_label_image(negative), r"ids outside 0 to"),
            refused(lambda: check_label_image(np.zeros((3, 32, 32), np.int32), (2, 32, 32)), r"shape"),
        ]
    )


def _movie(n_frames: int = 12) -> np.ndarray:
    return np.random.default_rng(0).poisson(100, size=(n_frames, 32, 32)).astype(np.float64)


def bad_movie_values(folder: Path) -> Outcome:
    from napari_cellstate.core.movie import check_movie

    huge = _movie()
    huge[5, 2, 2] = 1e303
    blank = _movie(30)
    blank[13] = 0  # not among 8 evenly spaced frames
    return _worst(
        [
            refused(lambda: check_movie(huge), r"Frame 5 .*values too large \(1e\+303"),
            refused(lambda: check_movie(blank), r"Frame 13 is uniform"),
        ]
    )


def truncated_tiff(folder: Path) -> Outcome:
    import tifffile

    from napari_cellstate.core.io import read_movie

    path = folder / "movie.tif"
    tifffile.imwrite(path, _movie().astype(np.uint16), imagej=True, metadata={"axes": "TYX"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return refused(lambda: read_movie(path), r"truncated or damaged: it announces 12 frame")


def damaged_zarr_chunk(folder: Path) -> Outcome:
    import zarr

    from napari_cellstate.core.io import read_movie
    from napari_cellstate.core.movie import check_movie

    path = folder / "movie.zarr"
    array = zarr.create_array(str(path), shape=(12, 32, 32), chunks=(1, 32, 32), dtype="uint16")
    array[:] = _movie().astype(np.uint16)
    chunks = sorted(p for p in path.rglob("*") if p.is_file() and p.name not in ("zarr.json", ".zarray"))
    chunks[len(chunks) // 2].write_bytes(b"\x28\xb5\x2f\xfd garbage")
    return refused(lambda: check_movie(read_movie(path)), r"could not be read: the file is damaged or truncated")


CASES: list[tuple[str, Callable[[Path], Outcome]]] = [
    ("model truncated (5 lengths)", truncated_model),
    ("model: one byte flipped in a tensor", flipped_byte_in_weights),
    ("model card without its hash", card_without_hash),
    ("model: another model's weights under the card", weights_of_another_model),
    ("model holding NaN weights", nan_weights_in_file),
    ("saving NaN weights over a model", nan_weights_at_save),
    ("card asking for 20,000 x 20,000 hidden units", giant_hidden_layers),
    ("card asking for 8 x 4096 hidden units", giant_network_within_each_bound),
    ("card nested 900 deep", deeply_nested_card),
    ("card that is not JSON", card_not_json),
    ("format version 1 model, then without its hash", version_1_model_read),
    ("VAE producing NaN latents", nan_encoder_output),
    ("hostile labels.csv (7 kinds)", hostile_labels_csv),
    ("crop size 4096 / larger than the frame", giant_crop_size),
    ("label images: NaN, fractional, negative, wrong shape", bad_label_images),
    ("movie values 1e303 / a blank frame between samples", bad_movie_values),
    ("TIFF cut in half", truncated_tiff),
    ("zarr movie with a damaged chunk", damaged_zarr_chunk),
]


# --- kill -9 while saving ------------------------------------------------------------------------------------------

_SAVER = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from napari_cellstate.core.model_files import save_model
    path = sys.argv[1]
    for i in range(10**6):
        save_model(path, {"w": torch.full((256, 1024), float(i))}, architecture="toy", config={}, card={"i": i})
        print(i, flush=True)
    """
)


def kill_during_save(folder: Path, *, seed: int = 0) -> Outcome:
    """Save a 1 MB model in a loop in a subprocess, ``kill -9`` it at a random moment, then read what is left.

    CORRECT when the file holds the last model reported saved or the one after it, its weights matching its card.
    """
    from napari_cellstate.core.model_files import read_model

    path = folder / "model"
    saver = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    first = saver.stdout.readline()  # a complete model exists from here on
    if not first:
        raise RuntimeError("the saving subprocess did not start")
    time.sleep(random.Random(seed).uniform(0.0, 0.6))
    saver.send_signal(signal.SIGKILL)
    last = int(first)
    for line in saver.stdout.read().split():
        last = int(line)
    saver.wait()
    try:
        state, card = read_model(path, "toy")
    except ValueError as err:
        print(f"  lost: {err}", file=sys.stderr)
        return Outcome.DATA_LOST
    consistent = bool((state["w"] == card["i"]).all()) and card["i"] in (last, last + 1)
    return Outcome.CORRECT if consistent else Outcome.SILENT_WRONG


def kill_cases(n: int) -> list[tuple[str, Callable[[Path], Outcome]]]:
    """``n`` kill -9 cases, each at its own random moment."""
    return [
        (f"kill -9 while saving a model (try {k + 1})", lambda f, k=k: kill_during_save(f, seed=k)) for k in range(n)
    ]


KILL_CASES = kill_cases(4)


def _worst(outcomes: list[Outcome]) -> Outcome:
    order = [Outcome.CORRECT, Outcome.CLEAR_REFUSAL, Outcome.UNCLEAR_ERROR, Outcome.SILENT_WRONG, Outcome.DATA_LOST]
    return max(outcomes, key=order.index)


def run_cases(cases: list[tuple[str, Callable[[Path], Outcome]]]) -> dict[str, Outcome]:
    """Run each case in its own temporary folder."""
    results = {}
    for name, case in cases:
        with tempfile.TemporaryDirectory() as folder:
            results[name] = case(Path(folder))
        print(f"{results[name].value:14s} {name}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=8, help="kill -9 tries (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = run_cases(CASES + kill_cases(args.kills))
    counts = Counter(results.values())
    print(f"\ncases run: {len(results)}")
    print(f"correct results: {counts[Outcome.CORRECT]}")
    print(f"clear refusals: {counts[Outcome.CLEAR_REFUSAL]}")
    print(f"silent wrong results: {counts[Outcome.SILENT_WRONG]} (goal 0)")
    print(f"data lost: {counts[Outcome.DATA_LOST]} (goal 0)")
    print(f"unclear errors: {counts[Outcome.UNCLEAR_ERROR]} (goal 0)")


if __name__ == "__main__":
    main()
