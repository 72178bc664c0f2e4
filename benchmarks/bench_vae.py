"""Encoding speed of the β-TCVAE, against this machine's dense-matmul throughput.

The model's FLOPs per crop (encoder) are counted with torch's FLOP counter;
dense float32 matmul GFLOP/s is measured in the same run. The ratio of the
two is the FLOP bound on crops/s; the script prints the fraction of it that
encoding reaches, beside the plain loop it replaced (512-crop NCHW batches) measured in the same run, and a
training step's time. Run: python benchmarks/bench_vae.py [--threads 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import median_seconds  # benchmarks/_timing.py (run from the repo root)
from torch.utils.flop_counter import FlopCounterMode

from napari_cellstate.core.vae.encode import encode_crops
from napari_cellstate.core.vae.fit import VAETask, load_default_vae, synthetic_training_crops


def matmul_flops_per_s(size: int, repeats: int) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = median_seconds(lambda: a @ b, repeats)
    return 2 * size**3 / seconds


def plain_encode(model, crops, batch_size: int = 512):
    """The encoding loop before channels-last small batches: the same-run baseline."""
    means = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch_size):
            means.append(model.encode(torch.from_numpy(crops[start : start + batch_size])[:, None])[0].numpy())
    return np.concatenate(means)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crops", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = load_default_vae()
    crops, _ = synthetic_training_crops(args.crops, seed=3)
    with FlopCounterMode(display=False) as counter:
        model.encode(torch.from_numpy(crops[:1])[:, None])
    flops_per_crop = counter.get_total_flops()
    matmul = matmul_flops_per_s(2048, args.repeats)
    encode_crops(model, crops[:512])  # warm up
    seconds = median_seconds(lambda: encode_crops(model, crops), args.repeats)
    rate = args.crops / seconds
    bound = matmul / flops_per_crop
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats} runs")
    print(f"dense float32 matmul (2048^2): {matmul / 1e9:.1f} GFLOP/s")
    print(f"encoder: {flops_per_crop / 1e6:.1f} MFLOP per 64x64 crop -> FLOP bound {bound:,.0f} crops/s")
    print(f"encode {args.crops} crops: {seconds:.2f} s = {rate:,.0f} crops/s = {rate / bound:.0%} of the FLOP bound")
    plain_encode(model, crops[:512])
    plain_s = median_seconds(lambda: plain_encode(model, crops), args.repeats)
    plain_rate = args.crops / plain_s
    difference = float(np.abs(encode_crops(model, crops)[0] - plain_encode(model, crops)).max())
    print(
        f"plain loop (512-crop NCHW batches): {plain_rate:,.0f} crops/s = {plain_rate / bound:.0%} of the bound; "
        f"encode_crops is {rate / plain_rate:.2f}x faster, latents within {difference:.1e}"
    )

    task = VAETask(model.train())
    batch = torch.from_numpy(crops[:256])[:, None]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        optimiser.zero_grad()
        loss, _ = task.loss(batch, 20000)
        loss.backward()
        optimiser.step()

    step_s = median_seconds(step, args.repeats)
    print(f"training step, batch 256: {step_s:.3f} s = {256 / step_s:,.0f} crops/s")


if __name__ == "__main__":
    main()
