"""The pipeline: the demo's wall time, peak memory and each step's share; crops/s on 1 and 2 dask workers;
peak memory of one movie's segmentation, tracking and cropping for two movie sizes (zarr, read frame by frame).

Run from the repository root:  python benchmarks/bench_pipeline.py [--parts demo dask memory] [--quick]
Each measurement runs in a fresh process, so peak RSS is that run's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
from napari_cellstate.core.flow import FlowConfig, run_flow
config = FlowConfig.model_validate(json.loads(sys.argv[1]))
steps = json.loads(sys.argv[3]) or None
start = time.perf_counter()
result = run_flow(config, steps=steps)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "steps": result["steps"]}))
"""


def _run(config: dict, threads: int, steps: list[str] | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(config), str(threads), json.dumps(steps)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # dask worker processes too
    result["peak_rss_children_mb"] = children
    return result


def bench_demo(quick: bool, threads: int) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
    from napari_cellstate._cli_run import demo_config

    with tempfile.TemporaryDirectory() as folder:
        config = demo_config(Path(folder) / "demo").model_dump(mode="json")
        if quick:
            config["inputs"]["sample"].update({"n_frames": 12, "size_px": 256})
            config["heads"].update({"seeds": 1, "epochs": 5})
        result = _run(config, threads)
    total = result["seconds"]
    size = "quick" if quick else "full"
    print(f"demo ({size}), {threads} threads: {total:.0f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
    for name, step in result["steps"].items():
        print(f"  {name:9s} {step['seconds']:7.1f} s  {step['seconds'] / total:6.1%}")


def _movies(folder: Path, n: int, frames: int, size: int, cells: int = 30) -> list[dict]:
    from napari_cellstate.core.config import SimulationConfig
    from napari_cellstate.core.io import save_simulation
    from napari_cellstate.core.simulate import simulate_movie

    movies = []
    for seed in range(n):
        cfg = SimulationConfig(n_frames=frames, n_cells=cells, n_divisions=cells // 8, shape_yx=(size, size), seed=seed)
        save_simulation(simulate_movie(cfg), folder / f"m{seed}")
        movies.append({"path": str(folder / f"m{seed}" / "movie.tif"), "pixel_size_um": 0.33, "name": f"m{seed}"})
    return movies


class _LoadSampler:
    """The 1-minute load average, sampled every second while a run goes on (the machine is shared)."""

    def __enter__(self):
        import threading

        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        import os

        while not self._stop.wait(1.0):
            self.samples.append(os.getloadavg()[0])

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _dask_run(folder: Path, movies: list[dict], workers: int, tag: str) -> tuple[int, float, float]:
    """Crops, seconds and median load of one run of the inputs and encode steps on ``workers`` dask workers."""
    import shutil
    import statistics

    from napari_cellstate.core.project import load_crop_dataset

    project = folder / f"p-{tag}-{workers}"
    config = {"project": str(project), "inputs": {"movies": movies}, "scale": {"workers": workers}}
    with _LoadSampler() as load:
        result = _run(config, 1, ["inputs", "encode"])
    n = len(load_crop_dataset(project))
    shutil.rmtree(project)
    return n, result["seconds"], statistics.median(load.samples or [float("nan")])


def bench_dask(quick: bool, repeats: int, frames: int, cells: int) -> None:
    """crops/s on 1 and 2 workers for a small and a large input; the fixed cost (start-up) is the intercept.

    Time is modelled as t = start-up + crops / rate; from the small and the large input of the same run,
    rate = (n_large - n_small) / (t_large - t_small) and start-up = t_large - n_large / rate.
    """
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("dask workers: skipped (dask.distributed is not installed)")
        return
    import statistics

    if quick:
        repeats, frames, cells = 1, 8, 30
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        sizes = {"small": max(2, frames // 4), "large": frames}
        inputs = {tag: _movies(folder / tag, 4, n_frames, 512, cells) for tag, n_frames in sizes.items()}
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for repeat in range(repeats):
            for workers in (1, 2):
                small = _dask_run(folder, inputs["small"], workers, "small")
                large = _dask_run(folder, inputs["large"], workers, "large")
                rate = (large[0] - small[0]) / max(large[1] - small[1], 1e-9)
                startup = large[1] - large[0] / rate
                entry = {
                    "n": large[0],
                    "seconds": large[1],
                    "rate": large[0] / large[1],
                    "marginal": rate,
                    "startup_share": startup / large[1],
                    "load": large[2],
                }
                runs[workers].append(entry)
                print(
                    f"  run {repeat + 1}, {workers} worker(s): {large[0]} crops in {large[1]:.1f} s = "
                    f"{entry['rate']:.1f} crops/s (small input: {small[0]} crops in {small[1]:.1f} s); "
                    f"start-up {startup:.1f} s = {entry['startup_share']:.0%}; load {large[2]:.1f} / 2 cores",
                    flush=True,
                )
        median = {w: {k: statistics.median(e[k] for e in runs[w]) for k in runs[w][0]} for w in runs}
        for workers, m in median.items():
            print(
                f"dask, {workers} worker(s) (1 thread each), median of {repeats}: {m['n']:.0f} crops from 4 movies "
                f"({frames} frames, 512 x 512, {cells} cells) in {m['seconds']:.1f} s = {m['rate']:.1f} crops/s "
                f"(segment, track, crop and encode); start-up {m['startup_share']:.0%} of the run; "
                f"load average during the run {m['load']:.1f} on {os.cpu_count()} cores"
            )
        print(
            f"2 workers / 1 worker: {median[2]['rate'] / median[1]['rate']:.2f}x overall, "
            f"{median[2]['marginal'] / median[1]['marginal']:.2f}x without start-up"
        )


_MEMORY_CHILD = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from napari_cellstate.core.flow.config import MovieInput, InputsStep
from napari_cellstate.core.flow.scale import track_movie
settings = InputsStep().model_dump(mode="json", include={"segmentation", "tracking", "crops"})
summary = track_movie(MovieInput(path=sys.argv[1], pixel_size_um=0.33), folder=sys.argv[2], settings=settings)
print(json.dumps({**summary, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _zarr_movie(path: Path, frames: int, size: int) -> int:
    """A (T, Y, X) uint16 zarr movie, written frame by frame by tiling a simulated frame (bounded memory)."""
    import numpy as np
    import zarr

    from napari_cellstate.core.config import SimulationConfig
    from napari_cellstate.core.simulate import simulate_movie

    tile = simulate_movie(SimulationConfig(n_frames=4, n_cells=40, n_divisions=0, shape_yx=(512, 512), seed=0)).movie
    reps = size // 512
    array = zarr.open_array(str(path), mode="w", shape=(frames, size, size), chunks=(1, size, size), dtype="uint16")
    for t in range(frames):
        array[t] = np.tile(tile[t % len(tile)], (reps, reps)).astype(np.uint16)
    return array.nbytes


def bench_memory(quick: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for frames in (4, 8) if quick else (10, 40):
            size = 2048
            nbytes = _zarr_movie(folder / f"movie{frames}.zarr", frames, size)
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", _MEMORY_CHILD, str(folder / f"movie{frames}.zarr"), str(folder / f"p{frames}")],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"movie {frames} x {size} x {size} ({nbytes / 2**30:.2f} GiB as uint16): {result['cells']} cells in "
                f"{time.perf_counter() - start:.0f} s, peak RSS {result['peak_rss_mb']:.0f} MB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", nargs="+", choices=["demo", "dask", "memory"], default=["demo", "dask", "memory"])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test of the script)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the demo run")
    parser.add_argument("--repeats", type=int, default=3, help="dask: runs per worker count (medians)")
    parser.add_argument("--frames", type=int, default=40, help="dask: frames of each of the 4 movies")
    parser.add_argument("--cells", type=int, default=80, help="dask: nuclei in each movie's first frame")
    args = parser.parse_args()
    if "demo" in args.parts:
        bench_demo(args.quick, args.threads)
    if "dask" in args.parts:
        bench_dask(args.quick, args.repeats, args.frames, args.cells)
    if "memory" in args.parts:
        bench_memory(args.quick)


if __name__ == "__main__":
    main()
