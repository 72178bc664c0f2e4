import numpy as np
import pytest
import sympy
import torch

from napari_cellstate.core.symbolic.expression import ExpressionModule, SymbolicExpression, refine_constants, symbol

z3, z17, z21, z29 = (symbol(n) for n in ("z3", "z17", "z21", "z29"))
H1 = SymbolicExpression(z29 * (z17**2 + z21**2) - sympy.exp(sympy.exp(z3)))
LATENTS = [f"z{j}" for j in range(32)]


def test_h1_has_the_size_latex_and_inputs_of_the_paper():
    assert H1.size == 15
    assert H1.inputs == ["z3", "z17", "z21", "z29"]
    assert H1.latex() == r"z_{29} \left(z_{17}^{2} + z_{21}^{2}\right) - e^{e^{z_{3}}}"


def test_numpy_torch_and_sympy_agree_on_all_latents():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 32))
    expected = z[:, 29] * (z[:, 17] ** 2 + z[:, 21] ** 2) - np.exp(np.exp(z[:, 3]))
    assert np.allclose(H1.numpy(z, LATENTS), expected)
    module = H1.torch_module(LATENTS)
    scores = module(torch.tensor(z, dtype=torch.float32))
    assert scores.shape == (200,)
    assert np.allclose(scores.numpy(), expected, rtol=1e-4, atol=1e-4)
    row = {s: float(z[0, int(s.name[1:])]) for s in H1.expr.free_symbols}
    assert float(H1.expr.evalf(subs=row)) == pytest.approx(expected[0])


def test_the_module_is_differentiable_in_its_inputs_only_through_the_latents_it_reads():
    x = torch.zeros(4, 32, requires_grad=True)
    H1.torch_module(LATENTS)(x).sum().backward()
    used = {3, 17, 21, 29}
    assert torch.all(x.grad[:, [j for j in range(32) if j not in used]] == 0)
    assert torch.all(x.grad[:, 3] < 0)  # d/dz3 of -exp(exp(z3)) at 0 is -e
    assert not any(p.requires_grad for p in H1.torch_module(LATENTS).parameters())


def test_a_module_refuses_inputs_of_another_width_and_formulas_over_missing_columns():
    with pytest.raises(ValueError, match=r"shape \(N, 32\)"):
        H1.torch_module(LATENTS)(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="not among"):
        ExpressionModule(H1.expr, ["z3", "z17"])


def test_refitting_constants_moves_the_boundary_to_the_labels():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 2))
    labels = (x[:, 0] * 2.0 - x[:, 1] > 0.7).astype(int)
    a, b = symbol("a"), symbol("b")
    start = a - sympy.Float(0.2) * b - sympy.Float(0.1)  # the right form, wrong constants
    refined, scale, _ = refine_constants(start, x, labels, ["a", "b"])
    accuracy = np.mean((SymbolicExpression(refined).numpy(x, ["a", "b"]) >= 0) == labels)
    assert accuracy >= 0.99 > np.mean((SymbolicExpression(start).numpy(x, ["a", "b"]) >= 0) == labels)
    assert scale > 0
