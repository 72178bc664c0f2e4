"""VAE training from a project's crop store: the streaming loader against reading every crop into memory.

For two store sizes, each in a fresh process (so peak RSS is that run's own), with both loaders:

* the seconds spent reading the crops before the first batch;
* crops/s of the loader alone (200 batches served, no model): what a GPU would ask of it;
* crops/s of β-TCVAE training (the packaged architecture, 64 x 64 crops, one torch thread), over ``--steps``
  steps after a first warm-up step (the next buffer is read meanwhile);
* peak RSS of the process.

The stores are made quickly by repeating a bank of 2,048 generated crops (each chunk is compressed on its own,
so the store behaves as one of distinct crops).

    python benchmarks/bench_vae_stream.py                 # 20,000 and 200,000 crops, 3 runs each
    python benchmarks/bench_vae_stream.py --quick         # 5,000 and 20,000 crops, 1 run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from napari_cellstate.core.config import TrainConfig, VAEConfig
from napari_cellstate.core.project.crop_store import open_crop_store
from napari_cellstate.core.training import iter_train
from napari_cellstate.core.training.loop import _shuffled_batches
from napari_cellstate.core.training.distributed import Dist
from napari_cellstate.core.training.streaming import training_rows
from napari_cellstate.core.vae import BetaTCVAE
from napari_cellstate.core.vae.fit import VAETask, _Crops

path, loader, steps, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
crops = open_crop_store(path)
start = time.perf_counter()
data = training_rows(crops, None, in_memory=_Crops, limit=0 if loader == "stream" else 1 << 62)
out = {"load_s": time.perf_counter() - start}
cfg = TrainConfig(epochs=1, batch_size=batch, seed=0, device="cpu")


def rate(events, steps):
    first, done = None, 0
    for index, _ in zip(range(steps + 1), events):
        if index == 0:
            first = time.perf_counter()
        done = index
    seconds = time.perf_counter() - first
    events.close()
    return done * batch / seconds


if loader == "stream":
    batches = data.local_batches(1, 0, batch)
else:
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    batches = _shuffled_batches(data, order, len(data) // batch, cfg, Dist())
out["loader"] = rate(batches, 200)
torch.manual_seed(0)
out["train"] = rate(iter_train(VAETask(BetaTCVAE(VAEConfig(crop_size_px=64))), data, cfg), steps)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def make_store(path: Path, n: int, bank) -> float:
    """A sealed crop store of ``n`` crops repeating ``bank``; returns its size on disk in GiB."""
    from napari_cellstate.core.project.crop_store import write_crop_store

    blocks = (bank[: min(len(bank), n - start)] for start in range(0, n, len(bank)))
    write_crop_store(path, blocks, bank.shape[-1], {"note": "benchmark"})
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**30


def run(path: Path, loader: str, steps: int, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), loader, str(steps), str(batch)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=24, help="training steps timed (after one warm-up step)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.steps = [5_000, 20_000], 1, 4
    from napari_cellstate.core.vae.fit import synthetic_training_crops

    bank, _ = synthetic_training_crops(2048, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            path = Path(folder) / f"crops{n}.zarr"
            started = time.perf_counter()
            gib = make_store(path, n, bank)
            print(f"store of {n} crops: {gib:.2f} GiB on disk, written in {time.perf_counter() - started:.0f} s")
            results = {loader: [] for loader in ("memory", "stream")}
            for _ in range(args.repeats):
                for loader in results:  # alternated, so both see the same load on the machine
                    results[loader].append(run(path, loader, args.steps, args.batch))
            median = {
                loader: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                for loader, runs in results.items()
            }
            for loader, m in median.items():
                print(
                    f"  {loader:6s}: training {m['train']:5.0f} crops/s, loader alone {m['loader']:6.0f} crops/s, "
                    f"peak RSS {m['peak_rss_mb']:5.0f} MB, reading before the first step {m['load_s']:5.1f} s"
                )
            s, m = median["stream"], median["memory"]
            print(
                f"  stream / memory (medians of {args.repeats}): training {s['train'] / m['train']:.2f}x, "
                f"loader {s['loader'] / m['loader']:.2f}x, peak RSS {s['peak_rss_mb'] / m['peak_rss_mb']:.2f}x; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
                flush=True,
            )
            shutil.rmtree(path)


if __name__ == "__main__":
    main()
