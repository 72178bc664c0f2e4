"""Divisions and identity on the real Drosophila H2B-GFP movie: the product's tracking beside btrack standard.

Reference: ``tests/data/real/drosophila_reference_tracks.csv``, every nucleus of all 63 frames with its track and
mother (how it was made: tests/data/real/README.md); 3 divisions in view (frames 25-26), 382 frame-to-frame links.

Two sets of objects, each tracked two ways in the same run:
* the reference centres themselves (linking alone is judged);
* the default segmentation given only the nucleus diameter, 27 px (``config_for_nucleus_diameter``, local
  threshold), so that missed, extra and split nuclei count too.
Trackers: the product's defaults (search and division radii 1.5 nucleus diameters: 27 px for the reference
centres, measured from the objects' median area for the segmentation; divisions recovered) and btrack
with its standard cell configuration (the cell_config.json of btrack's examples, which the package ships) and
btrack's default search radius of 100 px, divisions from btrack's own hypotheses.

Scores (``lineage_agreement``, objects matched within half a nucleus): identity = share of reference links kept
(same track, or mother to daughter); division recall/precision within 2 frames and half a nucleus of the mother.

Run: python benchmarks/real_tracking.py   (needs /work/shared/data/real)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage.measure import regionprops

from napari_cellstate.core.segment import config_for_nucleus_diameter, segment_frame
from napari_cellstate.core.track import NUCLEI_PER_MOVE, lineage_agreement, nucleus_diameter_px, track_objects

REAL = Path("/work/shared/data/real")
REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "real" / "drosophila_reference_tracks.csv"
DIAMETER_PX = 27.0
BTRACK_DEFAULT_SEARCH_PX = 100.0


def segmented_objects(movie: np.ndarray) -> pd.DataFrame:
    """Centres of the default segmentation of every frame."""
    cfg = config_for_nucleus_diameter(DIAMETER_PX, threshold="local")
    rows = [(t, *r.centroid, r.area) for t in range(len(movie)) for r in regionprops(segment_frame(movie[t], cfg))]
    return pd.DataFrame(rows, columns=["t", "y", "x", "area"])


def main() -> int:
    if not REAL.is_dir():
        print(f"skipped: {REAL} is absent")
        return 0
    movie = tifffile.imread(REAL / "drosophila_histone_gfp_63t.tif")
    reference = pd.read_csv(REFERENCE)
    sets = {"reference centres": reference[["t", "y", "x"]], "default segmentation": segmented_objects(movie)}
    print(f"{'objects':21s} {'tracker':40s} {'identity':>8s} {'div. recall':>11s} {'div. prec.':>10s}")
    for name, objects in sets.items():
        # the product's default radii: 1.5 nucleus diameters, measured on the objects where they have an area
        diameter = nucleus_diameter_px(objects) if "area" in objects else DIAMETER_PX
        radius = NUCLEI_PER_MOVE * diameter
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
            s = lineage_agreement(reference, tracked, DIAMETER_PX / 2)
            print(
                f"{name:21s} {tracker:40s} {s['identity']:8.3f} "
                f"{s['division_recall']:7.2f} ({s['divisions_found']:.0f}/{s['divisions']:.0f}) "
                f"{s['division_precision']:10.2f}   links kept {s['links_kept']:.0f}/{s['links']:.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
