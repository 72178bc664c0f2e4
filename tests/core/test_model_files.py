"""The architecture-independent model file format: round trip, atomic writes and every refusal, with its message."""

import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from napari_cellstate.core.config import HeadConfig
from napari_cellstate.core.model_files import (
    FORMAT,
    FORMAT_VERSION,
    ModelFileError,
    build_model,
    load_state_strict,
    model_paths,
    read_model,
    save_model,
    validate_config,
)


def toy_state():
    torch.manual_seed(0)
    return {
        "layer.weight": torch.randn(3, 4, dtype=torch.float64),
        "layer.bias": torch.randn(3),
        "steps": torch.tensor([7, 8], dtype=torch.int64),
        "keep": torch.tensor([True, False, True]),
    }


@pytest.fixture
def saved(tmp_path):
    card = {"metrics": {"accuracy": torch.tensor(0.75)}, "scheme": "sparse", "path": tmp_path / "data"}
    path = save_model(tmp_path / "models" / "toy", toy_state(), architecture="toy", config={"n": 4}, card=card)
    return path


def test_round_trip(saved, tmp_path):
    assert saved == tmp_path / "models" / "toy.safetensors"
    assert sorted(p.name for p in saved.parent.iterdir()) == ["toy.json", "toy.safetensors"]  # no temporary files
    state, card = read_model(saved, "toy")
    original = toy_state()
    assert set(state) == set(original)
    assert state["layer.weight"].dtype == torch.float32  # floats saved as float32
    assert torch.equal(state["layer.weight"], original["layer.weight"].float())
    assert torch.equal(state["layer.bias"], original["layer.bias"])
    assert state["steps"].dtype == torch.int64  # other dtypes kept
    assert state["steps"].tolist() == [7, 8]
    assert state["keep"].dtype == torch.bool
    assert state["keep"].tolist() == [True, False, True]

    assert list(card)[:5] == ["format", "format_version", "architecture", "config", "weights"]
    assert card["format"] == FORMAT == "napari-cellstate model"
    assert card["format_version"] == FORMAT_VERSION == 1
    assert card["architecture"] == "toy"
    assert card["config"] == {"n": 4}
    assert card["weights"]["file"] == "toy.safetensors"
    assert len(card["weights"]["sha256"]) == 64
    assert set(card["versions"]) == {"napari_cellstate", "torch", "numpy", "safetensors"}
    assert card["metrics"] == {"accuracy": 0.75}
    assert card["scheme"] == "sparse"
    assert card["path"] == str(tmp_path / "data")


def test_config_from_a_pydantic_model_and_a_matching_reserved_key(tmp_path):
    cfg = HeadConfig(n_inputs=4)
    path = save_model(tmp_path / "m", {}, architecture="toy", config=cfg, card={"config": cfg, "architecture": "toy"})
    _, card = read_model(path, "toy")
    assert card["config"] == cfg.model_dump(mode="json")
    assert HeadConfig.model_validate(card["config"]) == cfg


@pytest.mark.parametrize("name", ["toy", "toy.json", "toy.safetensors"])
def test_path_with_or_without_suffix(saved, name):
    state, _ = read_model(saved.parent / name, ("other", "toy"))
    assert set(state) == set(toy_state())
    assert [p.name for p in model_paths("m.v2")] == ["m.v2.safetensors", "m.v2.json"]


def test_caller_weights_entry_is_replaced(tmp_path):
    path = save_model(tmp_path / "m", toy_state(), architecture="toy", config={}, card={"weights": "mine"})
    _, card = read_model(path, "toy")
    assert card["weights"]["file"] == "m.safetensors"


@pytest.mark.parametrize(
    ("card", "error", "message"),
    [
        ({"format_version": 3}, ValueError, r"card\['format_version'\] is written by save_model and would be 1"),
        ({"architecture": "other"}, ValueError, r"card\['architecture'\] .* would be 'toy', not 'other'"),
        ({"config": {"n": 5}}, ValueError, r"card\['config'\]"),
        ({"format": "mine"}, ValueError, r"card\['format'\]"),
        ({"metrics": {1, 2}}, ValueError, "not JSON-serialisable"),
    ],
)
def test_save_refuses_bad_cards(tmp_path, card, error, message):
    with pytest.raises(error, match=message):
        save_model(tmp_path / "m", toy_state(), architecture="toy", config={"n": 4}, card=card)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_save_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_model(tmp_path / "m", toy_state(), architecture="toy", config={"f": object()})
    with pytest.raises(TypeError, match=r"dict of str to torch\.Tensor"):
        save_model(tmp_path / "m", {"w": [1.0]}, architecture="toy", config={})
    with pytest.raises(ValueError, match="non-empty string"):
        save_model(tmp_path / "m", toy_state(), architecture="", config={})
    assert list(tmp_path.iterdir()) == []


def test_reading_never_unpickles(saved, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    read_model(saved, "toy")


def test_missing_files(saved):
    saved.with_suffix(".json").unlink()
    with pytest.raises(ModelFileError, match=r"not found: .*toy\.json\. A model is a \.safetensors file"):
        read_model(saved, "toy")
    saved.unlink()
    with pytest.raises(ModelFileError, match=r"not found: .*toy\.json, .*toy\.safetensors"):
        read_model(saved, "toy")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"model": "mine"}',
            r"not a napari-cellstate model card \(expected format 'napari-cellstate model', found None",
        ),
        ("[1, 2, 3]", "not a napari-cellstate model card.*found 'list'"),
        ('{"format": "napari-cellstate project"}', "found 'napari-cellstate project'"),
        ("epochs: 3\n", r"is not a model card: it is not valid JSON \("),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", "is not a model card: it is not UTF-8 text"),
    ],
)
def test_a_card_that_is_not_a_model_card(saved, content, message):
    saved.with_suffix(".json").write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ModelFileError, match=message):
        read_model(saved, "toy")


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_an_unsupported_format_version(saved, version, edit_card):
    edit_card(saved, format_version=version)
    with pytest.raises(ModelFileError, match=r"has format_version .*; this version of napari-cellstate reads format_v"):
        read_model(saved, "toy")


def test_another_architecture(saved, edit_card):
    with pytest.raises(
        ModelFileError, match=r"holds a 'toy' model, not a 'beta-tcvae'; load it with the function for that archi"
    ):
        read_model(saved, "beta-tcvae")
    with pytest.raises(ModelFileError, match=r"holds a 'toy' model, not a 'mlp-head' or 'cnn-classifier'"):
        read_model(saved, ("mlp-head", "cnn-classifier"))
    edit_card(saved, architecture="beta-tcvae")  # a known architecture: the message names its loader
    with pytest.raises(ModelFileError, match=r"holds a 'beta-tcvae' model, not a 'toy'; load it with load_vae\."):
        read_model(saved, "toy")
    edit_card(saved, architecture=None)
    with pytest.raises(ModelFileError, match=r"holds a None model, not a 'toy'"):
        read_model(saved, "toy")


def test_truncated_weights(saved, edit_card):
    saved.write_bytes(saved.read_bytes()[:60])
    with pytest.raises(ModelFileError, match=r"corrupted or is not the weights file its card toy\.json was saved with"):
        read_model(saved, "toy")
    edit_card(saved, weights=None)  # without the checksum, safetensors itself must refuse it
    with pytest.raises(ModelFileError, match=r"not a readable safetensors file \(truncated or corrupted\?\)"):
        read_model(saved, "toy")


def test_corrupted_weights(saved, edit_card):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0xFF  # inside a tensor: only the checksum sees it
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"\(SHA-256 mismatch\)"):
        read_model(saved, "toy")
    saved.write_bytes(b"\xff" * 64)
    edit_card(saved, weights={"file": "toy.safetensors"})  # no sha256: not checked
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        read_model(saved, "toy")


def test_validate_config(tmp_path):
    assert validate_config(HeadConfig, {"n_inputs": 3}, tmp_path / "m", what="head") == HeadConfig(n_inputs=3)
    with pytest.raises(ModelFileError, match=r"(?s)m\.json has an invalid head config: .*n_inputs"):
        validate_config(HeadConfig, {"n_inputs": 0}, tmp_path / "m.safetensors", what="head")
    with pytest.raises(ModelFileError, match="has an invalid head config"):
        validate_config(HeadConfig, None, tmp_path / "m", what="head")


def test_build_model(tmp_path):
    def refuse():
        raise ValueError("too many blocks")

    with pytest.raises(ModelFileError, match=r"m\.json: cannot build the model from its config: too many blocks"):
        build_model(refuse, tmp_path / "m")


def test_load_state_strict(saved):
    module = torch.nn.Linear(4, 3)
    state = {"weight": torch.ones(3, 4), "bias": torch.zeros(3)}
    assert load_state_strict(module, state, saved) is module
    assert torch.equal(module.weight, torch.ones(3, 4))

    with pytest.raises(
        ModelFileError,
        match=r"The weights in .*toy\.safetensors do not match the config in .*toy\.json: "
        r"missing tensors \['bias'\]; unexpected tensors \['extra'\]; "
        r"weight has shape \(4, 4\), the config needs \(3, 4\)",
    ):
        load_state_strict(module, {"weight": torch.ones(4, 4), "extra": torch.ones(1)}, saved)
    with pytest.raises(ModelFileError, match=r"weight has dtype torch\.int64, expected a floating-point tensor"):
        load_state_strict(module, {"weight": torch.ones(3, 4, dtype=torch.int64), "bias": torch.zeros(3)}, saved)
    assert torch.equal(module.weight, torch.ones(3, 4))  # untouched by the refused loads

    counter = torch.nn.Module()
    counter.register_buffer("steps", torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ModelFileError, match=r"steps has dtype torch\.float32, expected torch\.int64"):
        load_state_strict(counter, {"steps": torch.zeros(2)}, saved)


def test_edited_weights_without_checksum_are_read(saved, edit_card):
    state = load_file(saved)
    state["new"] = torch.zeros(2)
    save_file(state, saved)
    edit_card(saved, weights=None)
    read_state, _ = read_model(saved, "toy")
    assert "new" in read_state
