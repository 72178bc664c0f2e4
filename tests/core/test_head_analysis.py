import numpy as np
import pytest
import sympy
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text

from napari_cellstate.core.config import HeadConfig
from napari_cellstate.core.heads._model import MLPHead
from napari_cellstate.core.heads.analysis import (
    check_decomposition,
    decompose,
    expression_size,
    head_graph,
    response_curve,
    response_map,
    sympy_expression_size,
)
from napari_cellstate.core.heads.plots import decoded_axis_images, subnetwork_figures, topology_figure

# Paper-like wiring, per layer (target unit, source unit):
#   SN1: z11 -> h1:0 -> h2:0 -> h3:0 and h3:2 -> out
#   SN2: z3, z11 -> h1:1 (and h1:0, shared with SN1) -> h2:1
#   SN3: z17 -> h1:2, z21 -> h1:3 -> h2:2
#   SN4: h3:1 reads h2:1 (SN2) and h2:2 (SN3) -> out
# Dead parts: z5 -> h1:5 leads nowhere; h2:5 and h3:7 have no inputs (constants, folded into biases).
PAPER_LIKE = {
    0: [(0, 11), (1, 3), (1, 11), (2, 17), (3, 21), (5, 5)],
    1: [(0, 0), (1, 1), (1, 0), (2, 2), (2, 3)],
    2: [(0, 0), (2, 0), (1, 1), (1, 2), (1, 5)],
    3: [(0, 0), (0, 2), (0, 1), (0, 7)],
}
NAMES = [f"z{j}" for j in range(32)]
NAMES[11] = "z11 ↔ area, r = 0.97"
NAMES[3] = "z3 ↔ area, r = -0.90"


def build_head(wiring, cfg=None, seed=0):
    head = MLPHead(cfg or HeadConfig())
    masks = [torch.zeros_like(layer.weight) for layer in head.layers]
    for layer, pairs in wiring.items():
        for target, source in pairs:
            masks[layer][target, source] = 1.0
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer, mask in zip(head.layers, masks, strict=True):
            layer.weight.copy_((torch.randn(mask.shape, generator=generator) + 0.5 * torch.sign(mask)) * mask)
            layer.bias.copy_(0.5 * torch.randn(layer.bias.shape, generator=generator))
    head.set_masks(masks)
    return head


@pytest.fixture(scope="module")
def head():
    return build_head(PAPER_LIKE)


@pytest.fixture(scope="module")
def subnets(head):
    return decompose(head, NAMES)


@pytest.fixture(scope="module")
def latents():
    return np.random.default_rng(0).normal(size=(400, 32))


def test_head_graph_keeps_only_what_reaches_the_score(head):
    graph = head_graph(head)
    assert graph.live_inputs == [3, 11, 17, 21]
    assert {"in:5", "h1:5", "h2:5", "h3:7"}.isdisjoint(graph.live)
    assert {"h1:0", "h2:1", "h3:1", "out"} <= graph.live
    assert ("in:5", "h1:5") in graph.edges
    assert ("in:5", "h1:5") not in graph.live_edges
    assert len(graph.live_edges) == 5 + 5 + 4 + 3
    # the constant unit h2:5 feeds h3:1: its output moves into h3:1's bias
    assert graph.folded_biases["h3:1"] != pytest.approx(graph.biases["h3:1"])


def test_zero_weight_inside_the_mask_is_not_a_connection():
    head = build_head({0: [(0, 0), (0, 1)], 1: [(0, 0)]}, HeadConfig(n_inputs=2, hidden=(1,)))
    with torch.no_grad():
        head.layers[0].weight[0, 1] = 0.0
    assert head_graph(head).live_inputs == [0]


def test_decomposition_finds_the_paper_like_sub_networks(subnets):
    assert [(s.id, s.inputs, s.children, s.top_level) for s in subnets] == [
        (1, (11,), (), True),
        (2, (3, 11), (), False),
        (3, (17, 21), (), False),
        (4, (3, 11, 17, 21), (2, 3), True),
    ]
    sn1, sn2, sn3, sn4 = subnets
    assert sn1.units == {"h1:0", "h2:0", "h3:0", "h3:2"}
    assert sn2.units == {"h1:0", "h1:1", "h2:1"}
    assert sn3.units == {"h1:2", "h1:3", "h2:2"}
    assert sn4.units == {"h3:1"}
    assert sn1.name == "z11 ↔ area"
    assert sn4.input_labels == ("SN2 (z3 ↔ area, z11 ↔ area)", "SN3 (z17, z21)")
    assert ("h2:1", "h3:1") in sn2.edges
    assert ("h3:1", "out") in sn4.edges


def test_decomposition_is_exact(head, subnets, latents):
    assert check_decomposition(head, subnets, latents) < 1e-5
    assert check_decomposition(head, subnets, torch.as_tensor(latents, dtype=torch.float32)) < 1e-5


def test_composite_response_takes_its_children_responses(subnets, latents):
    sn2, sn3, sn4 = subnets[1:]
    direct = sn4.direct_inputs(latents)
    np.testing.assert_allclose(direct, np.stack([sn2.evaluate(latents), sn3.evaluate(latents)], axis=1))


def test_dense_head_decomposes_exactly(latents):
    torch.manual_seed(0)
    dense = MLPHead(HeadConfig())
    subnets = decompose(dense)
    assert check_decomposition(dense, subnets, latents) < 1e-5
    top = [s for s in subnets if s.top_level]
    assert len(top) == 1
    assert not top[0].is_leaf
    assert top[0].inputs == tuple(range(32))


def test_constant_head_has_nothing_to_decompose(latents):
    head = build_head({0: [], 1: [], 2: [], 3: [(0, 4)]})
    assert decompose(head) == []
    assert check_decomposition(head, [], latents) < 1e-9
    assert expression_size(head) == 1


def test_expression_size_of_a_hand_counted_network():
    # out = w·act(w·x0 + w·x1 + b) + b, x2 -> h1:1 is a dead end
    head = build_head({0: [(0, 0), (0, 1), (1, 2)], 1: [(0, 0)]}, HeadConfig(n_inputs=3, hidden=(2,)))
    # 3 connections x 3 + h1:0 (2 adds + bias + activation) + out (1 add + bias) + 2 inputs
    assert expression_size(head) == 9 + 4 + 2 + 2


def test_sympy_expression_size_counts_tree_nodes():
    x, y = sympy.symbols("x y")
    assert sympy_expression_size(x + y) == 3
    assert sympy_expression_size(sympy.exp(x) * 2) == 4
    with pytest.raises(TypeError):
        sympy_expression_size("x + y")


def test_response_grids_have_gradients(subnets):
    curve = response_curve(subnets[0], -2, 2, n=50)
    assert curve.values.shape == curve.gradient.shape == (50,)
    grid = response_map(subnets[1], (-1, -2), (1, 2), n=20)
    assert grid.values.shape == grid.gradient_x.shape == grid.gradient_y.shape == (20, 20)
    # a map's x is its first input: it agrees with the response at a grid point
    np.testing.assert_allclose(grid.values[3, 7], subnets[1].response(np.array([[grid.x[7], grid.y[3]]]))[0])
    with pytest.raises(ValueError, match="needs 2"):
        response_map(subnets[0], (0, 0), (1, 1))


def _texts(fig):
    return {t.get_text() for t in fig.findobj(Text)}


def test_topology_figure_names_live_inputs(head, subnets, tmp_path):
    fig = topology_figure(head, NAMES)
    assert isinstance(fig, Figure)
    texts = _texts(fig)
    assert {NAMES[3], NAMES[11], "z17", "z21", "f(x) ≥ 0 → metaphase"} <= texts
    assert "z5" not in texts
    assert "z5" in _texts(topology_figure(head, NAMES, show_all_inputs=True))
    coloured = topology_figure(head, NAMES, subnets)
    assert any(t.startswith("SN4: ") for t in _texts(coloured))
    for name, figure in [("plain", fig), ("subnets", coloured)]:
        path = tmp_path / f"{name}.png"
        figure.savefig(path, dpi=50)
        assert path.stat().st_size > 0


def test_subnetwork_figures_render(head, subnets, latents, tmp_path):
    figures = subnetwork_figures(head, subnets, latents)
    assert [len(f.axes) for f in figures] == [1, 2, 2, 2]  # curve; maps with colour bars
    assert "Sub-network 1: z11 ↔ area" in figures[0].axes[0].get_title()
    assert figures[3].axes[0].get_xlabel() == "SN2 (z3 ↔ area, z11 ↔ area)"
    for k, figure in enumerate(figures):
        path = tmp_path / f"sn{k}.png"
        figure.savefig(path, dpi=40)
        assert path.stat().st_size > 0


def test_curve_figure_shows_decoded_images(head, subnets, latents):
    def decode(z):
        return np.ones((len(z), 8, 8)) * z[:, 11, None, None]

    (figure,) = subnetwork_figures(head, subnets[:1], latents, decode=decode, n_images=5)
    assert len(figure.axes) == 2
    assert len(figure.axes[1].images) == 5


def test_decoded_axis_images_vary_one_latent():
    def decode(z):
        return z[:, :, None].repeat(2, axis=2)[:, None, :2, :]

    images = decoded_axis_images(decode, np.arange(3.0), 2, [10.0, 20.0])
    assert images.shape == (2, 2, 2)
    np.testing.assert_allclose(images[:, 0, 0], [0.0, 0.0])
    np.testing.assert_allclose(images[:, 1, 0], [1.0, 1.0])
    with pytest.raises(ValueError, match="expected"):
        decoded_axis_images(lambda z: np.ones((1, 4, 4)), np.zeros(3), 0, [0.0, 1.0])


def test_dense_head_figures_render(latents):
    torch.manual_seed(1)
    dense = MLPHead(HeadConfig(hidden=(4, 4)))
    subnets = decompose(dense)
    figures = subnetwork_figures(dense, subnets, latents)
    assert len(figures) == len(subnets)
    assert isinstance(topology_figure(dense, subnets=subnets), Figure)


def test_flat_response_map_renders(tmp_path):
    # a ReLU unit that never fires: its sub-network's response is 0 everywhere
    head = build_head({0: [(0, 0), (0, 1), (1, 2)], 1: [(0, 0), (0, 1)]}, HeadConfig(n_inputs=3, hidden=(2,)))
    head.activation = torch.nn.ReLU()
    with torch.no_grad():
        head.layers[0].bias[0] = -100.0
    subnets = decompose(head)
    x = np.random.default_rng(1).normal(size=(50, 3))
    assert check_decomposition(head, subnets, x) < 1e-9
    flat = next(s for s in subnets if s.inputs == (0, 1))
    (figure,) = subnetwork_figures(head, [flat], x)
    figure.savefig(tmp_path / "flat.png", dpi=30)
