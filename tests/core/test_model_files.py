"""The architecture-independent model file format: round trip, atomic writes and every refusal, with its message."""

import hashlib
import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from napari_cellstate.core.config import HeadConfig
from napari_cellstate.core.model_files import (
    FORMAT,
    FORMAT_VERSION,
    MAX_PARAMETERS,
    ModelFileError,
    build_model,
    load_state_strict,
    loads_bounded,
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
    assert card["format_version"] == FORMAT_VERSION == 2
    assert card["architecture"] == "toy"
    assert card["config"] == {"n": 4}
    assert card["weights"]["file"] == "toy.safetensors"
    assert len(card["weights"]["tensors_sha256"]) == 64
    assert set(card["versions"]) == {"napari_cellstate", "torch", "numpy", "safetensors"}
    assert card["metrics"] == {"accuracy": 0.75}
    assert card["scheme"] == "sparse"
    assert card["path"] == str(tmp_path / "data")
    assert json.loads(saved.with_suffix(".json").read_text()) == card  # the .json is a copy of the card inside


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
        ({"format_version": 3}, ValueError, r"card\['format_version'\] is written by save_model and would be 2"),
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


def inner_card(path, text):
    """Replace the card inside a saved model by ``text``, keeping the tensors."""
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    save_file(load_file(path), path, metadata={**metadata, "card": text})


def save_v1(path, state, card):
    """A format version 1 model, as napari-cellstate wrote it before: the card only in the .json beside."""
    save_file(state, path, metadata={"format": FORMAT, "architecture": card["architecture"]})
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    full = {"format": FORMAT, "format_version": 1, **card, "weights": {"file": path.name, "sha256": sha}}
    path.with_suffix(".json").write_text(json.dumps(full))


def test_missing_files(saved):
    saved.with_suffix(".json").unlink()  # only a copy: the model is whole without it
    assert set(read_model(saved, "toy")[0]) == set(toy_state())
    saved.unlink()
    with pytest.raises(ModelFileError, match=r"not found: .*toy\.safetensors\. A model is a \.safetensors file"):
        read_model(saved, "toy")


def test_the_json_copy_is_never_read(saved):
    saved.with_suffix(".json").write_text('{"format": "mine", "config": {"n": 99}}')
    assert read_model(saved, "toy")[1]["config"] == {"n": 4}


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
        ('{"a": ' * 5000 + "1" + "}" * 5000, r"nests 5000 levels deep; a model card needs at most 32"),
    ],
)
def test_a_card_that_is_not_a_model_card(saved, content, message):
    inner_card(saved, content)
    with pytest.raises(ModelFileError, match=message):
        read_model(saved, "toy")


@pytest.mark.parametrize("version", [3, 0, 1, "2", None])
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


@pytest.mark.parametrize("keep", [0, 7, 60, -1])
def test_truncated_weights(saved, keep):
    saved.write_bytes(saved.read_bytes()[:keep])
    with pytest.raises(ModelFileError, match=r"not a readable safetensors file \(truncated or corrupted\?\)"):
        read_model(saved, "toy")


def test_corrupted_weights(saved):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0xFF  # inside a tensor: only the hash sees it
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"\(SHA-256 mismatch\)"):
        read_model(saved, "toy")
    saved.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        read_model(saved, "toy")


@pytest.mark.parametrize("weights", [None, {"file": "toy.safetensors"}, {"tensors_sha256": "abc"}, "x"])
def test_a_card_without_the_hash_is_refused(saved, edit_card, weights):
    edit_card(saved, weights=weights)
    with pytest.raises(ModelFileError, match=r"has no valid weights\.tensors_sha256 .* cannot be checked"):
        read_model(saved, "toy")


def test_edited_weights_with_a_matching_hash_are_read(saved, edit_card):
    state = load_file(saved)
    state["new"] = torch.zeros(2)
    edit_card(saved, state=state)
    assert "new" in read_model(saved, "toy")[0]


def test_non_finite_weights_are_refused(saved, edit_card, tmp_path):
    for value in (float("nan"), float("inf")):
        save_model(saved, toy_state(), architecture="toy", config={"n": 4})
        state = toy_state()
        state["layer.bias"][1] = value
        with pytest.raises(ModelFileError, match=r"\['layer\.bias'\] hold NaN or infinite values .* previous"):
            save_model(saved, state, architecture="toy", config={"n": 4})
        assert torch.equal(read_model(saved, "toy")[0]["layer.bias"], toy_state()["layer.bias"])  # old model kept
        edit_card(saved, state={k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        with pytest.raises(ModelFileError, match=r"\['layer\.bias'\] hold NaN or infinite values, so every result"):
            read_model(saved, "toy")


def test_format_version_1_files_are_read(tmp_path):
    path = tmp_path / "old.safetensors"
    state = {"w": torch.arange(3.0)}
    save_v1(path, state, {"architecture": "toy", "config": {"n": 3}})
    read_state, card = read_model(path, "toy")
    assert torch.equal(read_state["w"], state["w"])
    assert card["format_version"] == 1
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelFileError, match=r"SHA-256 mismatch"):
        read_model(path, "toy")
    save_v1(path, state, {"architecture": "toy", "config": {}})
    card = json.loads(path.with_suffix(".json").read_text())
    card["weights"].pop("sha256")
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match=r"old\.json has no valid weights\.sha256"):
        read_model(path, "toy")
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelFileError, match=r"Model card not found: .*old\.json\. old\.safetensors holds no card"):
        read_model(path, "toy")


def test_loads_bounded():
    assert loads_bounded('{"a": "[[[[{{{{"}', "t") == {"a": "[[[[{{{{"}
    assert len(loads_bounded("[" * 32 + "]" * 32, "t")) == 1
    with pytest.raises(ModelFileError, match="nests 33 levels"):
        loads_bounded("[" * 33 + "]" * 33, "t")


def test_validate_config(tmp_path):
    assert validate_config(HeadConfig, {"n_inputs": 3}, tmp_path / "m", what="head") == HeadConfig(n_inputs=3)
    with pytest.raises(ModelFileError, match=r"(?s)m\.safetensors has an invalid head config: .*n_inputs"):
        validate_config(HeadConfig, {"n_inputs": 0}, tmp_path / "m.safetensors", what="head")
    with pytest.raises(ModelFileError, match="has an invalid head config"):
        validate_config(HeadConfig, None, tmp_path / "m", what="head")


def test_build_model(tmp_path):
    def refuse():
        raise ValueError("too many blocks")

    with pytest.raises(ModelFileError, match=r"m\.safetensors: cannot build the model from its config: too many"):
        build_model(refuse, tmp_path / "m")
    side = int(MAX_PARAMETERS**0.5) + 1
    built = []
    with pytest.raises(ModelFileError, match=r"asks for [\d,]+ parameters, more than the 100,000,000"):
        build_model(lambda: built.append(1) or torch.nn.Linear(side, side), tmp_path / "m")
    assert built == [1]  # built once, on the meta device only


def test_load_state_strict(saved):
    module = torch.nn.Linear(4, 3)
    state = {"weight": torch.ones(3, 4), "bias": torch.zeros(3)}
    assert load_state_strict(module, state, saved) is module
    assert torch.equal(module.weight, torch.ones(3, 4))

    with pytest.raises(
        ModelFileError,
        match=r"The weights in .*toy\.safetensors do not match the config in its card: "
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
