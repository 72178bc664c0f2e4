"""The run's report: one self-contained HTML file (figures embedded as PNG), with its tables beside it as CSV/JSON.

It gathers what the steps wrote under ``<project>/flow``: Table 1 with the paper's numbers and the logistic
regression baseline, the sparse head's wiring and response plots, Scheme 4's formula and decision boundary,
the attack galleries and audit table, the sample's segmentation and tracking scores, the β-TCVAE's
reconstruction error on the project against its model card, step timings, versions and the config.
"""

from __future__ import annotations

import base64
import html
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path, write_json_atomic

__all__ = ["REPORT_FILE", "reconstruction_error", "table1_with_baseline", "write_report"]

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 2em auto; color: #222; line-height: 1.4 }
h1 { font-size: 1.7em } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left } th { background: #f2f2f2 }
img { max-width: 100%; border: 1px solid #eee; margin: .3em 0 } .note { color: #666; font-size: .9em }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .8em } .formula { font-size: 1.2em }
.wide { overflow-x: auto } td { max-width: 16em; overflow-wrap: anywhere }
.figs { display: flex; flex-wrap: wrap; gap: .6em } .figs img { max-width: 560px }
"""


def _png(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figures(paths: list[Path]) -> str:
    return '<div class="figs">' + "".join(_png(p, p.stem.replace("_", " ")) for p in paths) + "</div>"


def _table(frame: pd.DataFrame) -> str:
    table = frame.to_html(index=False, border=0, na_rep="—", float_format=lambda v: f"{v:.3g}")
    return f'<div class="wide">{table}</div>'


def _cell(value):
    """Lists (e.g. flip rates at three noise levels) as "0.00 / 0.02 / 0.06"."""
    if isinstance(value, list):
        return " / ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
    return value


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def table1_with_baseline(folder: Path) -> pd.DataFrame | None:
    """Table 1 (ours beside the paper's) from the heads' and Scheme 4's runs, with the baseline column.

    The baseline is a logistic regression on the latents with the same train/test split; it stands beside the
    schemes that read latents (2-4).
    """
    from ..heads.compare import summarise_table1

    parts = [folder / "heads" / "table1_runs.csv", folder / "symbolic" / "table1_runs.csv"]
    runs = [pd.read_csv(p) for p in parts if p.is_file()]
    if not runs:
        return None
    summary = summarise_table1(pd.concat(runs, ignore_index=True))
    baseline_path = folder / "heads" / "baseline.json"
    if baseline_path.is_file():
        baseline = json.loads(baseline_path.read_text(encoding="utf-8"))
        text = f"{100 * baseline['accuracy']:.1f} %"
        summary["baseline: logistic regression on latents"] = np.where(summary["Scheme"] >= 2, text, "—")
    return summary


def reconstruction_error(project: Path, vae_path: str | None, n: int = 256, seed: int = 0) -> dict:
    """Mean squared reconstruction error of the β-TCVAE on up to ``n`` of the project's test crops, and its card's."""
    import torch

    from ..project import load_crop_dataset
    from ..vae import load_vae
    from ..vae.fit import load_default_vae

    model, card = load_vae(vae_path) if vae_path else load_default_vae()
    dataset = load_crop_dataset(project)
    rows = np.flatnonzero((dataset.objects["split"].astype(str) == "test").to_numpy())
    if len(rows) > n:
        rows = np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))
    crops = torch.from_numpy(np.asarray(dataset.crops[rows], dtype=np.float32))[:, None]
    with torch.inference_mode():
        recon = model.decode(model.encode(crops)[0])
    mse = float(((recon - crops) ** 2).mean())
    card_mse = (card.get("metrics") or {}).get("synthetic", {}).get("reconstruction_mse")
    return {"project_mse": mse, "card_mse": card_mse, "n_crops": len(rows)}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("napari-cellstate", "torch", "numpy", "pandas", "zarr", "btrack", "scikit-learn", "dask"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_report(ctx) -> Path:
    """Write ``<project>/flow/report/report.html`` (plus ``table1.csv``, ``summary.json``); returns its path."""
    from .runner import read_state
    from .steps import symbolic_available

    folder, project = ctx.folder, ctx.project
    out = folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    state = read_state(project)
    steps = state.get("steps", {})
    parts = [f"<h1>napari-cellstate report</h1><p>Project <code>{html.escape(str(project))}</code></p>"]
    summary: dict = {"project": str(project)}

    inputs = steps.get("inputs", {}).get("outputs", {})
    parts.append("<h2>Cells</h2>")
    if inputs.get("movies"):
        parts.append(_table(pd.DataFrame(inputs["movies"]).drop(columns=["folder"], errors="ignore")))
    if inputs.get("scores"):
        scores = inputs["scores"]
        summary["scores"] = scores
        parts.append("<p>Segmentation and tracking against the sample's ground truth:</p>")
        parts.append(_table(pd.DataFrame([{k: round(v, 3) for k, v in scores.items()}])))
    labels = steps.get("labels", {}).get("outputs", {})
    if labels:
        parts.append(f"<p>Labelled cells: {html.escape(json.dumps(labels.get('counts', {})))}</p>")

    parts.append("<h2>β-TCVAE</h2>")
    try:
        recon = reconstruction_error(project, ctx.vae_path(), seed=ctx.config.seed)
        summary["reconstruction"] = recon
        card = "—" if recon["card_mse"] is None else f"{recon['card_mse']:.3f}"
        parts.append(
            f"<p>Reconstruction MSE on {recon['n_crops']} test crops of this project: "
            f"<b>{recon['project_mse']:.3f}</b> (model card, synthetic crops: {card}). A much larger error than the "
            "card's means the crops differ from what the model was trained on: fine-tune it ([vae] "
            "finetune_epochs).</p>"
        )
    except (ValueError, OSError) as err:
        parts.append(_note(f"No reconstruction error: {err}"))
    encode = steps.get("encode", {}).get("outputs", {})
    if encode.get("crops_per_s"):
        parts.append(f"<p>Encoding: {encode['crops_per_s']:.0f} crops/s.</p>")

    parts.append("<h2>Table 1</h2>")
    table1 = table1_with_baseline(folder)
    if table1 is not None:
        table1.to_csv(out / "table1.csv", index=False)
        summary["table1"] = table1.to_dict(orient="records")
        parts.append(_table(table1))
        parts.append(_note("Ours: mean ± standard deviation over the seeds; the paper trained ten models per scheme."))
    else:
        parts.append(_note("No heads were trained in this run (step 'heads')."))
    heads = folder / "heads"
    sparse = sorted(heads.glob("sparse_*.png"))
    if sparse:
        parts.append("<h3>Scheme 3: the sparse head's wiring and responses</h3>" + _figures(sparse))

    parts.append("<h2>Scheme 4: the formula</h2>")
    formula = folder / "symbolic" / "symbolic.txt"
    if formula.is_file():
        parts.append(f'<p class="formula"><code>{html.escape(formula.read_text(encoding="utf-8").strip())}</code></p>')
        parts.append(_figures(sorted((folder / "symbolic").glob("symbolic_*.png"))))
    else:
        skipped = steps.get("symbolic", {}).get("outputs", {}).get("skipped")
        why = skipped or ("Scheme 4 not available" if not symbolic_available() else "not run")
        parts.append(_note(f"No formula: {why}."))

    parts.append("<h2>Attacks and audit</h2>")
    audit = folder / "audit"
    if (audit / "audit.json").is_file():
        rows = json.loads((audit / "audit.json").read_text(encoding="utf-8"))["rows"]
        parts.append(_table(pd.DataFrame([{k: _cell(v) for k, v in row.items()} for row in rows])))
        parts.append(_figures([audit / "flip_rate.png"]))
        for gallery in sorted(audit.glob("gallery_*.png")):
            parts.append(f"<h3>{html.escape(gallery.stem.removeprefix('gallery_'))}</h3>" + _png(gallery, gallery.stem))
    else:
        parts.append(_note("No audit in this run (step 'audit')."))

    parts.append("<h2>Timings</h2>")
    timing = pd.DataFrame(
        [
            {"step": name, "seconds": record.get("seconds"), "finished": record.get("finished")}
            for name, record in steps.items()
        ]
    )
    if not timing.empty:
        parts.append(_table(timing))
    summary["timings_s"] = {name: record.get("seconds") for name, record in steps.items()}
    versions = _versions()
    summary["versions"] = versions
    parts.append("<h2>Versions</h2>" + _table(pd.DataFrame([versions])))
    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(state.get("config", {}), indent=2)) + "</pre>")

    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>napari-cellstate report</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    path = out / REPORT_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    write_json_atomic(out / "summary.json", summary)
    return path
