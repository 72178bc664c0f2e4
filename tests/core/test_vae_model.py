"""β-TCVAE network and model files: shapes, size, determinism, strict loading, and that it trains."""

import json
import pickle
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from napari_cellstate.core.config import VAEConfig
from napari_cellstate.core.vae import (
    BetaTCVAE,
    ModelFileError,
    beta_tcvae_loss,
    check_crop_size,
    load_vae,
    model_paths,
    save_vae,
)

SMALL = VAEConfig(crop_size_px=16, n_latents=4, channels=(4, 8), dense_units=32, beta=2.0)


def small_model(seed=0, cfg=SMALL):
    torch.manual_seed(seed)
    return BetaTCVAE(cfg)


def crops(n=8, size=16, seed=0):
    """Standardised crops of a bright Gaussian blob of random position, size and elongation, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    centre = size / 2 + 2.0 * torch.randn(n, 2, generator=gen)
    sigma = 1.5 + 2.5 * torch.rand(n, 2, generator=gen)
    blob = torch.exp(
        -0.5
        * (
            ((rows - centre[:, :1, None]) / sigma[:, :1, None]) ** 2
            + ((cols - centre[:, 1:, None]) / sigma[:, 1:, None]) ** 2
        )
    )
    images = blob + 0.05 * torch.randn(blob.shape, generator=gen)
    images = (images - images.mean((1, 2), keepdim=True)) / images.std((1, 2), keepdim=True)
    return images.clamp(-4, 4).unsqueeze(1)


# --- the network ----------------------------------------------------------------------------------------------------


def test_shapes_with_the_default_config():
    cfg = VAEConfig()
    model = BetaTCVAE(cfg)
    x = torch.randn(3, 1, cfg.crop_size_px, cfg.crop_size_px)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, cfg.n_latents)
    assert model.decode(mu).shape == x.shape
    x_hat, mu2, logvar2, z = model(x)
    assert x_hat.shape == x.shape
    assert mu2.shape == logvar2.shape == z.shape == (3, cfg.n_latents)
    assert model.cfg == cfg


def test_default_model_is_small():
    model = BetaTCVAE(VAEConfig())
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 600_057  # about 2.4 MB of float32; change this on purpose only
    assert 4 * n_params < 3e6


def test_group_norm_makes_each_crop_independent_of_its_batch():
    """The design decision: no batch statistics, so a crop encodes the same alone or in any batch (and any process)."""
    model = small_model()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    x = crops(8)
    mu_batch, logvar_batch = model.encode(x)
    mu_alone, logvar_alone = model.encode(x[5:6])
    torch.testing.assert_close(mu_alone[0], mu_batch[5])
    torch.testing.assert_close(logvar_alone[0], logvar_batch[5])
    model.eval()
    torch.testing.assert_close(model.encode(x)[0], mu_batch)  # no train/eval difference either


def test_forward_is_deterministic_for_a_seed():
    x = crops(4)
    a, b = small_model(seed=1), small_model(seed=1)
    out_a = a(x, generator=torch.Generator().manual_seed(7))
    out_b = b(x, generator=torch.Generator().manual_seed(7))
    for ta, tb in zip(out_a, out_b, strict=True):
        assert torch.equal(ta, tb)
    other = a(x, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(other[3], out_a[3])  # z differs with the noise seed
    assert torch.equal(other[1], out_a[1])  # mu does not


def test_reparameterise_is_differentiable():
    mu = torch.zeros(5, 3, requires_grad=True)
    logvar = torch.zeros(5, 3, requires_grad=True)
    BetaTCVAE.reparameterise(mu, logvar, torch.Generator().manual_seed(0)).sum().backward()
    assert torch.equal(mu.grad, torch.ones(5, 3))
    assert logvar.grad.abs().sum() > 0


def test_wrong_crop_size_is_refused_with_advice():
    model = small_model()
    with pytest.raises(ValueError, match=r"16x16 px crops but got 32x32 px.*rescale the crops.*pixel_size_um"):
        model.encode(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"model trained for 32 px crops"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\)"):
        model.encode(torch.zeros(2, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        model.decode(torch.zeros(2, 5))


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"crop_size_px": 48}, "power of two"), ({"crop_size_px": 16, "channels": (2, 2, 2, 2, 2)}, "at least 32 px")],
)
def test_impossible_architectures_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        BetaTCVAE(VAEConfig(**changes))


def test_check_crop_size():
    check_crop_size(VAEConfig(crop_size_px=64), 64)
    with pytest.raises(
        ValueError, match=r"expects 64x64 px crops.*re-extract the crops at 64 px.*fine-tune a model at 32"
    ):
        check_crop_size(VAEConfig(crop_size_px=64), 32)


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = BetaTCVAE(SMALL)
    data = crops(64, seed=1)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)

    def evaluate():
        with torch.no_grad():
            x_hat, mu, logvar, z = model(data, generator=torch.Generator().manual_seed(0))
            return beta_tcvae_loss(data, x_hat, mu, logvar, z, len(data), SMALL)[0].item()

    before = evaluate()
    gen = torch.Generator().manual_seed(2)
    for _ in range(40):
        batch = data[torch.randperm(len(data), generator=gen)[:32]]
        x_hat, mu, logvar, z = model(batch, generator=gen)
        loss, _ = beta_tcvae_loss(batch, x_hat, mu, logvar, z, len(data), SMALL)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = evaluate()
    assert after < 0.6 * before, (before, after)


# --- model files ----------------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    model = small_model()
    card = {"data": {"n_crops": 64}, "metrics": {"loss": 12.5}, "hyperparameters": {"epochs": 3}}
    path = save_vae(tmp_path / "models" / "vae", model, card)
    return model, path


def test_round_trip_gives_identical_outputs(saved, tmp_path):
    model, path = saved
    assert path == tmp_path / "models" / "vae.safetensors"
    assert sorted(p.name for p in path.parent.iterdir()) == ["vae.json", "vae.safetensors"]  # no temporary files
    loaded, card = load_vae(path)
    assert not loaded.training
    assert loaded.cfg == model.cfg
    x = crops(6)
    model.eval()
    for a, b in zip(model.encode(x), loaded.encode(x), strict=True):
        assert torch.equal(a, b)
    z = torch.randn(6, SMALL.n_latents)
    assert torch.equal(model.decode(z), loaded.decode(z))

    assert card["format"] == "napari-cellstate model"
    assert card["format_version"] == 2
    assert card["architecture"] == "beta-tcvae"
    assert card["config"] == SMALL.model_dump(mode="json")
    assert card["metrics"] == {"loss": 12.5}
    assert card["data"] == {"n_crops": 64}
    assert set(card["versions"]) == {"napari_cellstate", "torch", "numpy", "safetensors"}
    assert card["weights"]["file"] == "vae.safetensors"
    assert path.stat().st_size < 0.1e6


@pytest.mark.parametrize("name", ["vae", "vae.json", "vae.safetensors"])
def test_path_with_or_without_suffix(saved, name):
    _, path = saved
    loaded, _ = load_vae(path.parent / name, device="cpu")
    assert loaded.cfg == SMALL
    assert [p.name for p in model_paths("m.v2")] == ["m.v2.safetensors", "m.v2.json"]


def test_default_model_file_size(tmp_path):
    path = save_vae(tmp_path / "default", BetaTCVAE(VAEConfig()), {})
    assert 2.3e6 < path.stat().st_size < 2.5e6


def test_caller_versions_and_objects_are_kept(tmp_path):
    card = {"versions": {"torch": "x"}, "config": SMALL, "metrics": {"accuracy": torch.tensor(0.5)}}
    path = save_vae(tmp_path / "vae", small_model(), card)
    written = json.loads(path.with_suffix(".json").read_text())
    assert written["versions"] == {"torch": "x"}
    assert written["metrics"] == {"accuracy": 0.5}
    assert written["config"] == SMALL.model_dump(mode="json")


def test_save_refuses_bad_cards(tmp_path):
    with pytest.raises(ValueError, match="format_version"):
        save_vae(tmp_path / "vae", small_model(), {"format_version": 3})
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_vae(tmp_path / "vae", small_model(), {"metrics": {1, 2}})
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_loading_never_unpickles(saved, monkeypatch):
    _, path = saved

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    load_vae(path)


def test_missing_files(saved):
    _, path = saved
    path.with_suffix(".json").write_text("epochs: 3\n")  # the .json is a copy for people: never read
    assert load_vae(path)[0].cfg == SMALL
    path.unlink()
    with pytest.raises(ModelFileError, match=r"not found: .*vae\.safetensors"):
        load_vae(path)


def test_another_format_version(saved, edit_card):
    _, path = saved
    edit_card(path, format_version=3)
    with pytest.raises(
        ModelFileError, match=r"format_version 3; this version of napari-cellstate reads format_version 2"
    ):
        load_vae(path)


def test_another_architecture(saved, edit_card):
    _, path = saved
    edit_card(path, architecture="sparse-head")
    with pytest.raises(ModelFileError, match=r"holds a 'sparse-head' model, not a 'beta-tcvae'"):
        load_vae(path)


def test_an_invalid_config(saved, edit_card):
    _, path = saved
    edit_card(path, config={**SMALL.model_dump(mode="json"), "crop_size_px": 8})
    with pytest.raises(ModelFileError, match="invalid VAE config"):
        load_vae(path)


def test_truncated_weights(saved):
    _, path = saved
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=r"not a readable safetensors file \(truncated or corrupted\?\)"):
        load_vae(path)


def test_corrupted_weights(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte inside a tensor: safetensors cannot see it, the hash can
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        load_vae(path)


def test_weights_that_do_not_match_the_config(saved, edit_card):
    _, path = saved
    edit_card(path, config={**SMALL.model_dump(mode="json"), "n_latents": 6})
    with pytest.raises(
        ModelFileError,
        match=r"do not match the config.*mu_head\.weight has shape \(4, 32\), the config needs \(6, 32\)",
    ):
        load_vae(path)


def test_missing_and_unexpected_tensors(saved, edit_card):
    _, path = saved
    state = load_file(path)
    state.pop("mu_head.bias")
    state["extra.weight"] = torch.zeros(3)
    edit_card(path, state=state)
    with pytest.raises(
        ModelFileError, match=r"missing tensors \['mu_head\.bias'\]; unexpected tensors \['extra\.weight'\]"
    ):
        load_vae(path)


@pytest.mark.slow
def test_vae_package_imports_neither_napari_nor_qt():
    code = (
        "import sys, napari_cellstate.core.vae; "
        "print(sorted({'napari', 'qtpy', 'PyQt6', 'magicgui'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
