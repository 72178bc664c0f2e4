"""Head model files: MLP heads (masks included) and CNN classifiers round-trip; wrong files and data are refused."""

import pytest
import torch
from safetensors.torch import load_file

from napari_cellstate.core.config import CNNConfig, HeadConfig, VAEConfig
from napari_cellstate.core.heads import CNNClassifier, MLPHead, check_head_inputs, load_head, save_head
from napari_cellstate.core.model_files import ModelFileError
from napari_cellstate.core.vae import BetaTCVAE, save_vae

HEAD = HeadConfig(n_inputs=8, hidden=(6, 5))
CNN = CNNConfig(crop_size_px=16, channels=(4,))


def sparse_head(seed=0):
    torch.manual_seed(seed)
    head = MLPHead(HEAD)
    gen = torch.Generator().manual_seed(seed)
    head.set_masks([(torch.rand(m.shape, generator=gen) < 0.3).float() for m in head.masks])
    return head


def test_sparse_mlp_head_round_trip(tmp_path):
    head = sparse_head()
    names = [f"z{i}" for i in range(HEAD.n_inputs)]
    path = save_head(tmp_path / "heads" / "sparse", head, {"scheme": "sparse", "input_names": names})
    assert sorted(p.name for p in path.parent.iterdir()) == ["sparse.json", "sparse.safetensors"]

    loaded, card = load_head(path)
    assert isinstance(loaded, MLPHead)
    assert not loaded.training
    assert loaded.cfg == HEAD
    for a, b in zip(head.masks, loaded.masks, strict=True):
        assert torch.equal(a, b)
    assert loaded.active_weights() == head.active_weights() < sum(m.numel() for m in head.masks)
    x = torch.randn(10, HEAD.n_inputs)
    head.eval()
    assert torch.equal(head(x), loaded(x))

    assert card["architecture"] == "mlp-head"
    assert card["config"] == HEAD.model_dump(mode="json")
    assert card["scheme"] == "sparse"
    assert card["input_names"] == names
    check_head_inputs(card, HEAD.n_inputs)
    check_head_inputs(loaded, HEAD.n_inputs)


def test_loading_reapplies_the_masks(tmp_path, edit_card):
    head = sparse_head()
    path = save_head(tmp_path / "head", head)
    state = load_file(path)
    state["layers.0.weight"] = torch.ones_like(state["layers.0.weight"])  # weights outside the mask
    edit_card(path, state=state)  # a consistent file whose weights ignore the masks
    loaded, _ = load_head(path)
    assert torch.equal(loaded.layers[0].weight, loaded.mask0)
    assert torch.equal(loaded.mask0, head.mask0)


def test_cnn_classifier_round_trip(tmp_path):
    torch.manual_seed(0)
    model = CNNClassifier(CNN, HEAD)
    model.head.set_masks([(torch.rand(m.shape) < 0.5).float() for m in model.head.masks])
    path = save_head(tmp_path / "cnn", model, {"scheme": "cnn"})
    loaded, card = load_head(path.with_suffix(".json"))
    assert isinstance(loaded, CNNClassifier)
    assert not loaded.training
    assert loaded.cfg == CNN
    assert loaded.head.cfg == HEAD
    assert card["architecture"] == "cnn-classifier"
    assert card["config"] == {"cnn": CNN.model_dump(mode="json"), "head": HEAD.model_dump(mode="json")}
    assert card["scheme"] == "cnn"
    crops = torch.randn(4, 16, 16)
    model.eval()
    assert torch.equal(model(crops), loaded(crops))
    for a, b in zip(model.head.masks, loaded.head.masks, strict=True):
        assert torch.equal(a, b)


def test_a_vae_file_is_not_a_head(tmp_path):
    vae = BetaTCVAE(VAEConfig(crop_size_px=16, n_latents=2, channels=(4,), dense_units=8))
    path = save_vae(tmp_path / "vae", vae)
    with pytest.raises(
        ModelFileError,
        match=r"holds a 'beta-tcvae' model, not a 'mlp-head' or 'cnn-classifier'; load it with load_vae",
    ):
        load_head(path)


def test_save_refuses_other_models(tmp_path):
    with pytest.raises(TypeError, match="Expected an MLPHead or a CNNClassifier, got Linear"):
        save_head(tmp_path / "m", torch.nn.Linear(2, 1))
    with pytest.raises(ValueError, match=r"card\['architecture'\]"):
        save_head(tmp_path / "m", MLPHead(HEAD), {"architecture": "beta-tcvae"})
    assert list(tmp_path.iterdir()) == []


def test_wrong_number_of_inputs(tmp_path):
    head = MLPHead(HeadConfig(n_inputs=32))
    _, card = load_head(save_head(tmp_path / "head", head))
    message = (
        r"This head was trained on 32 latents but the data has 16: encode the crops with the same VAE the head was "
        r"trained with \(its card names it\), or train a new head\."
    )
    for card_or_model in (card, head):
        with pytest.raises(ModelFileError, match=message):
            check_head_inputs(card_or_model, 16)


def test_check_head_inputs_on_a_cnn_or_a_non_head():
    model = CNNClassifier(CNN, HEAD)
    card = {"architecture": "cnn-classifier", "config": {"cnn": CNN.model_dump(), "head": HEAD.model_dump()}}
    for card_or_model in (model, card):
        with pytest.raises(ModelFileError, match=r"CNN classifier \(Scheme 1\): it takes 16x16 px crops, not 8 lat"):
            check_head_inputs(card_or_model, 8)
    with pytest.raises(ModelFileError, match=r"describes a 'beta-tcvae' model, not a head"):
        check_head_inputs({"architecture": "beta-tcvae", "config": {}}, 8)
    with pytest.raises(ModelFileError, match="'mlp-head' card has an invalid config"):
        check_head_inputs({"architecture": "mlp-head", "config": {"n_inputs": 0}}, 8)
    with pytest.raises(TypeError, match="got Linear"):
        check_head_inputs(torch.nn.Linear(2, 1), 2)


def test_invalid_or_mismatched_configs(tmp_path, edit_card):
    path = save_head(tmp_path / "head", MLPHead(HEAD))
    edit_card(path, config={"n_inputs": 0})
    with pytest.raises(ModelFileError, match="has an invalid head config"):
        load_head(path)
    edit_card(path, config={**HEAD.model_dump(mode="json"), "n_inputs": 9})
    with pytest.raises(ModelFileError, match=r"layers\.0\.weight has shape \(6, 8\), the config needs \(6, 9\)"):
        load_head(path)

    path = save_head(tmp_path / "cnn", CNNClassifier(CNN, HEAD))
    edit_card(path, config={"head": HEAD.model_dump(mode="json")})
    with pytest.raises(ModelFileError, match="has an invalid CNN config"):
        load_head(path)
    edit_card(path, config={"cnn": {"crop_size_px": 16, "channels": [4] * 5}, "head": HEAD.model_dump(mode="json")})
    with pytest.raises(ModelFileError, match="cannot build the model from its config: 5 conv blocks"):
        load_head(path)


def test_truncated_weights(tmp_path):
    path = save_head(tmp_path / "head", sparse_head())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match=r"not a readable safetensors file \(truncated or corrupted\?\)"):
        load_head(path)
