"""Real-data workflow: importing labelled crops, crop morphology, latent naming, cross-validation with baselines."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_cellstate.cli import main
from napari_cellstate.core.crop_morphology import measure_crops
from napari_cellstate.core.heads.crossval import baseline_scores, cv_folds, small_test_warning
from napari_cellstate.core.heads.data import HeadData, project_head_data
from napari_cellstate.core.heads.fit import MIN_CNN_STEPS, default_training
from napari_cellstate.core.project import load_crop_dataset
from napari_cellstate.core.vae.fit import synthetic_training_crops
from napari_cellstate.core.vae.naming import LatentNamingError, name_latents


@pytest.fixture(scope="module")
def synthetic_crops():
    return synthetic_training_crops(120, seed=5)


def _crop_folder(root, crops, states, other_every=10):
    """Crops saved as 16-bit TIFFs under mixed-case, padded class folder names, plus one unknown class."""
    for i, (crop, state) in enumerate(zip(crops, states, strict=True)):
        name = (
            "apoptotic"
            if i % other_every == other_every - 1
            else {"interphase": " Interphase", "metaphase": "METAPHASE"}[state]
        )
        (root / name).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(root / name / f"cell_{i:03d}.tif", ((crop + 4) * 1000).astype(np.uint16))
    return root


def test_import_crops_maps_class_folders_and_encode_names_latents(synthetic_crops, tmp_path, capsys):
    crops, factors = synthetic_crops
    folder = _crop_folder(tmp_path / "crops", crops, factors["state"].astype(str))
    project = tmp_path / "project"
    assert main(["import-crops", str(folder), "--project", str(project), "--pixel-size", "0.3"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"'METAPHASE'\s+-> 'metaphase'", printed)
    assert "'apoptotic'" in printed
    labels = load_crop_dataset(project).objects["label"].astype(str)
    assert set(labels) == {"interphase", "metaphase", "apoptotic"}
    assert (labels == "apoptotic").sum() == 12  # an unknown class is kept, not dropped

    assert main(["encode", str(project)]) == 0
    printed = capsys.readouterr().out
    assert "latents: z" in printed
    assert "nan" not in printed.lower()
    assert "reconstruction MSE" in printed
    data = project_head_data(project)  # the folder names became the states the heads train on
    assert len(data.labels) == 108
    assert data.labels.sum() > 40
    assert any("↔" in name for name in data.input_names)


def test_encode_says_why_latents_have_no_names_on_a_few_crops(synthetic_crops, tmp_path, capsys):
    crops, factors = synthetic_crops
    folder = _crop_folder(tmp_path / "crops", crops[:8], factors["state"].astype(str)[:8], other_every=100)
    project = tmp_path / "project"
    assert main(["import-crops", str(folder), "--project", str(project)]) == 0
    assert main(["encode", str(project)]) == 0
    printed = capsys.readouterr().out
    assert "latents not named: Only 8 of 8 cells" in printed
    assert "nan" not in printed.lower()


def test_a_class_folder_name_that_is_only_spaces_is_refused(tmp_path):
    (tmp_path / "crops" / "  ").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "crops" / "  " / "a.tif", np.ones((8, 8), np.uint16))
    assert main(["import-crops", str(tmp_path / "crops"), "--project", str(tmp_path / "p")]) == 2
    assert not (tmp_path / "p" / "runs").exists() or not any((tmp_path / "p" / "runs").iterdir())


def test_crop_morphology_follows_the_drawn_nucleus(synthetic_crops):
    crops, factors = synthetic_crops
    measured = measure_crops(crops)
    assert measured.notna().all().all()
    assert np.corrcoef(measured["area"], factors["area"])[0, 1] > 0.8
    assert np.corrcoef(measured["eccentricity"], factors["eccentricity"])[0, 1] > 0.5


def test_naming_refuses_too_few_cells_and_ignores_constant_quantities():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3))
    table = pd.DataFrame({"area": z[:, 0] * 3 + 100, "eccentricity": 0.5, "intensity_mean": np.nan})
    table.loc[:4, "intensity_mean"] = 1.0
    named = name_latents(z, table[["area", "eccentricity"]])
    assert list(named["best_match"]) == ["area"] * 3
    assert named["r"].notna().all()
    with pytest.raises(LatentNamingError, match="Only 5 of 50 cells"):
        name_latents(z, table)  # intensity measured on 5 cells only
    with pytest.raises(LatentNamingError, match="the same for all cells"):
        name_latents(z, table[["eccentricity"]])


def test_small_sets_train_the_cnn_for_hundreds_of_steps():
    training = default_training("cnn", n_rows=80)
    assert training.epochs * -(-80 // training.batch_size) >= MIN_CNN_STEPS
    assert training.weight_decay > 0


def _toy(n_cells=40, rows_per_cell=3, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_cells), rows_per_cell)
    labels = (groups % 3 == 0).astype(np.int8)
    latents = rng.normal(size=(len(groups), 4)).astype(np.float32)
    latents[:, 0] += 2.5 * labels
    split = np.where(groups % 10 == 0, "test", "train")
    return HeadData(labels, split, groups, latents, None, [f"z{j}" for j in range(4)], "toy")


def test_folds_are_stratified_and_keep_each_cell_on_one_side():
    data = _toy()
    folds = cv_folds(data, k=5)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(data.labels)))
    for test in folds:
        assert set(data.groups[test]).isdisjoint(np.delete(data.groups, test))
        assert 0 < data.labels[test].mean() < 1
    assert [t.tolist() for t in cv_folds(data, k=5)] == [t.tolist() for t in folds]


def test_baseline_learns_a_linear_signal_and_small_test_sets_are_flagged():
    data = _toy()
    scores = baseline_scores(data, "dense", data.rows("train"), data.rows("test"))
    assert scores["balanced_accuracy"] > 0.8
    assert "--cv" in small_test_warning(data)


@pytest.mark.slow
def test_train_heads_cv_json_is_one_document_with_baselines(tmp_path, capsys, one_torch_thread):
    args = ["train-heads", "--synthetic", "--n-cells", "100", "--cv", "3", "--json", "--schemes", "dense", "sparse"]
    assert main([*args, "--seeds", "2"]) == 0  # each scheme's default training for 66 cells
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert "fold 3/3" in captured.err
    for scheme in ("dense", "sparse"):
        entry = document["schemes"][scheme]
        assert len(entry["fold_accuracies"]) == 3
        assert len(entry["baseline_fold_accuracies"]) == 3
        assert entry["within_one_sd"]
    assert document["schemes"]["sparse"]["active_weights"] < document["schemes"]["dense"]["active_weights"] / 10
