"""RigL training (Scheme 3) against dense training (Scheme 2) of the same head, on the same data, in one run.

Both train the 32-16-16-16-1 head with the same TrainConfig on synthetic latents; the time per epoch is the
median over repeated runs divided by the epochs. RigL's time includes its dense warm-up, the gradient masking
of every step and its connectivity updates, but not the post-training pruning, which is timed separately (on
all training rows, as training does). Goal: RigL ≤ 1.5x dense per epoch.

One torch thread by default: the head's matrices are tiny, so a second thread only adds synchronisation, and
on a 2-core machine shared with other processes two threads made both trainings 10-70x slower and the ratio
meaningless (``--threads 0`` keeps torch's choice).
Run: python benchmarks/bench_heads.py
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from _timing import median_seconds  # benchmarks/_timing.py (run from the repo root)

from napari_cellstate.core.config import RigLConfig, TrainConfig
from napari_cellstate.core.heads.data import synthetic_head_data
from napari_cellstate.core.heads.fit import train_head
from napari_cellstate.core.heads.prune import prune_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4000, help="synthetic cells (latents from the packaged VAE)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = synthetic_head_data(args.n, seed=0, keep_crops=False)
    training = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=3e-3, device="cpu")
    rigl = RigLConfig(prune=False)  # pruning is timed on its own below
    train_head("dense", data, training=training.model_copy(update={"epochs": 1}))  # warm up

    dense_s = median_seconds(lambda: train_head("dense", data, training=training), args.repeats)
    sparse_s = median_seconds(lambda: train_head("sparse", data, rigl=rigl, training=training), args.repeats)
    trained = train_head("sparse", data, rigl=rigl, training=training)
    fit, _ = data.validation_split(0.1, seed=training.seed)
    rows = data.rows("train")
    prune_x, prune_y = torch.as_tensor(data.latents[rows]), torch.as_tensor(data.labels[rows].astype("float32"))
    prune_times, report = [], None
    for _ in range(args.repeats):
        head = copy.deepcopy(trained.model)
        start = time.perf_counter()
        report = prune_head(head, prune_x, prune_y, RigLConfig().prune_tolerance)
        prune_times.append(time.perf_counter() - start)

    steps = args.epochs * -(-len(fit) // args.batch_size)
    updates = len(trained.rigl_updates)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats} runs")
    print(f"{len(fit)} training rows, batch {args.batch_size}, {args.epochs} epochs = {steps} steps")
    print(f"dense  (Scheme 2): {dense_s / args.epochs * 1e3:7.1f} ms/epoch ({dense_s:.2f} s)")
    print(
        f"RigL   (Scheme 3): {sparse_s / args.epochs * 1e3:7.1f} ms/epoch ({sparse_s:.2f} s; density {rigl.density}, "
        f"{rigl.distribution.value}, warm-up {rigl.warmup_epochs} epochs, {updates} connectivity updates)"
    )
    ratio = sparse_s / dense_s
    print(f"RigL / dense: {ratio:.2f}x per epoch (goal <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})")
    print(
        f"pruning (separate): {statistics.median(prune_times) * 1e3:.1f} ms on {len(rows)} training rows, "
        f"{report.weights_before} -> {report.weights_after_units} weights"
    )


if __name__ == "__main__":
    main()
