"""The attack and audit commands on a movie project: results saved whole, bad input explained, nothing written."""

import json

import numpy as np
import pandas as pd
import pytest

from napari_cellstate.cli import main
from napari_cellstate.core.attacks.results import crop_placement, load_attack_result
from napari_cellstate.core.config import CNNConfig, CropConfig, HeadConfig
from napari_cellstate.core.crops import extract_crops
from napari_cellstate.core.heads import CNNClassifier, save_head


@pytest.fixture(scope="module")
def heads(labelled_project, tmp_path_factory, one_torch_thread):
    from napari_cellstate.core.heads.data import project_head_data
    from napari_cellstate.core.heads.fit import train_head

    folder = tmp_path_factory.mktemp("heads")
    result = train_head("dense", project_head_data(labelled_project))
    save_head(folder / "dense_head", result.model, result.card)
    return folder


@pytest.fixture(scope="module")
def cell_ids(labelled_project):
    from napari_cellstate.core.project import load_crop_dataset

    return load_crop_dataset(labelled_project).objects["object_id"].to_numpy()[:5]


def test_attack_saves_a_result_that_reloads(labelled_project, heads, cell_ids, tmp_path, capsys):
    out = tmp_path / "attack"
    ids = [str(i) for i in cell_ids]
    code = main(["attack", str(labelled_project), "--head", str(heads / "dense_head"), "--cells", *ids,
                 "--space", "latent", "--freeze", "z3", "z17", "--out", str(out), "--json"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scheme"] == 2
    assert summary["frozen"] == ["z3", "z17"]
    assert summary["n_cells"] == 5
    result, saved = load_attack_result(out)
    assert result.cells["object_id"].tolist() == list(cell_ids)
    assert np.all(result.perturbation[:, [3, 17]] == 0)
    assert result.image_maps().shape == (5, 64, 64)
    assert saved["geometry"]["window_px"] == 64
    assert saved["geometry"]["size_px"] == 64


def test_minimal_pgd_search_from_the_command_line(labelled_project, heads, cell_ids, tmp_path, capsys):
    ids = [str(i) for i in cell_ids[:3]]
    code = main(["attack", str(labelled_project), "--head", str(heads / "dense_head"), "--cells", *ids,
                 "--space", "latent", "--minimal", "--method", "pgd",
                 "--out", str(tmp_path / "a"), "--json"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "minimal_pgd"
    for cell in summary["cells"]:  # a cell flips exactly when the search found its ε
        assert cell["flipped"] == (cell["epsilon"] is not None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cells", "987654321"], "no crop"),
        (["--epsilon", "0"], "positive"),
        (["--epsilon", "-1"], "positive"),
        (["--space", "latent", "--freeze", *[f"z{j}" for j in range(32)]], "nothing is left"),
    ],
)
def test_bad_attack_requests_are_explained_and_write_nothing(labelled_project, heads, tmp_path, capsys, extra, message):
    out = tmp_path / "attack"
    code = main(["attack", str(labelled_project), "--head", str(heads / "dense_head"), "--out", str(out), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_latent_attack_on_scheme_1_and_missing_heads_are_explained(labelled_project, tmp_path, capsys):
    cnn = CNNClassifier(CNNConfig(crop_size_px=64, channels=(4, 8)), HeadConfig())
    save_head(tmp_path / "heads" / "cnn_head", cnn, {"scheme": "cnn"})
    out = tmp_path / "attack"
    args = ["attack", str(labelled_project), "--head", str(tmp_path / "heads" / "cnn_head"), "--space", "latent"]
    assert main([*args, "--out", str(out)]) == 2
    assert "Scheme 1" in capsys.readouterr().err
    assert not out.exists()
    assert main(["attack", str(labelled_project), "--head", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "No trained head" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "empty").mkdir()
    assert main(["audit", str(labelled_project), "--heads", str(tmp_path / "empty")]) == 2
    assert "No trained head" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "audit").exists()


def test_audit_json_has_one_row_per_head(labelled_project, heads, tmp_path, capsys):
    code = main(["audit", str(labelled_project), "--heads", str(heads), "--out", str(tmp_path / "audit"),
                 "--max-cells", "60", "--n-minimal", "4", "--json"])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["scheme"] for row in rows] == [2]
    keys = {"scheme", "head", "central_energy_share", "outside_replaced_flip_rate", "rotation_disagreement",
            "noise_flip_rate", "frozen_central_flip_rate", "median_minimal_epsilon",
            "median_minimal_epsilon_fgsm"}  # fmt: skip
    assert keys <= set(rows[0])
    assert len(rows[0]["noise_flip_rate"]) == 3
    assert 0 <= rows[0]["central_energy_share"] <= 1
    assert len(pd.read_csv(tmp_path / "audit" / "audit.csv")) == 1


def test_placement_lays_a_resized_crop_over_its_cell():
    movie = np.zeros((1, 200, 200), np.float32)
    y, x = 97.0, 120.0
    movie[0, int(y), int(x)] = 100.0
    objects = pd.DataFrame({"t": [0], "y": [y], "x": [x]})
    cfg = CropConfig(size_px=32, pixel_size_um=0.66, standardise=False, clip=None)  # window of 64 movie px
    result = extract_crops(movie, objects, cfg, pixel_size_um=0.33)
    window = result.settings["window_px"]
    assert window == 64
    translate, scale = crop_placement(y, x, 32, window)
    peak = np.array(np.unravel_index(np.argmax(result.crops[0]), (32, 32)))
    assert np.all(np.abs(translate + peak * scale - [y, x]) <= scale / 2)
    assert np.allclose(scale, 2.0)


def _save_formula(folder, columns):
    from napari_cellstate.core.symbolic.expression import SymbolicExpression, symbol
    from napari_cellstate.core.symbolic.files import save_expression

    folder.mkdir(parents=True, exist_ok=True)
    return save_expression(folder / "symbolic", SymbolicExpression(symbol("z11") - 0.5), columns)


def test_a_saved_formula_is_audited_and_attacked_as_scheme_4(labelled_project, heads, tmp_path, capsys):
    import shutil

    folder = tmp_path / "models"
    shutil.copytree(heads, folder)
    _save_formula(folder, [f"z{j}" for j in range(32)])
    code = main(["audit", str(labelled_project), "--heads", str(folder), "--out", str(tmp_path / "audit"),
                 "--max-cells", "40", "--n-minimal", "4", "--json"])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["scheme"] for row in rows] == [2, 4]
    formula = rows[1]
    assert formula["head"] == "symbolic"
    # it reads z11 alone: freezing the central latents (z11 among them, or not) decides whether it can flip at all
    assert formula["frozen_central_flip_rate"] is not None
    assert 0 <= formula["central_energy_share"] <= 1

    from napari_cellstate.core.attacks import load_scheme

    scheme = load_scheme(folder / "symbolic.json")
    crops = np.random.default_rng(0).normal(size=(3, 64, 64)).astype(np.float32)
    latents = scheme.encode(crops)
    assert np.allclose(scheme.scores_of_crops(crops).numpy(), latents[:, 11].numpy() - 0.5, atol=1e-5)


def test_a_formula_not_over_the_latents_cannot_be_attacked(tmp_path):
    from napari_cellstate.core.attacks import AttackError, load_scheme

    path = _save_formula(tmp_path, ["area", "z11"])
    with pytest.raises(AttackError, match="not the β-TCVAE's latents"):
        load_scheme(path)
