"""The β-TCVAE objective under DDP: two gloo processes train exactly what one process trains."""

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from napari_cellstate.core.config import VAEConfig
from napari_cellstate.core.training import train
from napari_cellstate.core.vae import beta_tcvae_loss, estimate_log_qz

SCRIPT = Path(__file__).with_name("_vae_ddp_script.py")
_spec = importlib.util.spec_from_file_location("_vae_ddp_script", SCRIPT)
_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_script)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_local_rows_scored_against_the_global_batch_match_the_whole_batch(estimator):
    generator = torch.Generator().manual_seed(3)
    z, mu, logvar = (torch.randn(9, 3, generator=generator, dtype=torch.float64) for _ in range(3))
    x = torch.randn(9, 1, 16, 16, generator=generator, dtype=torch.float64)
    x_hat = x + 0.1 * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    cfg = VAEConfig(crop_size_px=16, estimator=estimator)
    log_qz, log_prod = estimate_log_qz(z, mu, logvar, 100, estimator)
    whole, whole_terms = beta_tcvae_loss(x, x_hat, mu, logvar, z, 100, cfg)
    total, terms = 0.0, dict.fromkeys(whole_terms, 0.0)
    for rows in torch.tensor_split(torch.arange(9), 4):  # 3 + 2 + 2 + 2 rows, the last row's partner is row 0
        start, stop = int(rows[0]), int(rows[-1]) + 1
        part = estimate_log_qz(z[start:stop], mu, logvar, 100, estimator, offset=start)
        torch.testing.assert_close(part, (log_qz[start:stop], log_prod[start:stop]))
        loss, local_terms = beta_tcvae_loss(
            x[start:stop],
            x_hat[start:stop],
            mu[start:stop],
            logvar[start:stop],
            z[start:stop],
            100,
            cfg,
            batch_mu=mu,
            batch_logvar=logvar,
            offset=start,
        )
        total = total + loss * len(rows) / 9
        terms = {k: terms[k] + v * len(rows) / 9 for k, v in local_terms.items()}
    torch.testing.assert_close(total, whole)
    torch.testing.assert_close(terms, whole_terms)
    with pytest.raises(ValueError, match="do not lie"):
        estimate_log_qz(z[:3], mu, logvar, 100, estimator, offset=7)
    with pytest.raises(ValueError, match="both"):
        beta_tcvae_loss(x, x_hat, mu, logvar, z, 100, cfg, batch_mu=mu)


@pytest.mark.slow
def test_ddp_matches_single_process(tmp_path, run_torchrun):
    """Two gloo processes under torchrun: same gradients and same trained weights as one process, both estimators."""
    done = run_torchrun(SCRIPT, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]

    for estimator in _script.ESTIMATORS:
        # gradients of one unevenly split batch (7 + 6 rows): DDP's average is the single-process gradient
        task = _script.NoiseTask(estimator)
        loss, _ = task.loss(_script.gradient_batch(), _script.N_CROPS)
        loss.backward()
        grads = load_file(tmp_path / f"grads_{estimator}.safetensors")
        for kind, bound in (("exact", 1e-5), ("local", None)):
            error = max(
                ((grads[f"{kind}.{name}"] - p.grad).abs().max() / p.grad.abs().max()).item()
                for name, p in task.model.named_parameters()
            )
            print(f"{estimator}: max relative gradient difference, {kind} estimators: {error:.2e}")
            if bound is not None:
                assert error < bound
            else:
                assert error > 1e-3  # without the all-gather DDP would train something else

        # two epochs with iter_train (a partial last batch each): the same weights
        single = _script.NoiseTask(estimator)
        train(single, _script.noisy_crops(), _script.train_config())
        expected = single.model.state_dict()
        ddp = load_file(tmp_path / f"weights_{estimator}.safetensors")
        assert ddp.keys() == expected.keys()
        difference = max((ddp[k] - expected[k]).abs().max().item() for k in ddp)
        print(f"{estimator}: max |DDP - single-process| weight difference: {difference:.2e}")
        assert difference < 1e-5


STREAM_SCRIPT = Path(__file__).with_name("_stream_ddp_script.py")


@pytest.mark.slow
def test_ddp_streams_disjoint_chunks_in_lock_step(tmp_path, run_torchrun):
    """Two processes stream a crop store: disjoint rows covering it each epoch, the same steps and weights."""
    import json

    done = run_torchrun(STREAM_SCRIPT, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["history"] == ranks[1]["history"]  # global means: every step taken together
    for epoch in range(2):
        rows = [[row for batch in rank["epochs"][epoch] for row in batch] for rank in ranks]
        assert len(ranks[0]["epochs"][epoch]) == len(ranks[1]["epochs"][epoch]) == 35  # 1100 rows, batches of 32
        assert not set(rows[0]) & set(rows[1])
        assert sorted(rows[0] + rows[1]) == list(range(1100))
        chunks = [{row // 256 for row in own} for own in rows]
        assert len(chunks[0] & chunks[1]) <= 1  # each reads its own chunks; one may straddle the boundary
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]  # reshuffled every epoch
    weights = [load_file(tmp_path / f"weights{r}.safetensors") for r in (0, 1)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert ranks[0]["history"][-1]["loss"] < ranks[0]["history"][0]["loss"]
