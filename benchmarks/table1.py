"""Reproduce the paper's Table 1 on synthetic data: every scheme x seed, the summary and the paper's bars.

Builds ``synthetic_head_data`` (crops from the generator, latents from the packaged β-TCVAE), trains one head
per scheme and seed with each scheme's default training (``heads.fit.default_training``), prints the runs, the
Table 1 summary (ours beside the paper's) and the bars with pass/fail, and writes ``table1_runs.csv``,
``table1.csv`` and ``table1.md`` to ``--out``.

The default 8,000 cells match the size of the paper's data set (8,021 cells). Time on 2 idle CPU cores: building
the cells takes about 9 s, a dense or sparse head about 3.7 s per seed, Scheme 1's CNN about 27 s per seed (6
epochs on 7,170 training crops): about 6 minutes in all. When other processes compete for the cores, two torch
threads can make the small heads ten times slower: ``--threads 1`` avoids it. ``--cnn-epochs`` shortens Scheme
1; on a GPU, which the CNN's ``device="auto"`` picks, it is much faster.
Run: python benchmarks/table1.py [--n 8000] [--seeds 10] [--schemes cnn dense sparse] [--cnn-epochs 2]
     [--exclusion-um 3] [--exclusion-strength 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _generator import add_generator_options, generator_from

from napari_cellstate.core.config import HeadScheme
from napari_cellstate.core.heads.compare import (
    bars_report,
    iter_compare_schemes,
    summarise_table1,
    table1_bars,
    table1_markdown,
    write_table1,
)
from napari_cellstate.core.heads.data import synthetic_head_data
from napari_cellstate.core.heads.fit import default_training
from napari_cellstate.core.progress import Progress, run_to_completion

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "table1"


class ProgressLine:
    """On a terminal, one line rewritten a few times a second; in a log, one line per trained model."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s, self.last, self.tty = every_s, 0.0, sys.stdout.isatty()

    def __call__(self, event: Progress) -> None:
        line = f"[{event.step / max(event.total, 1):6.1%}] {event.message}"
        if not self.tty:
            if ": test accuracy" in event.message:  # the event that ends each run
                print(line)
            return
        now = time.perf_counter()
        if now - self.last >= self.every_s or event.step == event.total:
            self.last = now
            sys.stdout.write("\r" + line[:110].ljust(110))
            sys.stdout.flush()

    def end(self) -> None:
        if self.tty:
            print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8000, help="synthetic cells (balanced; 10 %% test)")
    parser.add_argument("--seeds", type=int, default=10, help="models per scheme (seeds 0..N-1)")
    parser.add_argument(
        "--schemes", nargs="+", default=[s.value for s in HeadScheme], choices=[s.value for s in HeadScheme]
    )
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--cnn-epochs", type=int, default=None, help="Scheme 1 epochs (default: default_training)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's; 1 is fastest for the small heads)"
    )
    add_generator_options(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    generator = generator_from(args)
    data = synthetic_head_data(
        args.n, seed=args.data_seed, generator=generator, keep_crops=HeadScheme.CNN.value in args.schemes
    )
    print(f"neighbour clearance {generator.neighbour_exclusion_um} µm x {generator.neighbour_exclusion_strength}")
    print(f"{data.source}: {data.describe()} ({time.perf_counter() - started:.1f} s)")

    runs = []
    for scheme in args.schemes:  # one call per scheme: Scheme 1 may get its own number of epochs
        training = None  # each scheme's default_training for the rows it fits on
        if scheme == HeadScheme.CNN.value and args.cnn_epochs:
            training = default_training(scheme).model_copy(update={"epochs": args.cnn_epochs})
        shown = "default training" if training is None else f"{training.epochs} epochs, batch {training.batch_size}"
        print(f"Scheme {HeadScheme(scheme).number} ({scheme}): {shown}")
        steps = iter_compare_schemes(data, [scheme], range(args.seeds), training=training)
        line = ProgressLine()
        runs.append(run_to_completion(steps, line))
        line.end()
    runs = pd.concat(runs, ignore_index=True)
    summary = summarise_table1(runs)
    bars = table1_bars(runs)

    print("\nRuns (inputs by latent id):")
    latent_ids = runs["inputs_used"].fillna("").map(lambda s: " ".join(n.split(" ↔")[0] for n in s.split("; ") if n))
    shown = runs.assign(inputs_used=latent_ids.map(lambda s: s if len(s) <= 40 else s[:37] + "..."))
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nTable 1 (ours beside the paper's):\n")
    print(table1_markdown(summary))
    print("\nBars:")
    for line in bars_report(bars):
        print(f"  {line}")
    paths = write_table1(args.out, runs, summary)
    print(f"\nWrote {', '.join(str(p) for p in paths.values())} ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
