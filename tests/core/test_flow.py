"""The whole pipeline from one config: resumable steps, the report, config files and bad input."""

import json
import tomllib

import pandas as pd
import pytest

from napari_cellstate import cli
from napari_cellstate.core.flow import (
    FlowConfig,
    FlowConfigError,
    default_config_text,
    read_flow_config,
    read_state,
    run_flow,
)

TINY = """
project = "proj"
[inputs.sample]
n_frames = 12
n_cells = 24
size_px = 256
[heads]
seeds = 1
epochs = 3
schemes = ["dense", "sparse"]
[audit]
max_cells = 20
n_minimal = 3
gallery_cells = 2
"""


def test_printed_defaults_are_the_defaults():
    text = default_config_text()
    assert FlowConfig.model_validate(tomllib.loads(text)) == FlowConfig()
    assert "# [[inputs.movies]]" in text  # optional inputs are documented, commented out
    assert "# models per scheme" in text


def test_yaml_and_toml_read_alike_with_paths_from_the_file(tmp_path):
    (tmp_path / "a.toml").write_text('project = "p"\n[inputs.sample]\nn_frames = 5\n')
    (tmp_path / "a.yaml").write_text("project: p\ninputs:\n  sample:\n    n_frames: 5\n")
    toml, yaml = read_flow_config(tmp_path / "a.toml"), read_flow_config(tmp_path / "a.yaml")
    assert toml == yaml
    assert toml.project == str(tmp_path / "p")


def test_bad_configs_name_the_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[inputs.sample]\nn_frame = 5\n")
    with pytest.raises(FlowConfigError, match=r"inputs\.sample\.n_frame"):
        read_flow_config(path)
    path.write_text("[heads]\nseeds = 2\n")
    with pytest.raises(FlowConfigError, match="exactly one of"):
        read_flow_config(path)
    path.write_text("[heads\n")
    with pytest.raises(FlowConfigError, match="not valid TOML"):
        read_flow_config(path)
    assert cli.main(["run", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.slow
def test_run_resumes_and_reports(tmp_path, capsys):
    (tmp_path / "run.toml").write_text(TINY)
    config = read_flow_config(tmp_path / "run.toml")
    first = run_flow(config)
    assert all(step["status"] == "ran" for step in first["steps"].values())
    project = tmp_path / "proj"
    report = (project / "flow" / "report" / "report.html").read_text()
    assert "Table 1" in report
    assert "data:image/png;base64," in report
    assert "logistic regression" in report  # the baseline column
    summary = json.loads((project / "flow" / "report" / "summary.json").read_text())
    assert summary["scores"]["segmentation_f1"] > 0.7  # the sample's truth scores the segmentation
    runs = pd.read_csv(project / "flow" / "heads" / "table1_runs.csv")
    assert set(runs["scheme"]) == {"dense", "sparse"}
    audited = set(pd.read_csv(project / "flow" / "audit" / "audit.csv")["scheme"])
    formula = (project / "flow" / "symbolic" / "symbolic.json").is_file()  # none when the tiny sparse head kept nothing
    assert audited == {2, 3} | ({4} if formula else set())  # every model the run made is audited
    assert list((project / "flow" / "audit").glob("gallery_*.png"))

    # a second run finds every step done and valid: only the report is made again
    second = run_flow(config)
    assert {n for n, s in second["steps"].items() if s["status"] == "ran"} == {"report"}

    # new heads settings: heads and what reads them run again, the crops and latents stay
    changed = config.model_copy(update={"heads": config.heads.model_copy(update={"density": 0.05})})
    third = run_flow(changed, steps=["inputs", "encode", "heads", "audit"])
    assert {n: s["status"] for n, s in third["steps"].items()} == {
        "inputs": "skipped",
        "encode": "skipped",
        "heads": "ran",
        "audit": "ran",
    }

    # a damaged output (a head file) is noticed: the step runs again
    (project / "flow" / "heads" / "dense_head.json").write_text("{}")
    fourth = run_flow(changed, steps=["heads"])
    assert fourth["steps"]["heads"]["status"] == "ran"
    assert read_state(project)["steps"]["heads"]["outputs"]["files"]


def test_encoding_with_another_encoder_invalidates_the_step(tmp_path, monkeypatch):
    """The encode step is done only while the latents' provenance names the configured encoder's weights."""
    from napari_cellstate.core.flow.steps import FlowContext, _valid_encode

    class Dataset:
        def __init__(self):
            self.provenance = {"latents": {"model": {"sha256": "abc"}, "run": "r1"}}

    ctx = FlowContext(FlowConfig(), tmp_path)
    monkeypatch.setattr(FlowContext, "dataset", lambda self: Dataset())
    monkeypatch.setattr(FlowContext, "live_run", lambda self: "r1")
    assert _valid_encode(ctx, {"model": {"sha256": "abc"}})
    assert not _valid_encode(ctx, {"model": {"sha256": "other"}})
    monkeypatch.setattr(FlowContext, "live_run", lambda self: "r2")  # the crops were made again
    assert not _valid_encode(ctx, {"model": {"sha256": "abc"}})


def test_print_default_config_and_unknown_step(capsys):
    assert cli.main(["run", "--print-default-config"]) == 0
    assert FlowConfig.model_validate(tomllib.loads(capsys.readouterr().out)) == FlowConfig()
    with pytest.raises(SystemExit):
        cli.main(["run", "x.toml", "--steps", "nonsense"])
