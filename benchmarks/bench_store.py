"""The project store at scale: what encoding writes, and memory while writing many crops.

1. Bytes written by ``encode`` (latents added as a column group) on a project of
   ``--n-encode`` crops, against the crop store's size on disk — what the old
   format rewrote for every added column. Goal: under 2 %.
2. Peak resident memory while streaming ``--n-stream`` crops into a project
   (in a fresh process), against writing ``--n-memory`` crops held in memory
   (the in-memory path, measured the same way). Goal: under 1 GB.

Synthetic crops from the crop generator (realistic compressibility), produced
in blocks. Bytes written are the process's ``wchar`` counter (/proc/self/io).

    python benchmarks/bench_store.py            # 100,000 to encode, 200,000 to stream (several minutes)
    python benchmarks/bench_store.py --quick    # 10,000 and 20,000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BLOCK = 1000


def _written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _objects(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "object_id": np.arange(1, n + 1),
            "track_id": np.arange(n) // 20 + 1,
            "t": np.arange(n) % 20,
            "y": rng.uniform(0, 2000, n),
            "x": rng.uniform(0, 2000, n),
        }
    )


def _settings() -> dict:
    return {"size_px": 64, "standardise": True, "clip": 4.0}


def _blocks(n: int):
    from napari_cellstate.core.vae.fit import synthetic_training_crops

    bank, _ = synthetic_training_crops(BLOCK * 4, seed=0)  # a few generator banks, reused with noise per block
    rng = np.random.default_rng(1)
    for start in range(0, n, BLOCK):
        count = min(BLOCK, n - start)
        block = bank[rng.integers(0, len(bank), count)]
        yield np.clip(block + rng.normal(0, 0.05, block.shape).astype(np.float32), -4, 4)


def stream(n: int, folder: Path) -> dict:
    """Write ``n`` crops block by block (run in a fresh process to measure its peak memory)."""
    import resource

    from napari_cellstate.core.project import open_or_create, stream_crop_dataset

    start = time.perf_counter()
    stream_crop_dataset(open_or_create(folder), _blocks(n), _objects(n), _settings(), "bench")
    return {
        "n": n,
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_memory(n: int, folder: Path) -> dict:
    """Write ``n`` crops held in memory at once (the path for one movie's crops)."""
    import resource

    from napari_cellstate.core.crops import CropResult
    from napari_cellstate.core.project import open_or_create, write_crop_dataset

    crops = np.concatenate(list(_blocks(n)))
    start = time.perf_counter()
    write_crop_dataset(open_or_create(folder), CropResult(crops, _objects(n), _settings()), "bench")
    return {
        "n": n,
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _in_subprocess(mode: str, n: int, folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(n), str(folder)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def encode_bytes(n: int, folder: Path) -> dict:
    from napari_cellstate.core.progress import run_to_completion
    from napari_cellstate.core.project import Project
    from napari_cellstate.core.vae.encode import iter_encode_project

    project = Project.open(folder)
    store_bytes = _folder_size(project.crops_path)
    before = _written_bytes()
    start = time.perf_counter()
    run_to_completion(iter_encode_project(folder))
    seconds = time.perf_counter() - start
    written = _written_bytes() - before
    return {"n": n, "store_bytes": store_bytes, "encode_written_bytes": written, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-encode", type=int, default=100_000)
    parser.add_argument("--n-stream", type=int, default=200_000)
    parser.add_argument("--n-memory", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "N", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.child:
        mode, n, folder = args.child
        result = (stream if mode == "stream" else in_memory)(int(n), Path(folder))
        print(json.dumps(result))
        return
    if args.quick:
        args.n_encode, args.n_stream, args.n_memory = 10_000, 20_000, 5_000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        streamed = _in_subprocess("stream", args.n_stream, tmp / "stream")
        held = _in_subprocess("memory", args.n_memory, tmp / "memory")
        print(
            f"streaming {streamed['n']:,} crops: peak RSS {streamed['peak_rss_mb']:.0f} MB "
            f"({streamed['n'] / streamed['seconds']:,.0f} crops/s; goal < 1,000 MB); in memory, {held['n']:,} crops: "
            f"{held['peak_rss_mb']:.0f} MB -> streaming holds {streamed['n'] / held['n']:.0f}x the crops in "
            f"{streamed['peak_rss_mb'] / held['peak_rss_mb']:.2f}x the memory"
        )
        encode_folder = tmp / "stream" if args.n_encode == args.n_stream else tmp / "encode"
        if encode_folder != tmp / "stream":
            _in_subprocess("stream", args.n_encode, encode_folder)
        encoded = encode_bytes(args.n_encode, encode_folder)
        share = encoded["encode_written_bytes"] / encoded["store_bytes"]
        print(
            f"encode on {encoded['n']:,} crops wrote {encoded['encode_written_bytes'] / 1e6:.1f} MB against a crop "
            f"store of {encoded['store_bytes'] / 1e6:.0f} MB (what an added column used to rewrite): "
            f"{100 * share:.2f} % "
            f"(goal < 2 %); encoding took {encoded['seconds']:.0f} s"
        )


if __name__ == "__main__":
    main()
