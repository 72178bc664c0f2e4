"""Attack speed and the domain audit on synthetic data.

Prints attacks per second of Captum's FGSM in image space (Scheme 2, through the β-TCVAE encoder) and in latent
space, each next to the hand-written one-line FGSM x + ε·sign(∇ₓ L) on the same model and cells (the ratio shows
Captum's overhead), then the audit time and the audit table of Schemes 1-3, of the formula Table 1 discovers
(Scheme 4, searched as ``train-heads`` does and loaded back from its files) and of the paper's Scheme 4 (the
search over the sparse head's latents distilling the sparse head), and where each model's image-space
gradient energy lies: the central nucleus (the audit's mask), its 2-px edge, the neighbours
(other objects, 2 px grown) and the background, next to each region's share of the crop's area; which latents
carry Schemes 2-4's image-space energy and where each of those latents' encoder gradients lie; and PGD's flip rate
(ε = 0.5) when only the nucleus, or only the background, may change.

    PYTHONPATH=src python benchmarks/bench_attacks.py [--cells 2000] [--repeats 5]
        [--exclusion-um 3] [--exclusion-strength 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _generator import add_generator_options, generator_from
from _timing import median_seconds

from napari_cellstate._cli_symbolic import symbolic_runs
from napari_cellstate.core.attacks import SchemeModel, load_scheme, prepare_audit_cells, run_audit
from napari_cellstate.core.attacks.audit import audit_table_markdown, energy_shares
from napari_cellstate.core.attacks.central import central_latents
from napari_cellstate.core.attacks.fgsm import CROP_BOUNDS, fgsm, pgd, untargeted_loss
from napari_cellstate.core.attacks.masks import foreground_masks, grow_masks
from napari_cellstate.core.heads.data import synthetic_head_data
from napari_cellstate.core.heads.fit import train_head


def discovered_formula(results: dict, data, vae, budget_s: float) -> SchemeModel:
    """Scheme 4 as Table 1 makes it (``train-heads``: the search over the sparse head's inputs, distilling the dense
    head), saved and loaded back as the attack and audit commands load it."""
    with tempfile.TemporaryDirectory() as folder:
        symbolic_runs(data, results["sparse"].model, [0], Path(folder), time_budget_s=budget_s,
                      teacher=results["dense"].model)  # fmt: skip
        return load_scheme(Path(folder) / "symbolic.json", vae)


def sparse_formula(results: dict, data, vae, budget_s: float) -> SchemeModel:
    """Scheme 4 the paper's way: the search over the sparse head's own latents, distilling the sparse head."""
    from napari_cellstate._cli_symbolic import discover_and_save
    from napari_cellstate.core.symbolic.data import inputs_from_head_data
    from napari_cellstate.core.symbolic.search import SearchSettings

    inputs = inputs_from_head_data(data, head=results["sparse"].model, target="score")
    settings = SearchSettings(time_budget_s=budget_s, seed=0, selection="accuracy")
    with tempfile.TemporaryDirectory() as folder:
        result = discover_and_save(inputs, Path(folder), settings, quiet=True)
        print(f"  Scheme 4 from the sparse head over {', '.join(inputs.names)}: {result.expression.readable()}")
        print(f"    test accuracy {result.point.test_accuracy:.3f}")
        return dataclasses.replace(load_scheme(Path(folder) / "symbolic.json", vae), name="symbolic from sparse")


def one_line_fgsm(model, x, epsilon, bounds=(-np.inf, np.inf)):
    """The paper's formula by hand: x̃ = clip(x + ε·sign(∇ₓ L))."""
    with torch.no_grad():
        predicted = (model(x) >= 0).float()
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(untargeted_loss(model(xg), predicted).sum(), xg)
    return torch.clamp(x + epsilon * torch.sign(grad), *bounds)


def crop_regions(crops: np.ndarray, nuclei: np.ndarray) -> dict[str, np.ndarray]:
    """Disjoint (N, S, S) masks: the central nucleus, its edge (the audit's central region less the mask), the
    neighbours (grown alike) and the background."""
    grown = grow_masks(nuclei)
    rim = grown & ~nuclei
    neighbours = grow_masks(foreground_masks(crops) & ~grown) & ~nuclei & ~rim
    return {"nucleus": nuclei, "rim": rim, "neighbours": neighbours, "background": ~(nuclei | rim | neighbours)}


def latent_energy(scheme: SchemeModel, crops: np.ndarray, regions: dict[str, np.ndarray], top: int = 6) -> list[str]:
    """The latents carrying most of a head's image-space gradient energy, and where their encoder gradients lie.

    The image gradient is Σⱼ (∂f/∂zⱼ)·∇ₓzⱼ; latent j's part of its energy is taken as its diagonal term
    (∂f/∂zⱼ)²·‖∇ₓzⱼ‖², and ∇ₓzⱼ (the encoder's posterior-mean gradient) is split over the regions.
    """
    x = torch.from_numpy(crops).unsqueeze(1).requires_grad_(True)
    mu, _ = scheme.vae.encode(x)
    z = mu.detach().requires_grad_(True)
    (head_grad,) = torch.autograd.grad(scheme.model(z).sum(), z)
    lines = []
    contribution = np.zeros(mu.shape[1])
    where = {}
    for j in range(mu.shape[1]):
        (jac,) = torch.autograd.grad(mu[:, j].sum(), x, retain_graph=True)
        energy = jac[:, 0].numpy() ** 2
        total = energy.sum(axis=(1, 2))
        contribution[j] = float(np.mean(head_grad[:, j].numpy() ** 2 * total))
        where[j] = {name: float(np.mean((energy * mask).sum(axis=(1, 2)) / total)) for name, mask in regions.items()}
    contribution /= contribution.sum()
    for j in np.argsort(-contribution)[:top]:
        split = " / ".join(f"{where[j][name]:.2f}" for name in regions)
        lines.append(f"z{j} {contribution[j]:.2f} ({split})")
    return lines


def region_pgd_flips(scheme: SchemeModel, crops: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Flip rate of PGD (ε = 0.5, 10 steps) allowed to change only each region's pixels."""
    model, x = scheme.image_model(), torch.from_numpy(crops)
    with torch.no_grad():
        before = (model(x) >= 0).numpy()
    rates = {}
    for name, mask in masks.items():
        m = torch.from_numpy(mask.astype(np.float32))
        after = torch.cat(
            [pgd(model, x[s : s + 64], 0.5, bounds=CROP_BOUNDS, mask=m[s : s + 64]) for s in range(0, len(x), 64)]
        )
        with torch.no_grad():
            rates[name] = float(np.mean((model(after) >= 0).numpy() != before))
    return rates


def frozen_flip_rate(scheme: SchemeModel, latents: np.ndarray, frozen: list[int]) -> float:
    """The audit's shortcut test: latent FGSM (ε = 1) with ``frozen`` held fixed."""
    from napari_cellstate.core.attacks.attack import freeze_mask

    model, z = scheme.latent_model(), torch.from_numpy(np.asarray(latents, dtype=np.float32))
    with torch.no_grad():
        before = (model(z) >= 0).numpy()
        after = (model(fgsm(model, z, 1.0, mask=freeze_mask(z.shape[1], frozen))) >= 0).numpy()
    return float(np.mean(after != before))


def main() -> None:
    """Time the attacks, audit every scheme, print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--audit-cells", type=int, default=300)
    parser.add_argument("--n-minimal", type=int, default=50)
    parser.add_argument("--symbolic-budget", type=float, default=30.0, help="Scheme 4 search seconds")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic crops")
    add_generator_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)

    generator = generator_from(args)
    print(f"neighbour clearance {generator.neighbour_exclusion_um} µm x {generator.neighbour_exclusion_strength}")
    data = synthetic_head_data(args.cells, seed=args.data_seed, generator=generator)
    results = {scheme: train_head(scheme, data) for scheme in ("cnn", "dense", "sparse")}
    vae = __import__("napari_cellstate.core.vae.fit", fromlist=["x"]).load_default_vae()[0]
    schemes = [SchemeModel(r.model, r.scheme.number, f"{r.scheme.value} head", vae) for r in results.values()]
    schemes.append(discovered_formula(results, data, vae, args.symbolic_budget))
    schemes.append(sparse_formula(results, data, vae, args.symbolic_budget))
    for scheme, result in zip(schemes, results.values(), strict=False):
        print(f"Scheme {scheme.number}: test balanced accuracy {result.metrics['balanced_accuracy']:.3f}")

    test = data.rows("test")[: args.audit_cells]
    crops = torch.from_numpy(np.asarray(data.crops[test[:64]], dtype=np.float32))
    dense = schemes[1]
    image, latent = dense.image_model(), dense.latent_model()
    z = dense.encode(crops)
    timings = {
        "image FGSM (Captum)": median_seconds(lambda: fgsm(image, crops, 0.5, bounds=(-4, 4)), args.repeats),
        "image FGSM (one line)": median_seconds(lambda: one_line_fgsm(image, crops, 0.5, (-4, 4)), args.repeats),
        "latent FGSM (Captum)": median_seconds(lambda: fgsm(latent, z, 1.0), args.repeats),
        "latent FGSM (one line)": median_seconds(lambda: one_line_fgsm(latent, z, 1.0), args.repeats),
    }
    print(f"\n{len(crops)} cells per call, median of {args.repeats} runs, 1 torch thread:")
    for name, seconds in timings.items():
        print(f"  {name:24s} {len(crops) / seconds:9.0f} attacks/s")
    for space in ("image", "latent"):
        ratio = timings[f"{space} FGSM (one line)"] / timings[f"{space} FGSM (Captum)"]
        print(f"  {space} space: Captum runs at {ratio:.2f}x the speed of the one-line FGSM")

    labels_pred = data.labels[test]
    central = central_latents(data.latents[test], data.factors.iloc[test], labels_pred)
    names = [data.input_names[j] for j in central]
    print(f"\ncentral-cell latents (frozen in the shortcut test): {', '.join(names)}")
    start = time.perf_counter()
    cells = prepare_audit_cells(np.asarray(data.crops[test], dtype=np.float32), central)
    prepare_s = time.perf_counter() - start
    rows = []
    for scheme in schemes:
        start = time.perf_counter()
        rows.append(run_audit(scheme, cells, n_minimal=args.n_minimal))
        print(f"  audited Scheme {scheme.number} in {time.perf_counter() - start:.1f} s", flush=True)
    print(f"edited crops for {len(test)} cells in {prepare_s:.1f} s\n")
    print(audit_table_markdown(rows))

    regions = crop_regions(cells.crops, cells.nuclei)
    print("\nwhere the image-space gradient energy lies (share of each cell's energy; area: share of the pixels)")
    print("| model | " + " | ".join(regions) + " |")
    print("|---" * (len(regions) + 1) + "|")
    print("| area | " + " | ".join(f"{mask.mean():.2f}" for mask in regions.values()) + " |")
    for scheme in schemes:
        shares = energy_shares(scheme.image_model(), cells.crops, regions)
        print(f"| {scheme.number} {scheme.name} | " + " | ".join(f"{v:.2f}" for v in shares.values()) + " |")

    print(
        "\nlatents carrying the image energy: latent, its share of the energy "
        f"({' / '.join(regions)} of its encoder gradient)"
    )
    for scheme in schemes[1:]:
        print(f"  {scheme.number} {scheme.name}: " + "; ".join(latent_energy(scheme, cells.crops, regions)))

    print(
        "\nshortcut test with one of the sparse head's frozen latents left free"
        " (flip rates of Schemes 2, 3, 4 and the sparse-distilled formula)"
    )
    z_test = schemes[1].encode(cells.crops)
    for j in [j for j in results["sparse"].model.used_inputs() if j in central]:
        rates = [frozen_flip_rate(scheme, z_test, [k for k in central if k != j]) for scheme in schemes[1:]]
        print(f"  z{j} free: " + " / ".join(f"{r:.3f}" for r in rates))

    masks = {"nucleus": cells.nuclei, "background": regions["background"], "everywhere": np.ones_like(cells.nuclei)}
    print(
        "\nPGD flip rate (ε = 0.5) when only this region may change (area: "
        + ", ".join(f"{k} {v.mean():.2f}" for k, v in masks.items())
        + ")"
    )
    for scheme in schemes:
        rates = region_pgd_flips(scheme, cells.crops, masks)
        print(f"  {scheme.number} {scheme.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
