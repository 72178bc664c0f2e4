"""Read a trained head as a graph: its live part, its expression size and its sub-networks (paper Sec. 5.3).

A sparse head is interpretable only once it is cut into a few pieces whose behaviour can be looked at one by
one. :func:`head_graph` finds the part of the head that can change its score (units on a path from an input
to the output; everything else is a constant, folded into the biases). :func:`decompose` splits that part
into sub-networks as in the paper's Figs 2-4: the output is a sum of terms, one per last-hidden unit; terms
that read the same latents form one sub-network; a sub-network that reads too many latents to be drawn is
split one layer down into child sub-networks, and its inputs become its children's responses.
:func:`check_decomposition` proves on real data that the pieces add up to the head's score.

Node names: inputs ``"in:j"``, hidden units ``"h{layer}:{unit}"`` (layer 1 is the first hidden layer) and
``"out"``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..objects import latent_name_list
from ._model import MLPHead

__all__ = [
    "HeadGraph",
    "ResponseCurve",
    "ResponseMap",
    "SubNetwork",
    "check_decomposition",
    "decompose",
    "expression_size",
    "head_graph",
    "response_curve",
    "response_map",
    "sympy_expression_size",
]


def _node(layer: int, index: int, n_layers: int) -> str:
    if layer == 0:
        return f"in:{index}"
    return "out" if layer == n_layers else f"h{layer}:{index}"


@dataclass(frozen=True, eq=False)
class HeadGraph:
    """The head as a layered graph of named nodes, with the part that matters marked "live".

    Attributes
    ----------
    layer_sizes : tuple of int
        Nodes per layer, inputs first, output (1) last.
    live : frozenset of str
        Nodes on a path from some input to the output: the only ones that can change the score.
    edges : dict
        Every active connection ``(source, target) -> weight`` (in the mask and non-zero), live or not.
    biases : dict
        Bias of every unit and of the output, as stored in the head.
    folded_biases : dict
        The same biases with the constant outputs of dead units (units no input reaches) added in, so
        that the live graph alone computes the head's score exactly. For a head with no live path the
        output's folded bias is the (constant) score.
    weights : tuple of ndarray
        Live weight matrices (out, in), float64: dead connections zeroed.
    activation : callable
        The head's hidden-layer activation on numpy arrays.
    """

    layer_sizes: tuple[int, ...]
    live: frozenset[str]
    edges: dict[tuple[str, str], float]
    biases: dict[str, float]
    folded_biases: dict[str, float]
    weights: tuple[np.ndarray, ...] = field(repr=False)
    activation: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    @property
    def n_layers(self) -> int:
        """Weight layers (the output's layer index)."""
        return len(self.layer_sizes) - 1

    @property
    def nodes(self) -> tuple[str, ...]:
        """All node names, layer by layer."""
        return tuple(_node(k, i, self.n_layers) for k, n in enumerate(self.layer_sizes) for i in range(n))

    @property
    def live_edges(self) -> dict[tuple[str, str], float]:
        """Active connections between live nodes."""
        return {e: w for e, w in self.edges.items() if e[0] in self.live and e[1] in self.live}

    @property
    def live_inputs(self) -> list[int]:
        """Indices of the inputs (latents) the score depends on."""
        return self.live_units(0)

    def live_units(self, layer: int) -> list[int]:
        """Indices of the live nodes of one layer (0 = inputs)."""
        return [i for i in range(self.layer_sizes[layer]) if _node(layer, i, self.n_layers) in self.live]

    def node(self, layer: int, index: int) -> str:
        """Name of node ``index`` of ``layer``."""
        return _node(layer, index, self.n_layers)

    def position(self, node: str) -> tuple[int, int]:
        """``(layer, index)`` of a node name."""
        if node == "out":
            return self.n_layers, 0
        kind, index = node.split(":")
        return (0 if kind == "in" else int(kind[1:])), int(index)

    def forward(self, x: np.ndarray, upto: int) -> list[np.ndarray]:
        """Node values of layers 0..``upto`` for inputs ``x`` (N, n_inputs), through the live graph only."""
        values = [np.asarray(x, dtype=float)]
        for layer in range(1, upto + 1):
            bias = np.array([self.folded_biases[self.node(layer, i)] for i in range(self.layer_sizes[layer])])
            pre = values[-1] @ self.weights[layer - 1].T + bias
            values.append(pre if layer == self.n_layers else self.activation(pre))
        return values


def _numpy_activation(module: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def apply(values: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(values, dtype=torch.float64)).numpy()

    return apply


def head_graph(head: MLPHead) -> HeadGraph:
    """The head's graph and its live part, from the masks and the non-zero weights.

    Liveness is computed, not read from a pruning log, so the graph is right for any head: dense, RigL-trained,
    pruned or hand-built. A unit no input reaches outputs a constant; its contribution is folded into the
    biases of the units it feeds (:attr:`HeadGraph.folded_biases`).

    Examples
    --------
    >>> from napari_cellstate.core.config import HeadConfig
    >>> head = MLPHead(HeadConfig(n_inputs=3, hidden=(2,)))
    >>> head.set_masks([torch.tensor([[1.0, 1, 0], [0, 0, 1]]), torch.tensor([[1.0, 0]])])
    >>> graph = head_graph(head)
    >>> sorted(graph.live), graph.live_inputs
    (['h1:0', 'in:0', 'in:1', 'out'], [0, 1])
    """
    activation = _numpy_activation(head.activation)
    n_layers = len(head.layers)
    sizes = (head.layers[0].in_features, *(layer.out_features for layer in head.layers))
    raw = [layer.weight.detach().double().cpu().numpy() for layer in head.layers]
    bias = [layer.bias.detach().double().cpu().numpy() for layer in head.layers]
    active = [(mask.detach().cpu().numpy() != 0) & (w != 0) for mask, w in zip(head.masks, raw, strict=True)]
    reached = [np.ones(sizes[0], bool)]  # reached from some input
    for a in active:
        reached.append((a & reached[-1][None, :]).any(axis=1))
    reaching = [np.ones(1, bool)]  # reaching the output
    for a in reversed(active):
        reaching.insert(0, (a & reaching[0][:, None]).any(axis=0))
    live = [r & s for r, s in zip(reached, reaching, strict=True)]
    # Constant units (no input reaches them) only read other constant units: fold them in layer by layer.
    folded, constant = [], np.zeros(sizes[0])
    for k, (w, a, b) in enumerate(zip(raw, active, bias, strict=True)):
        f = b + (w * a)[:, ~reached[k]] @ constant[~reached[k]]
        folded.append(f)
        constant = f if k == n_layers - 1 else activation(f)
    weights = tuple(
        w * a * live[k + 1][:, None] * live[k][None, :] for k, (w, a) in enumerate(zip(raw, active, strict=True))
    )
    return HeadGraph(
        layer_sizes=sizes,
        live=frozenset(_node(k, i, n_layers) for k, mask in enumerate(live) for i in np.flatnonzero(mask)),
        edges={
            (_node(k, i, n_layers), _node(k + 1, o, n_layers)): float(raw[k][o, i])
            for k, a in enumerate(active)
            for o, i in zip(*np.nonzero(a), strict=True)
        },
        biases={_node(k + 1, o, n_layers): float(b[o]) for k, b in enumerate(bias) for o in range(len(b))},
        folded_biases={_node(k + 1, o, n_layers): float(f[o]) for k, f in enumerate(folded) for o in range(len(f))},
        weights=weights,
        activation=activation,
    )


def expression_size(head: MLPHead) -> int:
    """Nodes of the expression equivalent to the head (paper Table 1), one method for dense and sparse heads.

    The head is written as a program with one named sub-expression per live unit, so a unit read by several
    others is counted once (a DAG count, not a tree that would repeat it). Only the live graph is counted;
    constants from dead units are already folded into the biases. Nodes:

    - 3 per live connection: the weight constant, the multiplication, the reference to its source;
    - per live unit or output with k live incoming connections: k additions (k - 1 to sum the terms, 1 to
      add the bias) and 1 bias constant;
    - 1 activation per live hidden unit;
    - 1 leaf per live input.

    A head with no live path is one constant (size 1).

    Examples
    --------
    >>> from napari_cellstate.core.config import HeadConfig
    >>> expression_size(MLPHead(HeadConfig()))  # dense 32-16-16-16-1
    4289
    >>> head = MLPHead(HeadConfig(n_inputs=3, hidden=(2,)))
    >>> head.set_masks([torch.tensor([[1.0, 1, 0], [0, 0, 1]]), torch.tensor([[1.0, 0]])])
    >>> expression_size(head)  # w·silu(w·x0 + w·x1 + b) + b: 9 + 4 + 2 + 2
    17
    """
    graph = head_graph(head)
    if "out" not in graph.live:
        return 1
    edges = graph.live_edges
    units = [node for node in graph.live if not node.startswith("in:")]
    in_degree = {unit: 0 for unit in units}
    for _, target in edges:
        in_degree[target] += 1
    hidden = sum(1 for unit in units if unit != "out")
    return 3 * len(edges) + sum(k + 1 for k in in_degree.values()) + hidden + len(graph.live_inputs)


def sympy_expression_size(expr) -> int:
    """Nodes of a sympy expression tree (Scheme 4), every operator, symbol and number counting 1.

    Takes a sympy expression, never text, so that nothing is parsed or evaluated from a string.

    Examples
    --------
    >>> import sympy
    >>> z3, z17, z21, z29 = sympy.symbols("z3 z17 z21 z29")
    >>> sympy_expression_size(z29 * (z17**2 + z21**2) - sympy.exp(sympy.exp(z3)))
    15
    """
    import sympy  # a heavy import, needed only for Scheme 4

    if not isinstance(expr, sympy.Basic):
        raise TypeError(f"Expected a sympy expression, got {type(expr).__name__}; build it with sympy, not text.")
    return sum(1 for _ in sympy.preorder_traversal(expr))


@dataclass(eq=False)
class SubNetwork:
    """A piece of the head whose response can be plotted against one or two inputs (paper Figs 2-4).

    Attributes
    ----------
    id : int
        1-based; leaves first (fewest inputs, then lowest input index), composites after their children.
    name : str
        Human-readable, from the input names (``"z11 ↔ area"``) or the children (``"combines SN2 & SN3"``).
    inputs : tuple of int
        All latents it depends on (its units' ancestor inputs).
    children : tuple of int
        Ids of the sub-networks whose responses are its direct inputs; empty for a leaf.
    units : frozenset of str
        Hidden units it owns: the whole ancestor cone for a leaf, its own layer's units for a composite.
    edges : dict
        Connections it owns ``(source, target) -> weight``: a leaf's cone, and the links from its units
        to the node(s) that read its response.
    input_labels : tuple of str
        Axis labels of its direct inputs: latent names for a leaf, ``"SN2 (z3, z29)"`` for a composite.
    top_level : bool
        Whether its response is a term of the head's score (otherwise it feeds another sub-network).
    response : callable
        ``(M, n_direct_inputs) -> (M,)``: its response on direct inputs (latent values for a leaf, child
        responses in ``children`` order for a composite).
    """

    id: int
    name: str
    inputs: tuple[int, ...]
    children: tuple[int, ...]
    units: frozenset[str]
    edges: dict[tuple[str, str], float]
    input_labels: tuple[str, ...]
    top_level: bool
    response: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    child_networks: tuple[SubNetwork, ...] = field(default=(), repr=False)

    @property
    def is_leaf(self) -> bool:
        """Whether its direct inputs are latents."""
        return not self.children

    @property
    def n_direct_inputs(self) -> int:
        """Number of columns :attr:`response` takes."""
        return len(self.children) or len(self.inputs)

    def direct_inputs(self, x: np.ndarray) -> np.ndarray:
        """Its direct inputs (M, n_direct_inputs) for full latent vectors ``x`` (M, n_inputs)."""
        x = _as_array(x)
        if self.is_leaf:
            return x[:, list(self.inputs)]
        return np.stack([child.evaluate(x) for child in self.child_networks], axis=1)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Its response for full latent vectors ``x`` (M, n_inputs)."""
        return self.response(self.direct_inputs(x))


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"Expected latent vectors of shape (N, n_inputs), got an array of shape {x.shape}.")
    return x


@dataclass(eq=False)
class _Part:
    """A sub-network under construction: units of one layer and how their activations are summed."""

    layer: int
    units: tuple[int, ...]
    reading: np.ndarray  # response = activations[units] @ reading
    inputs: tuple[int, ...]
    consumer_edges: dict[tuple[str, str], float]
    top_level: bool = False
    children: list[_Part] = field(default_factory=list)
    scales: np.ndarray | None = None  # composite: pre-activations = child responses @ scales + bias

    @property
    def height(self) -> int:
        return 1 + max(child.height for child in self.children) if self.children else 0


class _Decomposer:
    def __init__(self, graph: HeadGraph, max_inputs: int):
        self.graph, self.max_inputs = graph, max_inputs
        self.parts: dict[tuple, _Part] = {}
        # latents in each live node's ancestor cone, layer by layer, as a boolean (units, inputs) matrix
        cones = [np.eye(graph.layer_sizes[0], dtype=bool)]
        for w in graph.weights:
            cones.append(((w != 0).astype(int) @ cones[-1].astype(int)) > 0)
        self.cones = cones

    def input_set(self, layer: int, units: Sequence[int]) -> tuple[int, ...]:
        return tuple(np.flatnonzero(self.cones[layer][list(units)].any(axis=0)).tolist())

    def groups(self, layer: int, units: Sequence[int]) -> list[tuple[int, ...]]:
        """Units grouped by input set, in a stable order (fewest inputs, lowest input index, lowest unit)."""
        by_inputs: dict[tuple[int, ...], list[int]] = {}
        for unit in units:
            by_inputs.setdefault(self.input_set(layer, [unit]), []).append(unit)
        return [tuple(by_inputs[key]) for key in sorted(by_inputs, key=lambda k: (len(k), k, by_inputs[k][0]))]

    def part(self, layer: int, units: tuple[int, ...], reading: np.ndarray, edges: dict) -> _Part:
        """The (memoised) part for these units and reading, with ``edges`` to its reader(s) added."""
        key = (layer, units, reading.tobytes())
        if key in self.parts:
            self.parts[key].consumer_edges.update(edges)
            return self.parts[key]
        part = _Part(layer, units, reading, self.input_set(layer, units), dict(edges))
        self.parts[key] = part
        if len(part.inputs) > self.max_inputs and layer > 1:
            self.split(part)
        return part

    def split(self, part: _Part) -> None:
        """Make a composite: its units' predecessors, grouped by input set, become its children.

        With one unit, a child is a whole group and its response is the group's weighted contribution to
        that unit's pre-activation. With several units, each unit weighs a group differently, so a group of
        several predecessors would not be one number: it is split into single predecessors whose response
        is their activation, which the composite weighs per unit. Either way the composite is exact.
        """
        graph, below = self.graph, part.layer - 1
        w = graph.weights[below][list(part.units)]  # (units, predecessors)
        predecessors = [q for q in range(w.shape[1]) if w[:, q].any()]
        scales = []
        for group in self.groups(below, predecessors):
            pieces = [group] if len(part.units) == 1 else [(q,) for q in group]
            for piece in pieces:
                block = w[:, list(piece)]
                reading, scale = (block[0], np.ones(1)) if len(part.units) == 1 else (np.ones(1), block[:, 0])
                edges = {
                    (graph.node(below, q), graph.node(part.layer, u)): float(block[k, j])
                    for j, q in enumerate(piece)
                    for k, u in enumerate(part.units)
                    if block[k, j] != 0
                }
                part.children.append(self.part(below, piece, reading, edges))
                scales.append(scale)
        part.scales = np.stack(scales)


def _short_name(name: str) -> str:
    """``"z3 ↔ area, r = 0.93"`` → ``"z3 ↔ area"``: the correlation is noise in a title."""
    return re.sub(r",\s*r\s*=\s*[-+]?[0-9.]+\s*$", "", name)


def _leaf_name(inputs: tuple[int, ...], names: Sequence[str]) -> str:
    shown = [_short_name(names[j]) for j in inputs]
    if len(shown) > 4:
        return f"{len(shown)} latents ({', '.join(shown[:3])}, …)"
    return ", ".join(shown)


def _composite_name(child_ids: Sequence[int]) -> str:
    ids = [f"SN{i}" for i in dict.fromkeys(child_ids)]
    if len(ids) > 3:
        return f"combines {len(ids)} sub-networks ({ids[0]}…{ids[-1]})"
    return "combines " + (ids[0] if len(ids) == 1 else ", ".join(ids[:-1]) + " & " + ids[-1])


def _cone(graph: HeadGraph, layer: int, units: Sequence[int]) -> tuple[set[str], dict[tuple[str, str], float]]:
    """Hidden units and live connections in the ancestor cone of some units."""
    nodes, edges, frontier = set(), {}, set(units)
    for current in range(layer, 0, -1):
        nodes |= {graph.node(current, u) for u in frontier}
        w = graph.weights[current - 1]
        below = set()
        for u in frontier:
            for q in np.flatnonzero(w[u]):
                edges[(graph.node(current - 1, q), graph.node(current, u))] = float(w[u, q])
                below.add(int(q))
        frontier = below
    return nodes, edges


def _leaf_response(graph: HeadGraph, part: _Part) -> Callable[[np.ndarray], np.ndarray]:
    def response(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        x = np.zeros((len(values), graph.layer_sizes[0]))
        x[:, list(part.inputs)] = values  # other inputs are outside the cone: their value does not matter
        return graph.forward(x, part.layer)[-1][:, list(part.units)] @ part.reading

    return response


def _composite_response(graph: HeadGraph, part: _Part) -> Callable[[np.ndarray], np.ndarray]:
    bias = np.array([graph.folded_biases[graph.node(part.layer, u)] for u in part.units])

    def response(values: np.ndarray) -> np.ndarray:
        return graph.activation(np.asarray(values, dtype=float) @ part.scales + bias) @ part.reading

    return response


def decompose(head: MLPHead, input_names: Sequence[str] | None = None, max_inputs: int = 2) -> list[SubNetwork]:
    """Split the head into sub-networks whose responses add up to its score (paper Sec. 5.3, Figs 2-4).

    The score is ``Σ_u w_u·a_u + b`` over the live last-hidden units u. Terms whose units read the same
    latents (same input set) form one sub-network, whose response is the sum of its terms. One that reads at
    most ``max_inputs`` latents is a leaf, plotted against them. One that reads more is split a layer down:
    the predecessors of its units, grouped by input set the same way, become child sub-networks (recursively)
    and its own inputs are their responses, e.g. the paper's SN4 takes "SN2 (size)" and "SN3 (roundness)".
    A group reached through several units is split into single units, so that every composite stays an
    exact function of its children (see :func:`check_decomposition`). First-layer groups are leaves whatever
    their number of inputs, since their inputs are latents.

    Parameters
    ----------
    head : MLPHead
        Dense or sparse.
    input_names : sequence of str, optional
        One name per input, e.g. from :func:`napari_cellstate.core.vae.naming.latent_names`; default ``z0, z1...``.
    max_inputs : int
        Most latents a leaf may read (2: drawable as a response map).

    Returns
    -------
    list of SubNetwork
        Ordered by id. Those with ``top_level`` add up, with the output's folded bias, to the score.
    """
    graph = head_graph(head)
    n_inputs = graph.layer_sizes[0]
    names = list(input_names) if input_names is not None else latent_name_list(n_inputs)
    if len(names) != n_inputs:
        raise ValueError(f"{len(names)} input names for a head with {n_inputs} inputs.")
    if max_inputs < 1:
        raise ValueError(f"max_inputs must be at least 1, got {max_inputs}.")
    if "out" not in graph.live:
        return []
    decomposer, last = _Decomposer(graph, max_inputs), graph.n_layers - 1
    out_weights = graph.weights[-1][0]
    for group in decomposer.groups(last, np.flatnonzero(out_weights).tolist()):
        edges = {(graph.node(last, u), "out"): float(out_weights[u]) for u in group}
        decomposer.part(last, group, out_weights[list(group)], edges).top_level = True
    parts = sorted(
        decomposer.parts.values(),
        key=lambda p: (p.height, len(p.inputs), p.inputs, -p.layer, p.units, p.reading.tolist()),
    )
    ids = {id(part): k for k, part in enumerate(parts, start=1)}
    built: dict[int, SubNetwork] = {}
    for part in parts:
        children = tuple(built[ids[id(child)]] for child in part.children)
        if children:
            units, edges = {graph.node(part.layer, u) for u in part.units}, {}
            name = _composite_name([child.id for child in children])
            labels = tuple(f"SN{child.id} ({child.name})" for child in children)
            response = _composite_response(graph, part)
        else:
            units, edges = _cone(graph, part.layer, part.units)
            name, labels = _leaf_name(part.inputs, names), tuple(names[j] for j in part.inputs)
            response = _leaf_response(graph, part)
        built[ids[id(part)]] = SubNetwork(
            id=ids[id(part)],
            name=name,
            inputs=part.inputs,
            children=tuple(child.id for child in children),
            units=frozenset(units),
            edges=edges | part.consumer_edges,
            input_labels=labels,
            top_level=part.top_level,
            response=response,
            child_networks=children,
        )
    return [built[k] for k in sorted(built)]


def check_decomposition(head: MLPHead, subnets: Sequence[SubNetwork], x) -> float:
    """Largest |score - (Σ top-level responses + output bias)| over the rows of ``x``: ~0 if exact.

    The head's own forward pass (in float64) is the reference, so this checks the decomposition, the
    liveness analysis and the folding of dead units together, on the inputs that matter: real data.

    Examples
    --------
    >>> from napari_cellstate.core.config import HeadConfig
    >>> head = MLPHead(HeadConfig())
    >>> x = torch.randn(50, 32)
    >>> check_decomposition(head, decompose(head), x) < 1e-9
    True
    """
    x = _as_array(x)
    total = np.full(len(x), head_graph(head).folded_biases["out"])
    for subnet in subnets:
        if subnet.top_level:
            total += subnet.evaluate(x)
    reference = copy.deepcopy(head).double()
    with torch.no_grad():
        score = reference(torch.as_tensor(x, dtype=torch.float64)).cpu().numpy()
    return float(np.max(np.abs(score - total), initial=0.0))


@dataclass(frozen=True)
class ResponseCurve:
    """A one-input sub-network's response on a grid, with its slope (d response / d input)."""

    x: np.ndarray
    values: np.ndarray
    gradient: np.ndarray


@dataclass(frozen=True)
class ResponseMap:
    """A two-input sub-network's response on a grid; ``values[i, j]`` is at ``(x[j], y[i])``."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray
    gradient_x: np.ndarray
    gradient_y: np.ndarray


def _check_inputs(subnet: SubNetwork, expected: int) -> None:
    if subnet.n_direct_inputs != expected:
        raise ValueError(
            f"Sub-network {subnet.id} has {subnet.n_direct_inputs} inputs; a "
            f"{'curve' if expected == 1 else 'map'} needs {expected}."
        )


def response_curve(subnet: SubNetwork, lo: float, hi: float, n: int = 200) -> ResponseCurve:
    """Response of a one-input sub-network on ``n`` points from ``lo`` to ``hi`` (paper Fig. 2b).

    Examples
    --------
    >>> from napari_cellstate.core.config import HeadConfig
    >>> head = MLPHead(HeadConfig(n_inputs=1, hidden=(1,)))
    >>> curve = response_curve(decompose(head)[0], -1.0, 1.0, n=5)
    >>> curve.x.tolist(), curve.values.shape, curve.gradient.shape
    ([-1.0, -0.5, 0.0, 0.5, 1.0], (5,), (5,))
    """
    _check_inputs(subnet, 1)
    x = np.linspace(lo, hi, n)
    values = subnet.response(x[:, None])
    return ResponseCurve(x, values, np.gradient(values, x))


def response_map(subnet: SubNetwork, lo: Sequence[float], hi: Sequence[float], n: int = 60) -> ResponseMap:
    """Response of a two-input sub-network on an ``n`` x ``n`` grid over ``[lo, hi]`` (paper Fig. 4).

    ``lo`` and ``hi`` give one bound per input. The gradient (finite differences) is what the paper draws as
    arrows: where the response rises fastest.
    """
    _check_inputs(subnet, 2)
    x, y = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    grid_x, grid_y = np.meshgrid(x, y)
    values = subnet.response(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)).reshape(n, n)
    gradient_y, gradient_x = np.gradient(values, y, x)
    return ResponseMap(x, y, values, gradient_x, gradient_y)
