"""Divisions and identity on the real Drosophila H2B-GFP movie: the product's tracking beside btrack standard.

Reference: ``tests/data/real/drosophila_reference_tracks.csv``, every nucleus of all 63 frames with its track and
mother (how it was made: tests/data/real/README.md); 3 divisions in view (frames 25-26), 382 frame-to-frame links.
The default synthetic movie (its true tracks and divisions) is scored the same way beside it.

Objects, each set tracked two ways in the same run:
* the reference centres themselves (linking alone is judged);
* the default segmentation given only the nucleus diameter (27 px for the fly, ``config_for_nucleus_diameter``,
  local threshold; the defaults for the synthetic movie), so that missed, extra and split nuclei count too.
Trackers: the product's defaults (search and division radii 1.5 nucleus diameters: 27 px for the reference
centres, measured from the objects' median area for the segmentation; divisions recovered) and btrack
with its standard cell configuration (the cell_config.json of btrack's examples, which the package ships) and
btrack's default search radius of 100 px, divisions from btrack's own hypotheses.

Scores (``lineage_agreement``, objects matched within half a nucleus): identity = share of reference links kept
(same track, or mother to daughter); division recall/precision within 2 frames and half a nucleus of the mother.
Two matching conventions: "lineage" (the default) also matches a dividing figure that the reference still counts
as one object to the two sister objects a segmentation already split it into (or the reverse), so a figure split
a few frames earlier or later than the reference costs nothing when the lineage is right; "one-to-one" does not.

Run: python benchmarks/real_tracking.py   (needs /work/shared/data/real)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage.measure import regionprops

from napari_cellstate.core.config import SegmentationConfig, SimulationConfig
from napari_cellstate.core.segment import config_for_nucleus_diameter, segment_frame
from napari_cellstate.core.simulate import simulate_movie
from napari_cellstate.core.track import NUCLEI_PER_MOVE, lineage_agreement, nucleus_diameter_px, track_objects

REAL = Path("/work/shared/data/real")
REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "real" / "drosophila_reference_tracks.csv"
DIAMETER_PX = 27.0
BTRACK_DEFAULT_SEARCH_PX = 100.0


def segmented_objects(movie: np.ndarray, cfg: SegmentationConfig) -> pd.DataFrame:
    """Centres of the default segmentation of every frame."""
    rows = [(t, *r.centroid, r.area) for t in range(len(movie)) for r in regionprops(segment_frame(movie[t], cfg))]
    return pd.DataFrame(rows, columns=["t", "y", "x", "area"])


def score_sets(movie: np.ndarray, reference: pd.DataFrame, sets: dict[str, pd.DataFrame], diameter_px: float) -> None:
    """Track each set of objects with the product's defaults and with btrack standard; print both scores."""
    for name, objects in sets.items():
        # the product's default radii: 1.5 nucleus diameters, measured on the objects where they have an area
        radius = NUCLEI_PER_MOVE * (nucleus_diameter_px(objects) if "area" in objects else diameter_px)
        trackers = {
            f"product default ({radius:.0f} px, recovery)": {
                "max_search_radius_px": radius,
                "division_radius_px": radius,
            },
            "btrack standard (cell_config, 100 px)": {
                "max_search_radius_px": BTRACK_DEFAULT_SEARCH_PX,
                "division_radius_px": None,
            },
        }
        for tracker, settings in trackers.items():
            tracked = track_objects(objects, movie.shape[1:], **settings).objects
            for convention, split_figures in (("lineage", True), ("one-to-one", False)):
                s = lineage_agreement(reference, tracked, diameter_px / 2, split_figures=split_figures)
                print(
                    f"{name:32s} {tracker:38s} {convention:10s} {s['identity']:8.3f} "
                    f"{s['division_recall']:7.2f} ({s['divisions_found']:.0f}/{s['divisions']:.0f}) "
                    f"{s['division_precision']:10.2f}   links kept {s['links_kept']:.0f}/{s['links']:.0f}"
                )


def main() -> int:
    print(f"{'objects':32s} {'tracker':38s} {'matching':10s} {'identity':>8s} {'div. recall':>11s} {'div. prec.':>10s}")
    if REAL.is_dir():
        movie = tifffile.imread(REAL / "drosophila_histone_gfp_63t.tif")
        reference = pd.read_csv(REFERENCE)
        cfg = config_for_nucleus_diameter(DIAMETER_PX, threshold="local")
        sets = {
            "fly: reference centres": reference[["t", "y", "x"]],
            "fly: default segmentation": segmented_objects(movie, cfg),
        }
        score_sets(movie, reference, sets, DIAMETER_PX)
    else:
        print(f"fly movie skipped: {REAL} is absent")
    sample = simulate_movie(SimulationConfig())
    cfg = SegmentationConfig(pixel_size_um=sample.config.pixel_size_um)
    diameter_px = nucleus_diameter_px(sample.objects)
    sets = {"synthetic: default segmentation": segmented_objects(sample.movie, cfg)}
    score_sets(sample.movie, sample.objects, sets, diameter_px)
    return 0


if __name__ == "__main__":
    sys.exit(main())
