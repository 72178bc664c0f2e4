"""Make the README's pictures: python docs/make_figures.py (GUI shot needs a display or Xvfb).

1. docs/images/sample_frame.png: a frame of the default sample with true states.
2. docs/images/realism.png: synthetic crops next to crops of real H2B/DNA data
   from ../shared/data/real, each at its own frame's display range.
3. docs/images/viewer.png: the sample in a real napari viewer.
"""

from __future__ import annotations

import sys
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
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


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
    movie = tifffile.imread(REAL / "drosophila_histone_gfp_63t.tif")
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
            ("real: Drosophila H2B-GFP, interphase", drosophila_crops(55, 6)),
            ("real: Drosophila H2B-GFP, metaphase", drosophila_crops(8, 6)),
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
    fig.tight_layout()
    path = OUT / "realism.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def viewer_screenshot() -> Path:
    import napari

    viewer = napari.Viewer(show=False)
    viewer.window.resize(1100, 760)
    viewer.open_sample("napari-cellstate", "synthetic_h2b")
    cells = viewer.layers["true states"]
    frame = int(cells.features.loc[cells.features["state"] == "metaphase", "t"].mode().iloc[0])
    viewer.dims.set_point(0, frame)
    path = OUT / "viewer.png"
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    viewer.close()
    return path


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    result = simulate_movie(SimulationConfig())
    print(save_movie_preview(result, OUT / "sample_frame.png"))
    print(realism_figure(result))
    if "--no-gui" not in sys.argv:
        print(viewer_screenshot())


if __name__ == "__main__":
    main()
