"""Sparsity search: trials are stored and resumed, validation never sees the test rows, the choice follows its rule."""

import io
from dataclasses import replace

import numpy as np
import optuna
import pytest

from napari_cellstate.core.config import RigLConfig, TrainConfig
from napari_cellstate.core.heads.data import synthetic_head_data
from napari_cellstate.core.heads.search import (
    TRIAL_COLUMNS,
    choose_trial,
    iter_sparsity_search,
    pareto_front,
    tradeoff_figure,
    validation_view,
)
from napari_cellstate.core.progress import run_to_completion

TRAINING = TrainConfig(epochs=8, batch_size=64, learning_rate=3e-3, device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    """Synthetic data whose test rows are garbage: NaN latents and flipped labels.

    A search that trained on them would fail (NaN loss); one that validated on them would score ~50 %.
    """
    clean = synthetic_head_data(1500, seed=0, keep_crops=False)
    test = clean.rows("test")
    latents, labels = clean.latents.copy(), clean.labels.copy()
    latents[test] = np.nan
    labels[test] = 1 - labels[test]
    return replace(clean, latents=latents, labels=labels)


@pytest.fixture(scope="module")
def searched(data, tmp_path_factory):
    storage = tmp_path_factory.mktemp("search") / "heads" / "sparsity_search.sqlite3"
    events = []
    result = run_to_completion(iter_sparsity_search(data, storage, n_trials=3, training=TRAINING), events.append)
    return result, events, storage


def _finished_trials(events):
    return [e for e in events if "validation balanced accuracy" in e.message]


def test_validation_view_holds_training_rows_only(data):
    view = validation_view(data, 0.2, seed=0)
    assert len(view.labels) == len(data.rows("train"))
    assert not np.isnan(view.latents).any()  # no (garbage) test row
    assert 0.15 < np.mean(view.split == "test") < 0.25
    assert set(view.groups[view.split == "test"]).isdisjoint(view.groups[view.split == "train"])
    assert view.crops is None


def test_search_stores_its_trials_and_validates_on_training_rows(searched):
    result, events, storage = searched
    assert storage.is_file()
    assert list(result.trials.columns) == list(TRIAL_COLUMNS)
    assert result.trials["state"].tolist() == ["COMPLETE"] * 3
    assert len(_finished_trials(events)) == 3
    assert events[-1].step == events[-1].total
    assert any(e.message.startswith("trial 2/3: epoch") for e in events)
    assert any(e.message.startswith("chosen head") for e in events)
    # garbage test rows would give ~50 %: the search never saw them
    assert result.trials["val_balanced_accuracy"].max() >= 0.9
    trials = result.trials
    assert trials["density"].between(0.005, 0.2).all()
    assert trials["drop_fraction"].between(0.1, 0.5).all()
    assert set(trials["distribution"]) <= {"uniform", "erk"}
    assert trials["warmup_epochs"].between(0, 5).all()


def test_chosen_trial_is_the_smallest_within_tolerance(data, searched):
    result, _, _ = searched
    trials = result.trials
    good = trials[trials["val_balanced_accuracy"] >= trials["val_balanced_accuracy"].max() - result.tolerance]
    assert result.chosen["active_weights"] == good["active_weights"].min()
    assert result.chosen["number"] in result.pareto["number"].tolist()
    assert result.rigl.density == pytest.approx(result.chosen["density"])
    assert result.rigl.warmup_epochs == result.chosen["warmup_epochs"]
    # the chosen head is retrained with those settings on all training rows, scored on the test rows
    assert result.head.card["hyperparameters"]["rigl"]["density"] == pytest.approx(result.rigl.density)
    assert result.head.metrics["n"] == len(data.rows("test"))


def test_choose_trial_rule_on_a_hand_made_table():
    import pandas as pd

    trials = pd.DataFrame(
        {
            "number": [0, 1, 2, 3, 4],
            "val_balanced_accuracy": [0.99, 0.982, 0.975, 0.95, 0.999],
            "active_weights": [40.0, 12.0, 6.0, 3.0, np.nan],
            "state": ["COMPLETE"] * 4 + ["FAIL"],
        }
    )
    assert int(choose_trial(trials, 0.01)["number"]) == 1
    assert int(choose_trial(trials, 0.0)["number"]) == 0
    assert int(choose_trial(trials, 0.05)["number"]) == 3
    assert pareto_front(trials)["number"].tolist() == [3, 2, 1, 0]


def test_second_call_resumes_and_runs_only_the_missing_trial(data, searched):
    first, _, storage = searched
    events = []
    result = run_to_completion(iter_sparsity_search(data, storage, n_trials=4, training=TRAINING), events.append)
    assert len(_finished_trials(events)) == 1
    assert result.trials["number"].tolist() == [0, 1, 2, 3]
    assert result.trials.iloc[:3].equals(first.trials)  # earlier trials untouched
    # a new trial is not a repeat of the first one (the sampler's seed moves on with the study)
    assert result.trials.loc[3, "density"] != first.trials.loc[0, "density"]


def test_stopping_mid_trial_marks_it_failed_and_keeps_the_rest(data, searched):
    _, _, storage = searched
    steps = iter_sparsity_search(data, storage, n_trials=6, training=TRAINING)
    for _ in range(3):
        next(steps)
    steps.close()
    study = optuna.load_study(study_name="sparsity", storage=f"sqlite:///{storage}")
    states = [t.state.name for t in study.trials]
    assert states.count("FAIL") == 1
    assert states.count("COMPLETE") >= 3
    assert "RUNNING" not in states


def test_other_settings_are_refused_in_the_same_study(data, searched):
    _, _, storage = searched
    other = TRAINING.model_copy(update={"epochs": 3})
    with pytest.raises(ValueError, match="training"):
        run_to_completion(iter_sparsity_search(data, storage, n_trials=1, training=other))
    with pytest.raises(ValueError, match="rigl"):
        run_to_completion(
            iter_sparsity_search(data, storage, n_trials=1, training=TRAINING, rigl=RigLConfig(prune=False))
        )


def test_tradeoff_figure_renders(searched):
    result, _, _ = searched
    figure = tradeoff_figure(result)
    axes = figure.axes[0]
    assert axes.get_xscale() == "symlog"  # logarithmic above 1 weight
    assert "weights" in axes.get_xlabel()
    assert "accuracy" in axes.get_ylabel()
    assert any("density" in text.get_text() for text in axes.texts)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=60)
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
