"""Table 1: every scheme x seed is trained and tabulated; the summary holds the paper's numbers; bars are judged."""

import math

import numpy as np
import pandas as pd
import pytest

from napari_cellstate.core.config import TrainConfig
from napari_cellstate.core.heads.compare import (
    PAPER_TABLE1,
    RUN_COLUMNS,
    BestHeads,
    bars_report,
    iter_compare_schemes,
    latent_roles,
    summarise_table1,
    table1_bars,
    table1_markdown,
    write_table1,
)
from napari_cellstate.core.heads.data import HeadDataError, synthetic_head_data
from napari_cellstate.core.progress import run_to_completion

TRAINING = TrainConfig(epochs=20, batch_size=64, learning_rate=3e-3, device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return synthetic_head_data(1500, seed=0, keep_crops=False)


@pytest.fixture(scope="module")
def compared(data):
    best, events = BestHeads(), []
    runs = run_to_completion(
        iter_compare_schemes(data, ("dense", "sparse"), range(2), training=TRAINING, on_result=best), events.append
    )
    return runs, best, events


@pytest.mark.slow
def test_runs_table_has_one_row_per_scheme_and_seed(compared):
    runs, _, _ = compared
    assert list(runs.columns) == list(RUN_COLUMNS)
    assert runs[["scheme", "seed"]].values.tolist() == [["dense", 0], ["dense", 1], ["sparse", 0], ["sparse", 1]]
    assert runs["scheme_number"].tolist() == [2, 2, 3, 3]
    assert (runs.loc[runs["scheme"] == "dense", "active_weights"] == 1040).all()
    assert (runs["train_seconds"] > 0).all()


@pytest.mark.slow
def test_sparse_heads_are_accurate_small_and_read_the_area_latent(compared, data):
    runs, _, _ = compared
    dense, sparse = runs[runs["scheme"] == "dense"], runs[runs["scheme"] == "sparse"]
    assert (sparse["accuracy"] >= 0.9).all()
    assert sparse["active_weights"].mean() <= 0.03 * dense["active_weights"].mean()
    area = data.input_names[_area_latent(data)]
    assert all(area in used.split("; ") for used in sparse["inputs_used"])  # area decides, as in the paper
    assert dense["nucleus_only"].tolist() == [False, False]  # the dense head reads every latent


@pytest.mark.slow
def test_nucleus_only_says_whether_every_input_used_is_a_nucleus_latent(compared, data):
    runs, _, _ = compared
    roles = dict(zip(data.input_names, latent_roles(data), strict=True))
    for row in runs.itertuples():
        used = row.inputs_used.split("; ")
        assert len(used) == row.n_inputs_used
        assert row.nucleus_only == all(roles[name] == "nucleus" for name in used)


@pytest.mark.slow
def test_progress_runs_over_all_models_and_labels_them(compared):
    _, _, events = compared
    steps = [e.step for e in events]
    assert steps == sorted(steps)
    assert events[-1].step == events[-1].total
    assert any(e.message.startswith("Scheme 3, seed 1 (2/2): epoch") for e in events)


@pytest.mark.slow
def test_best_heads_keeps_the_most_accurate_head_of_each_scheme(compared):
    runs, best, _ = compared
    assert set(best.results) == {"dense", "sparse"}
    for scheme, result in best.results.items():
        mine = runs[runs["scheme"] == scheme]
        assert result.metrics["balanced_accuracy"] == mine["balanced_accuracy"].max()
        assert best.seeds[scheme] in mine["seed"].tolist()


def _area_latent(data):
    r_area = [abs(np.corrcoef(data.latents[:, j], data.factors["area"])[0, 1]) for j in range(data.n_latents)]
    return int(np.argmax(r_area))


def test_latent_roles_marks_the_area_latent_as_nucleus(data):
    roles = latent_roles(data)
    assert len(roles) == data.n_latents
    assert set(roles) <= {"nucleus", "neighbourhood", "unexplained"}
    assert roles[_area_latent(data)] == "nucleus"
    assert "neighbourhood" in roles  # the synthetic crops have neighbours the VAE encodes
    assert latent_roles(data, min_abs_r=1.01) == ["unexplained"] * data.n_latents


def test_latent_roles_needs_neighbourhood_factors(data):
    from dataclasses import replace

    with pytest.raises(HeadDataError, match="neighbourhood"):
        latent_roles(replace(data, factors=data.factors[["area", "eccentricity"]]))


@pytest.mark.slow
def test_summary_holds_the_paper_numbers_and_ours(compared):
    runs, _, _ = compared
    summary = summarise_table1(runs)
    assert summary["Scheme"].tolist() == [1, 2, 3, 4]
    assert summary["paper head weights"].tolist() == ["1040", "1040", "23 ± 2", "N/A"]
    assert summary["paper expression size"].tolist() == ["9697", "8641", "180 ± 20", "17 ± 7"]
    assert summary["paper accuracy"].tolist() == ["99.7 ± 0.1 %", "99.0 ± 0.1 %", "97.0 ± 0.2 %", "97.4 ± 0.2 %"]
    assert [row.accuracy_percent for row in PAPER_TABLE1] == [99.7, 99.0, 97.0, 97.4]
    assert summary.loc[0, "accuracy"] == "—"
    assert summary.loc[3, "head weights"] == "—"
    assert summary.loc[1, "head weights"] == "1040"
    assert summary.loc[2, "accuracy"].endswith("%")
    assert summary["models"].tolist() == [0, 2, 2, 0]
    markdown = table1_markdown(summary)
    assert markdown.splitlines()[0].startswith("| Scheme | Encoder | Head |")
    assert len(markdown.splitlines()) == 6


def test_symbolic_runs_fill_scheme_4():
    runs = pd.DataFrame(
        {"scheme": ["symbolic"] * 2, "accuracy": [0.97, 0.98], "balanced_accuracy": [0.97, 0.98],
         "active_weights": [np.nan, np.nan], "expression_size": [15, 19]}
    )  # fmt: skip
    row = summarise_table1(runs).iloc[3]
    assert (row["head weights"], row["expression size"], row["accuracy"]) == ("N/A", "17 ± 3", "97.5 ± 0.7 %")


@pytest.mark.slow
def test_write_table1_writes_readable_csvs(compared, tmp_path):
    runs, _, _ = compared
    summary = summarise_table1(runs)
    paths = write_table1(tmp_path / "out" / "table1", runs, summary)
    assert sorted(p.name for p in paths.values()) == ["table1.csv", "table1.md", "table1_runs.csv"]
    assert sorted(p.name for p in (tmp_path / "out" / "table1").iterdir()) == sorted(p.name for p in paths.values())
    back = pd.read_csv(paths["runs"])
    pd.testing.assert_frame_equal(back.drop(columns=["inputs_used", "nucleus_only"]),
                                  runs.drop(columns=["inputs_used", "nucleus_only"]), check_dtype=False)  # fmt: skip
    assert back["inputs_used"].tolist() == runs["inputs_used"].tolist()
    assert pd.read_csv(paths["summary"])["paper accuracy"].tolist()[1] == "99.0 ± 0.1 %"
    assert table1_bars(back)["passed"] == table1_bars(runs)["passed"]  # bars survive the CSV round trip


def _runs(dense_acc, sparse_acc, sparse_weights, nucleus, cnn_acc=None):
    rows = [{"scheme": "dense", "accuracy": a, "active_weights": 1040, "nucleus_only": False} for a in dense_acc]
    rows += [
        {"scheme": "sparse", "accuracy": a, "active_weights": w, "nucleus_only": n}
        for a, w, n in zip(sparse_acc, sparse_weights, nucleus, strict=True)
    ]
    rows += [{"scheme": "cnn", "accuracy": a, "active_weights": 1040, "nucleus_only": None} for a in cnn_acc or []]
    return pd.DataFrame(rows)


def test_bars_pass_on_the_papers_numbers():
    bars = table1_bars(_runs([0.99] * 10, [0.97] * 10, [23] * 10, [True] * 8 + [False] * 2, [0.997] * 10))
    assert bars["passed"] == {
        "scheme3_vs_scheme2": True,
        "nucleus_only": True,
        "scheme1_vs_scheme2": True,
        "above_chance": True,
    }
    assert bars["sparse_dense_accuracy_ratio"] == pytest.approx(0.97 / 0.99)
    assert bars["sparse_dense_weights_ratio"] == pytest.approx(23 / 1040)
    assert (bars["nucleus_only_runs"], bars["nucleus_only_needed"]) == (8, 8)


def test_bars_fail_where_the_runs_miss_them():
    too_inaccurate = table1_bars(_runs([0.99] * 3, [0.95] * 3, [20] * 3, [True] * 3, [0.98] * 3))
    assert too_inaccurate["passed"] == {
        "scheme3_vs_scheme2": False,
        "nucleus_only": True,
        "scheme1_vs_scheme2": False,
        "above_chance": True,
    }
    too_big = table1_bars(_runs([0.99] * 3, [0.99] * 3, [40] * 3, [True, False, True]))
    # 40 / 1040 = 3.8 % of the weights; nucleus-only in 2 of 3 seeds misses ceil(0.8 * 3) = 3
    assert too_big["passed"] == {
        "scheme3_vs_scheme2": False,
        "nucleus_only": False,
        "scheme1_vs_scheme2": None,
        "above_chance": True,
    }
    assert too_big["nucleus_only_needed"] == 3


def test_a_head_that_learnt_nothing_fails_its_bars():
    # an empty sparse head scores the majority class: 96 % accuracy on unbalanced cells, balanced accuracy 50 %
    runs = _runs([0.99] * 3, [0.97, 0.96, 0.97], [23, 0, 22], [True, True, True]).assign(
        balanced_accuracy=[0.95] * 3 + [0.9, 0.5, 0.9], seed=[0, 1, 2] * 2
    )
    bars = table1_bars(runs)
    assert bars["passed"] == {
        "scheme3_vs_scheme2": False,
        "nucleus_only": False,
        "scheme1_vs_scheme2": None,
        "above_chance": False,
    }
    assert bars["heads_at_chance"] == ["sparse 1"]
    assert "[FAIL] every head uses its inputs" in "\n".join(bars_report(bars))
    assert "heads that learnt nothing (no active weight or at chance): sparse 1" in bars_report(bars)
    at_chance = table1_bars(runs.assign(active_weights=runs["active_weights"].replace(0, 20), balanced_accuracy=0.55))
    assert at_chance["heads_at_chance"] == ["dense 0", "dense 1", "dense 2", "sparse 0", "sparse 1", "sparse 2"]


def test_bars_undecided_without_the_schemes_they_compare():
    bars = table1_bars(_runs([0.99] * 2, [], [], []))
    assert bars["passed"] == {
        "scheme3_vs_scheme2": None,
        "nucleus_only": None,
        "scheme1_vs_scheme2": None,
        "above_chance": True,
    }
    assert math.isnan(bars["sparse_dense_accuracy_ratio"])


def test_closing_the_comparison_stops_it_between_steps(data):
    seen = []
    steps = iter_compare_schemes(data, ["sparse"], [0, 1], training=TRAINING, on_result=lambda *a: seen.append(a))
    events = [next(steps) for _ in range(3)]
    steps.close()
    assert all(e.message.startswith("Scheme 3, seed 0 (1/2): epoch 1/") for e in events)
    assert seen == []  # stopped mid-training: no result


def test_data_that_cannot_train_a_scheme_is_refused_before_training(data):
    with pytest.raises(HeadDataError, match="crops"):
        next(iter_compare_schemes(data, ["cnn"], [0], training=TRAINING))  # built with keep_crops=False


def test_a_formula_without_weights_is_not_a_head_that_learnt_nothing():
    runs = pd.DataFrame(
        {
            "scheme": ["dense", "symbolic"],
            "seed": [0, 0],
            "accuracy": [0.97, 0.96],
            "balanced_accuracy": [0.97, 0.96],
            "active_weights": [600, 0],
        }
    )
    assert table1_bars(runs)["heads_at_chance"] == []
