"""The steps of a run: what each reads (its inputs' identity), what it writes, and how to tell it is still valid.

A step is done when the identity of what it read then equals the identity now (the live run, the latents'
encoder hash, the labels file's hash, its own settings) and what it wrote is still there unchanged (files by
SHA-256, store columns by their provenance). See :mod:`.runner`.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import sha256_file, write_json_atomic
from ..progress import Progress, relay
from .config import FlowConfig
from .scale import Executor, encode_rows, movie_name, track_movie

__all__ = ["FLOW_FOLDER", "FlowContext", "Step", "symbolic_available"]

#: Folder of a project holding the run's state, heads, audit and report.
FLOW_FOLDER = "flow"
_ENCODE_BLOCK = 8192  # crops per encoding task


def symbolic_available() -> bool:
    """Whether Scheme 4 (``napari_cellstate.core.symbolic``) is installed."""
    return importlib.util.find_spec("napari_cellstate.core.symbolic") is not None


@dataclass
class FlowContext:
    """What every step sees: the config, the project folder and the executor."""

    config: FlowConfig
    project: Path
    executor: Executor = field(default_factory=Executor)

    @property
    def folder(self) -> Path:
        """``<project>/flow``: the run's own outputs."""
        return self.project / FLOW_FOLDER

    def live_run(self) -> str | None:
        """The project's live run id (None before any crops)."""
        from ..project import Project

        try:
            return Project.open(self.project).run_id
        except (ValueError, OSError):
            return None

    def dataset(self):
        """The project's crop dataset."""
        from ..project import load_crop_dataset

        return load_crop_dataset(self.project)

    def labels_csv(self) -> Path:
        """The project's labels file."""
        return self.project / "labels.csv"

    def vae_path(self) -> str | None:
        """The β-TCVAE in use: the fine-tuned one, the configured one, or None (the packaged one)."""
        tuned = self.folder / "vae" / "vae.safetensors"
        if self.config.vae.finetune_epochs > 0:
            return str(tuned)
        return self.config.vae.path


@dataclass(frozen=True)
class Step:
    """One step: ``inputs`` names what it reads, ``run`` does it and returns what it wrote, ``valid`` checks it."""

    name: str
    inputs: Callable[[FlowContext], dict]
    run: Callable[[FlowContext], Generator[Progress, None, dict]]
    valid: Callable[[FlowContext, dict], bool]


def _file_hashes(ctx: FlowContext, paths) -> dict[str, str]:
    return {str(Path(p).relative_to(ctx.project)): sha256_file(p) for p in sorted(paths)}


def files_unchanged(ctx: FlowContext, outputs: dict) -> bool:
    """Every file a step recorded is there with the same SHA-256."""
    files = outputs.get("files", {})
    return all((ctx.project / name).is_file() and sha256_file(ctx.project / name) == sha for name, sha in files.items())


def _file_identity(path: str | None) -> str | None:
    return None if path is None or not Path(path).is_file() else sha256_file(path)


# -- inputs: the crop dataset ------------------------------------------------------------------------------------


def _inputs_identity(ctx: FlowContext) -> dict:
    spec = ctx.config.inputs
    movies = [
        {"path": m.path, "size": Path(m.path).stat().st_size if Path(m.path).is_file() else None} for m in spec.movies
    ]
    return {"inputs": spec.model_dump(mode="json"), "movies": movies, "seed": ctx.config.seed}


def _run_inputs(ctx: FlowContext):
    spec = ctx.config.inputs
    settings = spec.model_dump(mode="json", include={"segmentation", "tracking", "crops"})
    if spec.crop_folder is not None:
        from ..project import import_crop_folder

        yield Progress(0, 1, f"importing crops from {spec.crop_folder.path}", stage="inputs")
        dataset = import_crop_folder(
            spec.crop_folder.path, ctx.project, spec.crops, positions_json=spec.crop_folder.positions_json
        )
        return {"run": ctx.live_run(), "cells": len(dataset)}
    movies = spec.movies
    if spec.sample is not None:
        movies = [(yield from _write_sample(ctx))]
    folders = [str(ctx.folder / "movies" / movie_name(m)) for m in movies]
    yield Progress(0, len(movies), f"segmenting, tracking and cropping {len(movies)} movie(s)", stage="inputs")
    summaries = []
    for k, summary in enumerate(ctx.executor.map(track_movie_in, list(zip(movies, folders, strict=True)), **settings)):
        summaries.append(summary)
        yield Progress(
            k + 1,
            len(movies),
            f"{summary['name']}: {summary['cells']} cells, {summary['tracks']} tracks",
            stage="inputs",
        )
    _assemble(ctx, summaries)
    outputs = {"run": ctx.live_run(), "movies": summaries}
    if spec.sample is not None:
        outputs["scores"] = _sample_scores(ctx, folders[0])
    return outputs


def track_movie_in(item, **settings) -> dict:
    """:func:`~.scale.track_movie` on a ``(movie, folder)`` pair (what the executor maps)."""
    movie, folder = item
    return track_movie(movie, folder=folder, settings=settings)


def _write_sample(ctx: FlowContext):
    from ..io import save_simulation
    from ..simulate import iter_simulate_movie
    from .config import MovieInput

    sample = ctx.config.inputs.sample
    folder = ctx.folder / "sample"
    result = yield from relay(iter_simulate_movie(sample.simulation()), "simulating")
    save_simulation(result, folder)
    return MovieInput(path=str(folder / "movie.tif"), pixel_size_um=result.config.pixel_size_um, name="sample")


def _assemble(ctx: FlowContext, summaries: list[dict]) -> None:
    """The project's crop dataset: every movie's crops and objects, in the config's order."""
    from ..crops import CropResult
    from ..project import append_crop_dataset, load_crop_dataset, write_crop_dataset

    for k, summary in enumerate(summaries):
        part = load_crop_dataset(summary["folder"])
        result = CropResult(crops=part.crops, objects=part.objects, settings=part.metadata["crop_settings"])
        source = part.metadata["sources"][0]
        pixel = source.get("pixel_size_um")
        seed = ctx.config.seed
        if k == 0:
            write_crop_dataset(ctx.project, result, summary["name"], pixel, seed=seed, replace=True)
        else:
            append_crop_dataset(ctx.project, result, summary["name"], pixel, seed=seed, replace=True)


def _sample_scores(ctx: FlowContext, movie_folder: str) -> dict:
    """Segmentation and tracking of the sample against its ground truth."""
    from ..io import read_movie
    from ..project import Project, load_crop_dataset
    from ..segment import detection_scores
    from ..track_metrics import score_tracking

    truth_labels = np.asarray(read_movie(ctx.folder / "sample" / "labels.tif"))
    truth = pd.read_csv(ctx.folder / "sample" / "ground_truth.csv")
    import zarr

    found = np.asarray(zarr.open_array(str(Project.open(movie_folder).segmentation_path), mode="r"))
    objects = load_crop_dataset(movie_folder).objects
    detection = detection_scores(truth_labels, found)
    tracking = score_tracking(truth.assign(object_id=truth["track_id"]), truth_labels, objects, found)
    keep = ("TRA", "DET", "link_accuracy", "division_f1", "division_f1_within_2_frames")
    return {"segmentation_f1": float(detection["f1"]), **{k: float(tracking[k]) for k in keep if k in tracking}}


def _valid_inputs(ctx: FlowContext, outputs: dict) -> bool:
    return outputs.get("run") is not None and outputs.get("run") == ctx.live_run()


# -- labels ------------------------------------------------------------------------------------------------------


def _labels_identity(ctx: FlowContext) -> dict:
    given = ctx.config.labels.csv
    truth = ctx.folder / "sample" / "ground_truth.csv"
    source = given if given else (str(truth) if ctx.config.inputs.sample is not None else None)
    return {"run": ctx.live_run(), "source": source, "sha256": _file_identity(source)}


def _run_labels(ctx: FlowContext):
    from ..labelling import LabelStore

    objects = ctx.dataset().objects
    store = LabelStore(ctx.labels_csv())
    if ctx.config.labels.csv:
        count = store.import_csv(ctx.config.labels.csv, objects)
        source = ctx.config.labels.csv
    elif ctx.config.inputs.sample is not None:
        truth = pd.read_csv(ctx.folder / "sample" / "ground_truth.csv")
        count = store.import_ground_truth(truth, objects)
        source = "the sample's ground truth"
    else:
        count, source = len(store.table), "labels.csv (made in napari)"
    yield Progress(1, 1, f"{count} cells labelled from {source}", stage="labels")
    files = [ctx.labels_csv()] if ctx.labels_csv().exists() else []
    return {"labelled": int(count), "counts": store.counts(), "files": _file_hashes(ctx, files)}


# -- the β-TCVAE -------------------------------------------------------------------------------------------------


def _vae_identity(ctx: FlowContext) -> dict:
    vae = ctx.config.vae
    return {
        "vae": vae.model_dump(mode="json"),
        "base_sha256": _file_identity(vae.path),
        "run": ctx.live_run() if vae.finetune_epochs else None,
        "seed": ctx.config.seed,
    }


def _run_vae(ctx: FlowContext):
    from ..config import TrainConfig
    from ..vae import save_vae
    from ..vae.fit import DEFAULT_VAE_PATH, iter_train_vae

    vae = ctx.config.vae
    if vae.finetune_epochs == 0:
        yield Progress(1, 1, f"using {vae.path or 'the packaged β-TCVAE'}", stage="vae")
        return {"files": {}, "model": vae.path}
    dataset = ctx.dataset()
    rows = np.flatnonzero((dataset.objects["split"].astype(str) == "train").to_numpy())
    crops = dataset.crops[rows]
    training = TrainConfig(
        epochs=vae.finetune_epochs,
        batch_size=vae.batch_size,
        learning_rate=vae.learning_rate,
        seed=ctx.config.seed,
        device=ctx.config.encode.device,
    )
    start_from = vae.path or DEFAULT_VAE_PATH
    model, card = yield from relay(iter_train_vae(crops, training=training, start_from=start_from), "fine-tuning")
    card["data"].update({"source": str(ctx.project), "split": "train", "n_crops": len(rows)})
    written = save_vae(ctx.folder / "vae" / "vae", model, card)
    return {"files": _file_hashes(ctx, [written, Path(written).with_suffix(".json")]), "model": str(written)}


# -- encoding ----------------------------------------------------------------------------------------------------


def _vae_weights(ctx: FlowContext):
    from ..provenance import model_provenance
    from ..vae import load_vae
    from ..vae.fit import load_default_vae

    path = ctx.vae_path()
    model = (load_vae(path) if path else load_default_vae())[0]
    return model, model_provenance(model, Path(path).stem if path else "packaged β-TCVAE")


def _encode_identity(ctx: FlowContext) -> dict:
    return {"run": ctx.live_run(), "vae": ctx.vae_path(), "vae_sha256": _file_identity(ctx.vae_path())}


def _run_encode(ctx: FlowContext):
    from ..project import set_object_columns
    from ..vae.encode import latent_columns

    _, provenance = _vae_weights(ctx)
    n = len(ctx.dataset())
    blocks = [(start, min(start + _ENCODE_BLOCK, n)) for start in range(0, n, _ENCODE_BLOCK)]
    settings = ctx.config.encode
    means, logvars = np.zeros((n, 0), np.float32), None
    started = time.perf_counter()
    parts = ctx.executor.map(
        encode_rows,
        blocks,
        project=str(ctx.project),
        vae_path=ctx.vae_path(),
        batch_size=settings.batch_size,
        device=settings.device,
    )
    for k, ((start, stop), mu, logvar) in enumerate(parts):
        if logvars is None:
            means, logvars = np.zeros((n, mu.shape[1]), np.float32), np.zeros((n, mu.shape[1]), np.float32)
        means[start:stop], logvars[start:stop] = mu, logvar
        yield Progress(k + 1, len(blocks), f"encoded {stop}/{n} crops", stage="encode")
    seconds = time.perf_counter() - started
    set_object_columns(
        ctx.project,
        latent_columns(means, logvars),
        group="latents",
        provenance={"command": "run encode", "model": provenance},
    )
    return {"model": provenance, "run": ctx.live_run(), "crops_per_s": n / max(seconds, 1e-9)}


def _valid_encode(ctx: FlowContext, outputs: dict) -> bool:
    try:
        latents = ctx.dataset().provenance.get("latents", {})
    except (ValueError, OSError):
        return False
    return latents.get("model", {}).get("sha256") == outputs["model"]["sha256"] and latents.get("run") == ctx.live_run()


# -- heads (Schemes 1-3) and the baseline ------------------------------------------------------------------------


def _latents_identity(ctx: FlowContext) -> dict:
    try:
        latents = ctx.dataset().provenance.get("latents", {})
    except (ValueError, OSError):
        latents = {}
    return {"run": ctx.live_run(), "latents": latents.get("model", {}).get("sha256")}


def _heads_identity(ctx: FlowContext) -> dict:
    return {
        **_latents_identity(ctx),
        "labels": _file_identity(str(ctx.labels_csv())),
        "heads": ctx.config.heads.model_dump(mode="json"),
        "seed": ctx.config.seed,
    }


def baseline_accuracy(data) -> dict:
    """Logistic regression on the latents (Scheme 2's inputs), same train/test split: the baseline column."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = data.rows("train"), data.rows("test")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(data.latents[train], data.labels[train])
    predicted = model.predict(data.latents[test])
    return {
        "accuracy": float(accuracy_score(data.labels[test], predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(data.labels[test], predicted)),
        "n_test": len(test),
    }


def _run_heads(ctx: FlowContext):
    from ..config import RigLConfig
    from ..heads import save_head
    from ..heads.compare import BestHeads, iter_compare_schemes, summarise_table1, write_table1
    from ..heads.data import project_head_data
    from ..heads.plots import save_sparse_figures

    cfg = ctx.config.heads
    out = ctx.folder / "heads"
    out.mkdir(parents=True, exist_ok=True)
    data = project_head_data(ctx.project)
    seeds = [ctx.config.seed + k for k in range(cfg.seeds)]
    best = BestHeads()
    runs = yield from relay(
        iter_compare_schemes(
            data, cfg.schemes, seeds, rigl=RigLConfig(density=cfg.density), epochs=cfg.epochs, on_result=best
        ),
        "heads",
    )
    written = list(write_table1(out, runs, summarise_table1(runs)).values())
    for scheme, result in best.results.items():
        written.append(save_head(out / f"{scheme}_head", result.model, result.card))
        written.append(Path(written[-1]).with_suffix(".json"))
    if "sparse" in best.results:
        figures = save_sparse_figures(best.results["sparse"].model, data.input_names, data.latents, out)
        written.extend(figures.values())
    if "sparse" in best.results:  # every cell scored by the best sparse head (columns head_score, head_class)
        from ..heads.apply import iter_apply_head

        result = best.results["sparse"]
        yield from relay(iter_apply_head(ctx.project, result.model, card=result.card), "applying the sparse head")
    baseline = baseline_accuracy(data)
    write_json_atomic(out / "baseline.json", baseline)
    written.append(out / "baseline.json")
    return {"files": _file_hashes(ctx, written), "describe": json.loads(json.dumps(data.describe(), default=str))}


# -- Scheme 4 ----------------------------------------------------------------------------------------------------


def _symbolic_identity(ctx: FlowContext) -> dict:
    return {
        "heads": _heads_identity(ctx),
        "symbolic": ctx.config.symbolic.model_dump(mode="json"),
        "available": symbolic_available(),
    }


def _run_symbolic(ctx: FlowContext):
    out = ctx.folder / "heads"
    if not ctx.config.symbolic.enabled or not symbolic_available():
        why = "switched off" if symbolic_available() else "Scheme 4 not available (core.symbolic is not installed)"
        yield Progress(1, 1, why, stage="symbolic")
        return {"files": {}, "skipped": why}
    if not (out / "sparse_head.safetensors").exists():
        yield Progress(1, 1, "no sparse head: Scheme 4 searches over the sparse head's latents", stage="symbolic")
        return {"files": {}, "skipped": "no sparse head (add 'sparse' to [heads] schemes)"}
    from ..symbolic.search import SymbolicDataError
    from .symbolic import iter_scheme4

    try:
        written = yield from relay(iter_scheme4(ctx.project, out, ctx.folder / "symbolic", ctx.config), "symbolic")
    except SymbolicDataError as err:  # e.g. a sparse head pruned to nothing: say so, the other schemes stand
        yield Progress(1, 1, f"Scheme 4 skipped: {err}", stage="symbolic")
        return {"files": {}, "skipped": str(err)}
    return {"files": _file_hashes(ctx, written)}


# -- attacks and audit -------------------------------------------------------------------------------------------


def _audited_models(ctx: FlowContext) -> list[Path]:
    """The heads' cards, then Scheme 4's formula when the symbolic step saved one: every scheme is audited."""
    formula = ctx.folder / "symbolic" / "symbolic.json"
    return sorted((ctx.folder / "heads").glob("*_head.json")) + ([formula] if formula.is_file() else [])


def _audit_identity(ctx: FlowContext) -> dict:
    cards = _audited_models(ctx)
    return {
        **_latents_identity(ctx),
        "heads": {card.name: sha256_file(card) for card in cards},
        "audit": ctx.config.audit.model_dump(mode="json"),
        "seed": ctx.config.seed,
    }


def _run_audit(ctx: FlowContext):
    from ..attacks.audit import audit_table_markdown
    from ..attacks.figures import flip_rate_figure, gallery_figure
    from ..attacks.project import iter_attack_project, iter_audit_heads
    from ..attacks.results import write_table_atomic

    cfg = ctx.config.audit
    out = ctx.folder / "audit"
    out.mkdir(parents=True, exist_ok=True)
    heads = _audited_models(ctx)
    steps = iter_audit_heads(ctx.project, heads, max_cells=cfg.max_cells, n_minimal=cfg.n_minimal, seed=ctx.config.seed)
    rows, curves, central = yield from relay(steps, "audit")
    written = [write_table_atomic(out / "audit.csv", pd.DataFrame(rows))]
    written.append(write_table_atomic(out / "flip_rate_curves.csv", curves))
    written.append(write_json_atomic(out / "audit.json", {"rows": rows, "central_latents": central}))
    (out / "audit.md").write_text(audit_table_markdown(rows) + "\n", encoding="utf-8")
    flip_rate_figure(curves).savefig(out / "flip_rate.png", dpi=110)
    written += [out / "audit.md", out / "flip_rate.png"]
    test = ctx.dataset().objects
    ids = test.loc[test["split"].astype(str) == "test", "object_id"].to_numpy()
    chosen = np.random.default_rng(ctx.config.seed).choice(ids, min(cfg.gallery_cells, len(ids)), replace=False)
    for card in heads:
        result, _ = yield from relay(
            iter_attack_project(ctx.project, card, cell_ids=[int(c) for c in chosen]), "attack"
        )
        gallery_figure(result).savefig(out / f"gallery_{card.stem}.png", dpi=90)
        written.append(out / f"gallery_{card.stem}.png")
    return {"files": _file_hashes(ctx, written)}


def _always(ctx: FlowContext) -> dict:
    return {"time": time.time()}  # the report is rebuilt on every run: it shows this run's timings


def _run_report(ctx: FlowContext):
    from .report import write_report

    yield Progress(0, 1, "writing the report", stage="report")
    path = write_report(ctx)
    yield Progress(1, 1, f"report: {path}", stage="report")
    return {"files": {}, "report": str(path)}


STEP_DEFINITIONS = (
    Step("inputs", _inputs_identity, _run_inputs, _valid_inputs),
    Step("labels", _labels_identity, _run_labels, files_unchanged),
    Step("vae", _vae_identity, _run_vae, files_unchanged),
    Step("encode", _encode_identity, _run_encode, _valid_encode),
    Step("heads", _heads_identity, _run_heads, files_unchanged),
    Step("symbolic", _symbolic_identity, _run_symbolic, files_unchanged),
    Step("audit", _audit_identity, _run_audit, files_unchanged),
    Step("report", _always, _run_report, lambda ctx, outputs: False),
)
