"""Schemes 1-3 on synthetic crops and on a labelled movie project, and the bad inputs users hit."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from napari_cellstate.core.config import HeadConfig, TrainConfig
from napari_cellstate.core.heads import load_head, save_head
from napari_cellstate.core.heads.apply import apply_head
from napari_cellstate.core.heads.data import HeadDataError, project_head_data
from napari_cellstate.core.heads.fit import train_head
from napari_cellstate.core.labelling import LabelStore
from napari_cellstate.core.model_files import ModelFileError
from napari_cellstate.core.vae.naming import name_latents

QUICK = TrainConfig(epochs=8, batch_size=128, learning_rate=3e-3, seed=0, device="cpu")


@pytest.mark.slow
def test_dense_head_is_accurate_and_reproducible(head_data):
    first = train_head("dense", head_data, training=QUICK)
    second = train_head("dense", head_data, training=QUICK)
    assert first.metrics["accuracy"] >= 0.95
    assert first.metrics["active_weights"] == 1040
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert first.card["data"]["n_test"] == len(head_data.rows("test"))


@pytest.mark.slow
def test_cnn_scheme_learns_from_the_crops(head_data):
    result = train_head("cnn", head_data, training=TrainConfig(epochs=2, batch_size=64, seed=0, device="cpu"))
    assert result.metrics["accuracy"] >= 0.9


def test_one_class_or_too_few_cells_are_refused(head_data):
    data = head_data
    only_interphase = type(data)(**{**data.__dict__, "labels": np.zeros_like(data.labels)})
    with pytest.raises(HeadDataError, match="only one class"):
        train_head("dense", only_interphase)
    few = data.labels.copy()
    few[np.flatnonzero(few == 1)[5:]] = 0
    with pytest.raises(HeadDataError, match="Too few labelled cells"):
        train_head("dense", type(data)(**{**data.__dict__, "labels": few}))


@pytest.mark.slow
def test_movie_project_trains_applies_and_round_trips(labelled_project, tmp_path):
    data = project_head_data(labelled_project)
    assert set(np.unique(data.labels)) == {0, 1}
    assert not set(data.groups[data.rows("train")]) & set(data.groups[data.rows("test")])  # split by track
    result = train_head("sparse", data)
    # a small movie: 21 metaphase cell-frames on 5 cells, 4 of them (one cell) in the test set
    assert result.metrics["accuracy"] >= 0.85
    assert result.metrics["active_weights"] <= 31
    size_latent = int(name_latents(data.latents, data.factors)["area"].abs().idxmax())
    assert size_latent in result.metrics["used_inputs"]  # it reads nuclear size
    saved = save_head(tmp_path / "sparse", result.model, result.card)
    model, card = load_head(saved)
    assert card["scheme"] == "sparse"
    assert card["input_names"] == data.input_names
    objects = apply_head(labelled_project, model)
    given = LabelStore(labelled_project / "labels.csv").labels_for(objects)
    labelled = given.isin(["interphase", "metaphase"])
    agreement = (objects.loc[labelled, "head_class"] == given[labelled]).mean()
    assert agreement >= 0.95
    assert set(objects["head_class"]) <= {"interphase", "metaphase"}
    assert np.array_equal(objects["head_score"] >= 0, objects["head_class"] == "metaphase")


def test_a_head_for_another_latent_size_is_refused(labelled_project, tmp_path):
    from napari_cellstate.core.heads import MLPHead

    saved = save_head(tmp_path / "small", MLPHead(HeadConfig(n_inputs=8)), {"scheme": "dense"})
    model, _ = load_head(saved)
    with pytest.raises(ModelFileError, match="trained on 8 latents but the data has 32"):
        apply_head(labelled_project, model)


def test_labels_on_cells_without_crops_are_explained(labelled_project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(labelled_project, copy)
    store = LabelStore(copy / "labels.csv")
    stray = store.table.iloc[:1].assign(object_id=10**9, x=-1000.0)  # a label where no cell is
    pd.concat([store.table, stray], ignore_index=True).to_csv(copy / "labels.csv", index=False)
    with pytest.raises(HeadDataError, match="have no crop in the dataset"):
        project_head_data(copy)
    assert len(project_head_data(copy, ignore_unmatched_labels=True).labels) > 0


def test_unencoded_project_says_to_encode_first(tmp_path, small_sample):
    from napari_cellstate.core.config import CropConfig
    from napari_cellstate.core.pipeline import track_and_crop

    folder = tmp_path / "raw"
    result = track_and_crop(
        small_sample.movie[:4], pixel_size_um=0.33, labels=small_sample.labels[:4], crops=CropConfig(), project=folder
    )
    LabelStore(folder / "labels.csv").import_ground_truth(small_sample.objects, result.objects)
    with pytest.raises(HeadDataError, match="encode its crops"):
        project_head_data(folder).inputs_for("dense")
