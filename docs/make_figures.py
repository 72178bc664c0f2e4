"""Make the README's pictures: python docs/make_figures.py (GUI shot needs a display or Xvfb).

1. docs/images/sample_frame.png: a frame of the default sample with true states.
2. docs/images/realism.png: synthetic crops next to crops of real H2B/DNA data
   from tests/data/real, each at its own frame's display range.
3. docs/images/panel_*.png: the mission through the CellState panel in a 1280 x 800 napari window, one picture
   per step: sample, track, label, latents (traversal grid with its labels), heads (the sparse head's classes
   on every cell, its wiring in the dock), attacks (a perturbation map over an attacked cell).
5. docs/images/segmentation_real.png: segmentation outlines on real Drosophila H2B-GFP frames.
6. docs/images/vae_reconstructions.png and vae_traversal.png: the packaged beta-TCVAE.
8. docs/images/sparse_topology.png and sparse_subnetwork.png: a RigL sparse head (Scheme 3) read as the paper
   reads it: its wiring and the response of its first sub-network, with decoded images along the axis.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tifffile
from skimage import filters, measure, transform

from napari_cellstate.core.config import SimulationConfig
from napari_cellstate.core.preview import display_range, save_movie_preview
from napari_cellstate.core.simulate import simulate_movie

OUT = Path(__file__).parent / "images"
REAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "real"  # frames 0, 7, 14, 20, 42, 49, 56, 62


def crop_at(image: np.ndarray, y: float, x: float, half: int) -> np.ndarray:
    padded = np.pad(image, half, mode="reflect")
    y, x = round(y) + half, round(x) + half
    return padded[y - half : y + half, x - half : x + half]


def synthetic_crops(result, state: str, n: int) -> list[tuple[np.ndarray, tuple[float, float]]]:
    objects = result.objects
    rows = objects[(objects["state"] == state) & objects["y"].between(32, 480) & objects["x"].between(32, 480)]
    rows = rows.iloc[np.linspace(0, len(rows) - 1, n).astype(int)]
    return [
        (crop_at(result.movie[int(r.t)], r.y, r.x, 32), display_range(result.movie[int(r.t)]))
        for r in rows.itertuples()
    ]


def drosophila_crops(frame_index: int, n: int) -> list[tuple[np.ndarray, tuple[float, float]]]:
    movie = tifffile.imread(REAL / "drosophila_histone_gfp_8t.tif")
    frame = movie[frame_index].astype(float)
    smooth = filters.gaussian(frame, 2)
    mask = smooth > filters.threshold_otsu(smooth)
    regions = sorted(
        (
            r
            for r in measure.regionprops(measure.label(mask))
            if r.area > 80 and 32 < r.centroid[0] < frame.shape[0] - 32 and 32 < r.centroid[1] < frame.shape[1] - 32
        ),
        key=lambda r: -r.area,
    )[:n]
    return [(crop_at(frame, *r.centroid, 32), display_range(frame)) for r in regions]


def ht29_crops(mitotic: bool, n: int) -> list[tuple[np.ndarray, tuple[float, float]]]:
    dna = tifffile.imread(REAL / "ht29_hoechst.tif").astype(float)
    ph3 = tifffile.imread(REAL / "ht29_ph3.tif").astype(float)
    labels = measure.label(filters.gaussian(dna, 1) > filters.threshold_otsu(filters.gaussian(dna, 1)))
    regions = [
        r
        for r in measure.regionprops(labels, intensity_image=ph3)
        if r.area > 30 and 16 < r.centroid[0] < 496 and 16 < r.centroid[1] < 496
    ]
    regions.sort(key=lambda r: -r.intensity_mean if mitotic else abs(r.intensity_mean - 10))
    # HT29 nuclei are ~4x smaller: cut 24 px and scale to 64 px, as a user would
    out = []
    for r in regions[:n]:
        crop = crop_at(dna, *r.centroid, 12)
        out.append((transform.resize(crop, (64, 64), order=1), display_range(dna)))
    return out


def realism_figure(result) -> Path:
    rows = [
        ("synthetic interphase", synthetic_crops(result, "interphase", 6)),
        ("synthetic metaphase", synthetic_crops(result, "metaphase", 6)),
    ]
    if REAL.exists():
        rows += [
            ("real: Drosophila H2B-GFP, interphase", drosophila_crops(6, 6)),  # sample frame 6 = movie frame 56
            ("real: Drosophila H2B-GFP, metaphase", drosophila_crops(1, 6)),  # sample frame 1 = movie frame 7
            ("real: HT29 Hoechst, PH3-negative", ht29_crops(False, 6)),
            ("real: HT29 Hoechst, PH3-positive (mitotic)", ht29_crops(True, 6)),
        ]
    fig, axes = plt.subplots(len(rows), 6, figsize=(9, 1.75 * len(rows)))
    for (title, crops), row_axes in zip(rows, np.atleast_2d(axes), strict=True):
        for ax, (crop, (lo, hi)) in zip(row_axes, crops, strict=False):
            ax.imshow(crop, cmap="gray", vmin=lo, vmax=hi)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
        row_axes[0].set_title(title, loc="left", fontsize=9)
    return _save(fig, "realism.png")


def _save(fig, name: str) -> Path:
    fig.tight_layout()
    path = OUT / name
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def segmentation_real_figure() -> Path:
    from skimage.segmentation import find_boundaries

    from napari_cellstate.core.config import SegmentationConfig, ThresholdMethod
    from napari_cellstate.core.segment import segment_frame

    movie = tifffile.imread(REAL / "drosophila_histone_gfp_8t.tif")
    # this embryo has bright histone granules between nuclei: raise the threshold and the minimum size
    cfg = SegmentationConfig(pixel_size_um=0.33, threshold=ThresholdMethod.LOCAL, threshold_scale=2.0, min_area_um2=20)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
    for ax, (t, frame) in zip(axes, ((1, 7), (3, 20), (6, 56)), strict=True):
        labels = segment_frame(movie[t], cfg)
        ax.imshow(movie[t], cmap="gray", vmin=np.percentile(movie[t], 0.5), vmax=np.percentile(movie[t], 99.8))
        edges = np.ma.masked_where(~find_boundaries(labels), np.ones(labels.shape))
        ax.imshow(edges, cmap="autumn", alpha=1.0, interpolation="nearest")
        ax.set_title(f"frame {frame}: {labels.max()} nuclei found", fontsize=10)
        ax.axis("off")
    return _save(fig, "segmentation_real.png")


def vae_figures() -> list[Path]:
    from napari_cellstate.core.vae.encode import decode_latents, encode_crops, traversal_grid
    from napari_cellstate.core.vae.fit import load_default_vae, synthetic_training_crops
    from napari_cellstate.core.vae.naming import latent_names, name_latents

    model, _ = load_default_vae()
    crops, factors = synthetic_training_crops(2000, seed=2024)
    mu, _ = encode_crops(model, crops)
    recon = decode_latents(model, mu[:8])
    fig, axes = plt.subplots(2, 8, figsize=(12, 3.3))
    for k in range(8):
        axes[0, k].imshow(crops[k], cmap="gray", vmin=-2, vmax=4)
        axes[1, k].imshow(recon[k], cmap="gray", vmin=-2, vmax=4)
        axes[0, k].set_title(str(factors["state"].iloc[k]), fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("crop", fontsize=9)
    axes[1, 0].set_ylabel("reconstruction", fontsize=9)
    paths = [_save(fig, "vae_reconstructions.png")]

    named = name_latents(mu, factors, columns=("area", "eccentricity", "orientation", "brightness", "neighbour_count"))
    order = np.argsort(-np.abs(named["r"].to_numpy()))[:6]
    base = mu[factors["state"].to_numpy() == "interphase"].mean(axis=0)
    grid = traversal_grid(model, base, [int(j) for j in order])
    labels = latent_names(named)
    fig, ax = plt.subplots(figsize=(7, 6.4))
    ax.imshow(grid, cmap="gray", vmin=-2, vmax=4)
    ax.set_yticks(np.arange(len(order)) * 64 + 32, [labels[j] for j in order], fontsize=8)
    ax.set_xticks(np.arange(7) * 64 + 32, [f"{v:+.0f}" for v in np.linspace(-3, 3, 7)], fontsize=8)
    ax.set_xlabel("latent value (others at the mean interphase cell)", fontsize=9)
    paths.append(_save(fig, "vae_traversal.png"))
    return paths


def sparse_head_figures() -> list[Path]:
    from napari_cellstate.core.heads.analysis import decompose
    from napari_cellstate.core.heads.data import synthetic_head_data
    from napari_cellstate.core.heads.fit import train_head
    from napari_cellstate.core.heads.plots import subnetwork_figures, topology_figure
    from napari_cellstate.core.vae.encode import decode_latents
    from napari_cellstate.core.vae.fit import load_default_vae

    vae, _ = load_default_vae()
    data = synthetic_head_data(4000, seed=0, vae=vae, keep_crops=False)
    head = train_head("sparse", data).model
    subnets = decompose(head, data.input_names)
    paths = []
    for name, figure in (
        ("sparse_topology.png", topology_figure(head, data.input_names, subnets)),
        (
            "sparse_subnetwork.png",
            subnetwork_figures(head, subnets, data.latents, data.input_names, decode=lambda z: decode_latents(vae, z))[
                0
            ],
        ),
    ):
        figure.savefig(OUT / name, dpi=80)
        paths.append(OUT / name)
    return paths


PANEL_SHOTS = {
    "sample": "panel_sample.png",
    "track": "panel_track.png",
    "label": "panel_label.png",
    "latents": "panel_latents.png",
    "heads": "panel_heads.png",
    "attacks": "panel_attacks.png",
}


def panel_screenshots() -> list[Path]:
    """The mission through the CellState panel in a 1280 x 800 napari window: one screenshot per step."""
    import napari

    from napari_cellstate.gui._layers import CROP_LAYER
    from napari_cellstate.gui._tour import run_mission, wait_for

    viewer = napari.Viewer()
    viewer.window.resize(1280, 800)
    paths = []

    def shoot(step: str, panel) -> None:
        viewer.reset_view()
        if step in ("heads", "attacks"):  # done with the latents: back to the movie, as a user would
            for layer in viewer.layers:
                layer.visible = layer.visible and not layer.name.startswith("cellstate latent")
                layer.visible = layer.visible and layer.name not in ("cellstate traversal labels", CROP_LAYER)
            viewer.reset_view()
        if step == "heads":
            heads = panel.step("heads")
            heads.tabs.setCurrentIndex(1)  # the sparse head's wiring
            panel.tabs.currentWidget().ensureWidgetVisible(heads.tabs)
        if step == "attacks":  # close on the attacked cell and its perturbation map
            cells = viewer.layers["cellstate cells"]
            viewer.camera.center = cells.data_to_world(cells.data[sorted(cells.selected_data)[0]])[1:]
            viewer.camera.zoom *= 4
        deadline = time.perf_counter() + 0.5
        wait_for(lambda: time.perf_counter() > deadline)  # let the docks and canvas settle
        path = OUT / PANEL_SHOTS[step]
        viewer.screenshot(str(path), canvas_only=False, flash=False)
        paths.append(path)

    run_mission(viewer, tempfile.mkdtemp(prefix="cellstate-figures-") + "/project", seeds=3, after=shoot)
    viewer.close()
    return paths


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    result = simulate_movie(SimulationConfig())
    print(save_movie_preview(result, OUT / "sample_frame.png"))
    print(realism_figure(result))
    if REAL.exists():
        print(segmentation_real_figure())
    print(*vae_figures(), sep="\n")
    print(*sparse_head_figures(), sep="\n")
    if "--no-gui" not in sys.argv:
        print(*panel_screenshots(), sep="\n")


if __name__ == "__main__":
    main()
