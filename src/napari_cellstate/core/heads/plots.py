"""Figures of a head's wiring and of its sub-networks' responses (paper Figs 2-4).

Built with matplotlib's object API (:class:`matplotlib.figure.Figure`, never pyplot), so they render in any
thread and backend: inside a napari widget's canvas or headless in tests and reports.

Colours follow one convention throughout: red means "pushes the score up, towards metaphase", blue
"pushes it down, towards interphase".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..objects import latent_name_list
from ._model import MLPHead
from .analysis import SubNetwork, _as_array, head_graph, response_curve, response_map

__all__ = ["decoded_axis_images", "subnetwork_figures", "topology_figure"]

POSITIVE, NEGATIVE = "#b2182b", "#2166ac"
SHARED = "#666666"
_SUBNET_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4")
OUTPUT_LABEL = "f(x) ≥ 0 → metaphase"


def _names(input_names: Sequence[str] | None, n_inputs: int) -> list[str]:
    names = list(input_names) if input_names is not None else latent_name_list(n_inputs)
    if len(names) != n_inputs:
        raise ValueError(f"{len(names)} input names for a head with {n_inputs} inputs.")
    return names


def _edge_owners(subnets: Sequence[SubNetwork]) -> dict[tuple[str, str], list[int]]:
    owners: dict[tuple[str, str], list[int]] = {}
    for subnet in subnets:
        for edge in subnet.edges:
            owners.setdefault(edge, []).append(subnet.id)
    return owners


def topology_figure(
    head: MLPHead,
    input_names: Sequence[str] | None = None,
    subnets: Sequence[SubNetwork] | None = None,
    *,
    show_all_inputs: bool = False,
) -> Figure:
    """The head's live wiring, inputs on the left, the score on the right (paper supplementary topology).

    Line width is proportional to |weight|. Without ``subnets`` colour gives the weight's sign (red
    positive, blue negative); with them, the sub-network that owns the connection (grey where several
    share it). Dead units and connections are left out: they cannot change the score.

    Parameters
    ----------
    head : MLPHead
        Dense or sparse.
    input_names : sequence of str, optional
        One per input; default ``z0, z1...``.
    subnets : sequence of SubNetwork, optional
        From :func:`~napari_cellstate.core.heads.analysis.decompose`.
    show_all_inputs : bool
        Also draw inputs the head ignores (greyed), e.g. to show which latents it dropped.
    """
    graph = head_graph(head)
    names = _names(input_names, graph.layer_sizes[0])
    columns = [list(range(graph.layer_sizes[0])) if show_all_inputs else graph.live_inputs]
    columns += [graph.live_units(layer) for layer in range(1, graph.n_layers)] + [[0]]
    tallest = max(len(column) for column in columns)
    positions = {
        graph.node(layer, unit): (float(layer), (len(column) - 1) / 2 - k)
        for layer, column in enumerate(columns)
        for k, unit in enumerate(column)
    }
    fig = Figure(figsize=(10, max(3.8, 0.34 * tallest + 1.8)), layout="constrained")
    ax = fig.add_subplot()
    edges = graph.live_edges
    owners = _edge_owners(subnets or [])
    colour_of = {s.id: _SUBNET_COLOURS[k % len(_SUBNET_COLOURS)] for k, s in enumerate(subnets or [])}
    if edges:
        largest = max(abs(w) for w in edges.values())
        colours = []
        for edge, weight in edges.items():
            if subnets is None:
                colours.append(POSITIVE if weight > 0 else NEGATIVE)
            else:
                ids = owners.get(edge, [])
                colours.append(colour_of[ids[0]] if len(ids) == 1 else SHARED)
        ax.add_collection(
            LineCollection(
                [(positions[a], positions[b]) for a, b in edges],
                linewidths=[0.6 + 4.0 * abs(w) / largest for w in edges.values()],
                colors=colours,
                alpha=0.85 if len(edges) < 100 else 0.35,
                zorder=1,
            )
        )
    size = 160 if tallest <= 20 else 40
    for layer, column in enumerate(columns):
        nodes = [graph.node(layer, unit) for unit in column]
        xy = np.array([positions[n] for n in nodes]).reshape(-1, 2)
        live = [n in graph.live for n in nodes]
        face = "0.85" if layer == 0 else ("black" if layer == graph.n_layers else "white")
        ax.scatter(
            xy[:, 0],
            xy[:, 1],
            s=size * (1.6 if layer == graph.n_layers else 1),
            c=face,
            zorder=3,
            edgecolors=["0.15" if alive else "0.75" for alive in live],
        )
    small = sum(len(column) for column in columns[1:-1]) <= 40
    for node, (x, y) in positions.items():
        layer, index = graph.position(node)
        if layer == 0:
            colour = "black" if node in graph.live else "0.6"
            ax.text(x - 0.12, y, names[index], ha="right", va="center", fontsize=9, color=colour)
        elif layer == graph.n_layers:
            ax.text(x + 0.12, y, OUTPUT_LABEL, ha="left", va="center", fontsize=10, weight="bold")
        elif small:
            ax.text(x, y + 0.32, node, ha="center", va="bottom", fontsize=7, color="0.35")
    top = (tallest - 1) / 2 + 0.9
    headers = ["latent inputs", *(f"hidden layer {k}" for k in range(1, graph.n_layers)), "output"]
    for layer, header in enumerate(headers):
        ax.text(layer, top, header, ha="center", va="bottom", fontsize=9, color="0.3")
    if subnets:
        handles = [Line2D([], [], color=colour_of[s.id], lw=3, label=f"SN{s.id}: {s.name}") for s in subnets]
        if any(len(ids) > 1 for ids in owners.values()):
            handles.append(Line2D([], [], color=SHARED, lw=3, label="shared by several"))
        title = "sub-networks (line width ∝ |weight|)"
    else:
        handles = [
            Line2D([], [], color=POSITIVE, lw=3, label="positive weight"),
            Line2D([], [], color=NEGATIVE, lw=3, label="negative weight"),
        ]
        title = "line width ∝ |weight|"
    fig.legend(
        handles=handles,
        title=title,
        loc="outside lower center",
        ncols=min(len(handles), 3),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )
    ax.set_xlim(-0.3, graph.n_layers + 0.3)
    ax.set_ylim(-(tallest - 1) / 2 - 0.6, top + 0.5)
    ax.set_axis_off()
    used = len(graph.live_inputs)
    ax.set_title(f"Head wiring: {len(edges)} active weights, {used} of {graph.layer_sizes[0]} inputs used", fontsize=11)
    return fig


def decoded_axis_images(
    decode: Callable[[np.ndarray], np.ndarray], base_latents: np.ndarray, latent_index: int, values: Sequence[float]
) -> np.ndarray:
    """Images decoded along one latent axis: ``base_latents`` with latent ``latent_index`` set to each value.

    This is the paper's latent traversal (Figs 1 and 4): it shows what moving along an input looks like in
    the cell.

    Parameters
    ----------
    decode : callable
        ``decode(z)`` with z of shape (M, D) returns images (M, S, S) (or (M, 1, S, S)).
    base_latents : ndarray of shape (D,)
        Where the other latents stay, e.g. the data's median.
    latent_index : int
        The latent that varies.
    values : sequence of float
        Its values, one image each.

    Returns
    -------
    ndarray of shape (M, S, S)

    Examples
    --------
    >>> images = decoded_axis_images(lambda z: np.ones((len(z), 4, 4)) * z[:, 1, None, None], np.zeros(3), 1, [0, 2])
    >>> images.shape, images[1, 0, 0]
    ((2, 4, 4), np.float64(2.0))
    """
    base = np.asarray(base_latents, dtype=float).ravel()
    z = np.repeat(base[None], len(values), axis=0)
    z[:, latent_index] = values
    images = np.asarray(decode(z), dtype=float)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or len(images) != len(values):
        raise ValueError(f"decode returned an array of shape {images.shape}; expected ({len(values)}, S, S).")
    return images


def _data_range(values: np.ndarray) -> tuple[float, float]:
    """5th-95th percentile widened by 15 % each side: where the data are, and a little of what is around."""
    lo, hi = np.percentile(values, [5, 95])
    pad = 0.15 * (hi - lo) if hi > lo else 0.5
    return float(lo - pad), float(hi + pad)


def _role(subnet: SubNetwork, readers: dict[int, list[int]]) -> tuple[str, str]:
    """Subtitle and response label: what the response feeds."""
    if subnet.top_level:
        return "adds to the score f(x)", "contribution to f(x)  (+ → metaphase)"
    ids = ", ".join(str(i) for i in readers.get(subnet.id, []))
    return f"feeds sub-network {ids}", f"response (input of SN{ids})"


def _curve_figure(subnet, direct, label, subtitle, ylabel, strip) -> Figure:
    lo, hi = _data_range(direct[:, 0])
    curve = response_curve(subnet, lo, hi)
    fig = Figure(figsize=(6.4, 5.6 if strip is not None else 4.4), layout="constrained")
    if strip is None:
        ax = fig.add_subplot()
    else:
        grid = fig.add_gridspec(2, 1, height_ratios=(4, 1))
        ax = fig.add_subplot(grid[0])
    y = curve.values
    ax.fill_between(curve.x, 0, y, where=y >= 0, color=POSITIVE, alpha=0.15, lw=0)
    ax.fill_between(curve.x, 0, y, where=y < 0, color=NEGATIVE, alpha=0.15, lw=0)
    ax.plot(curve.x, y, color="black", lw=2)
    ax.axhline(0, color="0.4", lw=0.8, ls="--")
    rug = direct[:: max(1, len(direct) // 2000), 0]
    ax.plot(rug, np.full(len(rug), 0.02), "|", color="0.2", alpha=0.3, ms=10, transform=ax.get_xaxis_transform())
    ax.set_xlim(lo, hi)
    ax.set_ylabel(ylabel)
    ax.set_title(f"Sub-network {subnet.id}: {subnet.name}\n{subtitle}  ·  ticks: cells in the data", fontsize=10)
    if strip is None:
        ax.set_xlabel(label)
        return fig
    values, images = strip
    ax.tick_params(labelbottom=False)
    below = fig.add_subplot(grid[1], sharex=ax)
    half = 0.45 * (values[1] - values[0]) if len(values) > 1 else 0.45 * (hi - lo)
    for value, image in zip(values, images, strict=True):
        below.imshow(image, cmap="gray", extent=(value - half, value + half, 0, 1), aspect="auto")
    below.set_xlim(lo, hi)
    below.set_ylim(0, 1)
    below.set_yticks([])
    below.set_xlabel(f"{label}  (images: decoded along this latent, others at the median)")
    return fig


def _nice_levels(lo: float, hi: float) -> np.ndarray:
    """Round contour levels inside [lo, hi] (so the colour bar reads 0.1, 0.2... not 0.1087)."""
    levels = MaxNLocator(7).tick_values(lo, hi)
    return levels[(levels >= lo) & (levels <= hi)]


def _map_figure(subnet, direct, labels, subtitle, zlabel) -> Figure:
    (x_lo, x_hi), (y_lo, y_hi) = _data_range(direct[:, 0]), _data_range(direct[:, 1])
    grid = response_map(subnet, (x_lo, y_lo), (x_hi, y_hi))
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    vmin, vmax = float(grid.values.min()), float(grid.values.max())
    if vmax - vmin < 1e-12:  # a flat response (e.g. a ReLU that never fires here) still needs a colour range
        vmin, vmax = vmin - 0.5, vmax + 0.5
    crosses_zero = vmin < 0 < vmax
    if crosses_zero:  # levels on each side of 0 apart, so that a small positive (or negative) side keeps detail
        ticks = np.concatenate([_nice_levels(vmin, 0.0), _nice_levels(0.0, vmax)])
        norm, cmap = TwoSlopeNorm(0.0, vmin, vmax), "RdBu_r"
    else:
        ticks, norm, cmap = _nice_levels(vmin, vmax), Normalize(vmin, vmax), "Reds" if vmin >= 0 else "Blues_r"
    levels = np.unique(np.concatenate([[vmin], ticks, [vmax]]))
    filled = ax.contourf(grid.x, grid.y, grid.values, levels=levels, cmap=cmap, norm=norm)
    if grid.values.min() < 0 < grid.values.max():  # the line where this piece switches sign
        zero = ax.contour(grid.x, grid.y, grid.values, levels=[0.0], colors="black", linewidths=1.5)
        ax.clabel(zero, fmt={0.0: "0"}, fontsize=9)
    # Arrows in axis fractions (change over the whole axis), so that they cross the drawn contours at right
    # angles even when the two inputs span very different ranges.
    step = max(1, len(grid.x) // 12)
    u = grid.gradient_x[::step, ::step] * (x_hi - x_lo)
    v = grid.gradient_y[::step, ::step] * (y_hi - y_lo)
    if np.any(u) or np.any(v):  # a flat response has no direction to show
        ax.quiver(grid.x[::step], grid.y[::step], u, v, color="0.25", angles="uv", alpha=0.8, width=0.004)
    dots = direct[:: max(1, len(direct) // 800)]
    ax.scatter(dots[:, 0], dots[:, 1], s=3, c="black", alpha=0.25, lw=0)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(
        f"Sub-network {subnet.id}: {subnet.name}\n{subtitle}  ·  arrows: steepest rise  ·  dots: cells", fontsize=10
    )
    fig.colorbar(filled, ax=ax, label=zlabel, ticks=ticks)
    return fig


def _histogram_figure(subnet, values, subtitle, xlabel) -> Figure:
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(values, bins=40, color="0.55")
    ax.axvline(0, color="0.2", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cells")
    ax.set_title(
        f"Sub-network {subnet.id}: {subnet.name}\n{subtitle}  ·  {subnet.n_direct_inputs} inputs, "
        "too many to map: its response on the data",
        fontsize=10,
    )
    return fig


def subnetwork_figures(
    head: MLPHead,
    subnets: Sequence[SubNetwork],
    x,
    input_names: Sequence[str] | None = None,
    *,
    decode: Callable[[np.ndarray], np.ndarray] | None = None,
    n_images: int = 7,
) -> list[Figure]:
    """One figure per sub-network: its response over the range the data cover (paper Figs 2b and 4).

    One input: a response curve, with a rug of the data and, when ``decode`` is given and the input is a
    latent, the decoded images along that latent under the axis. Two inputs: a response map with its zero
    contour and gradient arrows. More (a dense head's bottom pieces): a histogram of its response on the data.

    Parameters
    ----------
    head : MLPHead
        The head the sub-networks came from (names its inputs).
    subnets : sequence of SubNetwork
        From :func:`~napari_cellstate.core.heads.analysis.decompose`.
    x : array of shape (N, n_inputs)
        Latents of real cells: they set the plotted ranges.
    input_names : sequence of str, optional
        Latent names for the axes; default the names the sub-networks were built with.
    decode : callable, optional
        ``decode(z: (M, D)) -> (M, S, S)`` images, e.g. the β-TCVAE decoder.
    n_images : int
        Images in a decoded strip.
    """
    names = _names(input_names, head.layers[0].in_features) if input_names is not None else None
    x = _as_array(x)
    readers: dict[int, list[int]] = {}
    for subnet in subnets:
        for child in subnet.children:
            readers.setdefault(child, []).append(subnet.id)
    figures = []
    for subnet in subnets:
        direct = subnet.direct_inputs(x)
        labels = [names[j] for j in subnet.inputs] if names is not None and subnet.is_leaf else subnet.input_labels
        subtitle, response_label = _role(subnet, readers)
        if subnet.n_direct_inputs == 1:
            strip = None
            if decode is not None and subnet.is_leaf:
                edges = np.linspace(*_data_range(direct[:, 0]), n_images + 1)
                values = (edges[:-1] + edges[1:]) / 2  # one image per equal slice of the axis
                strip = values, decoded_axis_images(decode, np.median(x, axis=0), subnet.inputs[0], values)
            figures.append(_curve_figure(subnet, direct, labels[0], subtitle, response_label, strip))
        elif subnet.n_direct_inputs == 2:
            figures.append(_map_figure(subnet, direct, labels, subtitle, response_label))
        else:
            figures.append(_histogram_figure(subnet, subnet.response(direct), subtitle, response_label))
    return figures


def save_sparse_figures(head, input_names, latents, folder, dpi: int = 110) -> dict[str, Path]:
    """Save a sparse head's wiring and sub-network response figures as ``sparse_<name>.png`` in ``folder``."""
    from .analysis import decompose

    subnets = decompose(head, input_names)
    figures = {"topology": topology_figure(head, input_names, subnets)}
    panels = subnetwork_figures(head, subnets, latents, input_names)
    figures.update({f"subnetwork_{i + 1}": figure for i, figure in enumerate(panels)})
    written = {}
    for name, figure in figures.items():
        written[name] = Path(folder) / f"sparse_{name}.png"
        figure.savefig(written[name], dpi=dpi)
    return written
