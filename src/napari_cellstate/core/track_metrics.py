"""Score tracking against ground truth with traccuracy (CTC TRA/DET/LNK, divisions)."""

from __future__ import annotations

import contextlib
import io
import warnings

import networkx as nx
import numpy as np
import pandas as pd

__all__ = ["objects_to_graph", "score_tracking"]


def objects_to_graph(objects: pd.DataFrame) -> nx.DiGraph:
    """A tracking graph: one node per object, edges along tracks and from a mother to her daughters.

    Parameters
    ----------
    objects : DataFrame
        Columns ``t, y, x, object_id`` (the object's value in the segmentation
        of its frame), ``track_id`` and ``parent_track_id`` (0 = none).
    """
    table = objects.reset_index(drop=True)
    graph = nx.DiGraph()
    node_ids = np.arange(1, len(table) + 1)
    for node, row in zip(node_ids, table.itertuples(index=False), strict=True):
        graph.add_node(int(node), t=int(row.t), y=float(row.y), x=float(row.x), segmentation_id=int(row.object_id))
    ordered = table.assign(node=node_ids).sort_values(["track_id", "t"])
    for _, track in ordered[ordered["track_id"] > 0].groupby("track_id"):
        nodes = track["node"].to_numpy()
        graph.add_edges_from(zip(nodes[:-1].tolist(), nodes[1:].tolist(), strict=True))
    first = ordered.drop_duplicates("track_id", keep="first").set_index("track_id")
    last = ordered.drop_duplicates("track_id", keep="last").set_index("track_id")
    for daughter, parent in first["parent_track_id"].items():
        if parent > 0 and parent in last.index and daughter > 0:
            graph.add_edge(int(last.loc[parent, "node"]), int(first.loc[daughter, "node"]))
    return graph


def score_tracking(
    truth: pd.DataFrame, truth_labels: np.ndarray, predicted: pd.DataFrame, predicted_labels: np.ndarray
) -> dict[str, float]:
    """CTC scores and division F1 of a tracking result against ground truth.

    Both tables follow :func:`objects_to_graph`; each label stack is (T, Y, X)
    with the ``object_id`` values of its table.

    Returns
    -------
    dict
        ``TRA``, ``DET``, ``LNK`` (CTC link score), ``link_accuracy`` (fraction
        of true frame-to-frame links kept), ``division_f1``,
        ``division_recall``, ``division_precision``, ``true_divisions``,
        ``predicted_divisions``.
    """
    from traccuracy import TrackingGraph, run_metrics
    from traccuracy.matchers import CTCMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    gt = TrackingGraph(objects_to_graph(truth), segmentation=np.asarray(truth_labels), location_keys=("y", "x"))
    pred = TrackingGraph(
        objects_to_graph(predicted), segmentation=np.asarray(predicted_labels), location_keys=("y", "x")
    )
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):  # no progress bars
        warnings.simplefilter("ignore")
        results, _ = run_metrics(gt, pred, CTCMatcher(), [CTCMetrics(), DivisionMetrics(max_frame_buffer=2)])
    ctc = next(r for r in results if r["metric"]["name"] == "CTCMetrics")["results"]
    divisions = next(r for r in results if r["metric"]["name"] == "DivisionMetrics")["results"]
    division, tolerant = divisions["Frame Buffer 0"], divisions["Frame Buffer 2"]
    fn_edges, gt_edges = ctc.get("fn_edges", 0), gt.graph.number_of_edges()
    return {
        "TRA": float(ctc["TRA"]),
        "DET": float(ctc["DET"]),
        "LNK": float(ctc["LNK"]),
        "link_accuracy": 1.0 - fn_edges / gt_edges if gt_edges else float("nan"),
        "division_f1": _f1(division),
        "division_f1_within_2_frames": _f1(tolerant),
        "division_recall": float(division["Division Recall"]),
        "division_precision": float(division["Division Precision"]),
        "true_divisions": int(division["Total GT Divisions"]),
        "predicted_divisions": int(division["Total Predicted Divisions"]),
    }


def _f1(result: dict) -> float:
    """Division F1, 0 (not NaN) when nothing matched but divisions existed."""
    f1 = result["Division F1"]
    if np.isnan(f1) and result["Total GT Divisions"] > 0:
        return 0.0
    return float(f1)
