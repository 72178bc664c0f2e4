"""β-TCVAE loss: the minibatch estimators of log q(z) checked against a brute-force aggregate posterior.

On a tiny problem (N = 12 crops, D = 2 latents, Gaussian posteriors with known parameters) the aggregate
posterior q(z) = (1/N) Σ_n q(z|x_n) is computed exactly, with numpy, independently of the code under test.
Unbiasedness holds for the estimate of q(z) itself (a density), not for its log (Jensen), so the Monte-Carlo
checks compare exp(estimate) / target with 1 over many random minibatches. Each check also runs the known bugs
and asserts that they are measurably off, so the tests have teeth.
"""

import math

import numpy as np
import pytest
import torch

from napari_cellstate.core.config import TCEstimator, VAEConfig
from napari_cellstate.core.vae import (
    beta_tcvae_loss,
    estimate_log_qz,
    gaussian_log_density,
    log_importance_weights,
    log_qz_matrix,
)

N, D, B = 12, 2, 4  # dataset, latents, minibatch; MSS: M = B - 1 = 3 strata of N / M = 4 items
M = B - 1
K = 40_000  # Monte-Carlo minibatches per check
F64 = torch.float64


@pytest.fixture(scope="module")
def posteriors():
    """Known posteriors q(z|x_n) = N(mu_n, diag exp(logvar_n)) of the N items, overlapping partly."""
    rng = np.random.default_rng(0)
    mu = rng.uniform(-2.0, 2.0, (N, D))
    logvar = 2.0 * np.log(rng.uniform(0.2, 0.8, (N, D)))
    return torch.tensor(mu, dtype=F64), torch.tensor(logvar, dtype=F64)


def exact_log_q(z, mu_all, logvar_all):
    """Brute force, in numpy: log q(z) and log q(z_d) of the aggregate posterior over all N items.

    z : (..., D) -> ((...), (..., D))
    """
    z, mu, lv = (np.asarray(t, dtype=np.float64) for t in (z, mu_all, logvar_all))
    log_pdf = -0.5 * (np.log(2 * np.pi) + lv + (z[..., None, :] - mu) ** 2 / np.exp(lv))  # (..., N, D)
    log_q = np.logaddexp.reduce(log_pdf.sum(-1), axis=-1) - np.log(len(mu))
    log_q_dims = np.logaddexp.reduce(log_pdf, axis=-2) - np.log(len(mu))
    return torch.tensor(log_q), torch.tensor(log_q_dims)


def draw_z(mu, logvar, gen):
    return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen, dtype=mu.dtype)


def weighted_log_qz(matrix, log_w):
    """log q(z_i) ≈ logsumexp_j (log W_ij + Σ_d log q(z_id | x_j)) for any weight matrix."""
    return torch.logsumexp(log_w + matrix.sum(-1), dim=-1)


def buggy_column_weights(b, n):
    """The original code's matrix (rtqichen/beta-tcvae, copied by YannDubs/disentangling-vae).

    A stride of M + 1 = B in the flattened (B, B) matrix walks down a column, so 1/N fills column 0 and the
    partner weight column 1 instead of the diagonal and the superdiagonal.
    """
    m = b - 1
    w = torch.full((b, b), 1.0 / m, dtype=F64)
    w.view(-1)[:: m + 1] = 1.0 / n
    w.view(-1)[1 :: m + 1] = (n - m) / (n * m)
    w[m - 1, 0] = (n - m) / (n * m)
    return w.log()


def buggy_last_row_weights(b, n):
    """The diagonal fixed (stride M + 2) but the wrap-around partner still written at W[M-1, 0], not W[M, 0]."""
    m = b - 1
    w = torch.full((b, b), 1.0 / m, dtype=F64)
    w.view(-1)[:: m + 2] = 1.0 / n
    w.view(-1)[1 :: m + 2] = (n - m) / (n * m)
    w[m - 1, 0] = (n - m) / (n * m)
    return w.log()


def mean_and_se(values):
    return values.mean(0), values.std(0) / math.sqrt(values.shape[0])


# --- the weight matrices -------------------------------------------------------------------------------------------


def test_mss_weights_match_the_paper():
    w = log_importance_weights(B, N, "mss", dtype=F64).exp()
    strat = (N - M) / (N * M)
    expected = torch.full((B, B), 1.0 / M, dtype=F64)
    for i in range(B):
        expected[i, i] = 1.0 / N  # own posterior on the diagonal
        expected[i, (i + 1) % B] = strat  # one partner per row; the last row's is W[M, 0]
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(w.sum(1), torch.ones(B, dtype=F64))  # q(z) estimates integrate to one
    assert not torch.allclose(buggy_column_weights(B, N).exp(), expected)
    assert not torch.allclose(buggy_last_row_weights(B, N).exp(), expected)


def test_mws_weights_use_the_dataset_size():
    w = log_importance_weights(B, N, TCEstimator.MWS, dtype=F64)
    torch.testing.assert_close(w, torch.full((B, B), -math.log(B * N), dtype=F64))


def test_weights_refuse_bad_sizes():
    with pytest.raises(ValueError, match="dataset_size"):
        log_importance_weights(8, 4, "mws")
    with pytest.raises(ValueError, match="at least 2"):
        log_importance_weights(1, 10, "mss")
    log_importance_weights(1, 10, "mws")  # MWS works for a batch of one


# --- 1. brute force --------------------------------------------------------------------------------------------------


def test_matrix_orientation_and_values(posteriors):
    mu_all, lv_all = posteriors
    z = draw_z(mu_all[:B], lv_all[:B], torch.Generator().manual_seed(0))
    matrix = log_qz_matrix(z, mu_all[:B], lv_all[:B])
    assert matrix.shape == (B, B, D)
    i, j, d = 1, 3, 0  # row: the sample z_i; column: the posterior of x_j
    mu, lv = mu_all[j, d].item(), lv_all[j, d].item()
    by_hand = -0.5 * (math.log(2 * math.pi) + lv + (z[i, d].item() - mu) ** 2 / math.exp(lv))
    assert matrix[i, j, d].item() == pytest.approx(by_hand, rel=1e-12)


def test_whole_dataset_batch_recovers_exact_aggregate_posterior(posteriors):
    """(a) B = N: logsumexp over every posterior − log N is the exact log q(z); MWS sits log N below it."""
    mu_all, lv_all = posteriors
    gen = torch.Generator().manual_seed(1)
    order = torch.stack([torch.randperm(N, generator=gen) for _ in range(200)])  # 200 batches, all N items each
    mu, lv = mu_all[order], lv_all[order]
    z = draw_z(mu, lv, gen)
    exact, exact_dims = exact_log_q(z, mu_all, lv_all)

    matrix = log_qz_matrix(z, mu, lv)
    torch.testing.assert_close(torch.logsumexp(matrix.sum(-1), -1) - math.log(N), exact, rtol=0, atol=1e-10)
    torch.testing.assert_close(torch.logsumexp(matrix, -2) - math.log(N), exact_dims, rtol=0, atol=1e-10)

    log_qz, log_prod = estimate_log_qz(z, mu, lv, dataset_size=N, estimator="mws")
    torch.testing.assert_close(log_qz, exact - math.log(N), rtol=0, atol=1e-10)  # the paper's 1/(B·N) with B = N
    torch.testing.assert_close(log_prod, exact_dims.sum(-1) - D * math.log(N), rtol=0, atol=1e-10)
    wrong_n, _ = estimate_log_qz(z, mu, lv, dataset_size=2 * N, estimator="mws")
    assert (wrong_n - (exact - math.log(N))).abs().min() > 0.69  # a wrong N shows as log(N'/N)


@pytest.mark.slow
def test_mws_expectation_over_random_minibatches(posteriors):
    """(b) MWS, B < N, minibatches drawn i.i.d. (the paper's p(B)): E[q̂(z_i)] = (q(z_i|x_i) + (B−1)·q(z_i)) / (B·N).

    This is the paper's importance-sampling identity (p(B)/r(B|n) = 1/N), exact for every z_i; MWS is therefore a
    lower bound (E[q̂] <= q(z)), not unbiased. With log(B·B) in place of log(B·N), the estimate is N/B = 3 times too
    large.
    """
    mu_all, lv_all = posteriors
    gen = torch.Generator().manual_seed(2)
    items = torch.randint(N, (K, B), generator=gen)
    mu, lv = mu_all[items], lv_all[items]
    z = draw_z(mu, lv, gen)
    exact, exact_dims = exact_log_q(z, mu_all, lv_all)
    own = gaussian_log_density(z, mu, lv)  # (K, B, D): log q(z_i | x_i)

    log_qz, _ = estimate_log_qz(z, mu, lv, dataset_size=N, estimator="mws")
    target = torch.logaddexp(own.sum(-1), math.log(B - 1) + exact) - math.log(B * N)
    ratio, se = mean_and_se(torch.exp(log_qz - target).flatten())
    assert abs(ratio - 1) < 5 * se, (ratio, se)

    for d in range(D):  # each marginal q(z_d), through the same estimator on one latent
        _, log_qd = estimate_log_qz(z[..., d : d + 1], mu[..., d : d + 1], lv[..., d : d + 1], N, "mws")
        target_d = torch.logaddexp(own[..., d], math.log(B - 1) + exact_dims[..., d]) - math.log(B * N)
        ratio_d, se_d = mean_and_se(torch.exp(log_qd - target_d).flatten())
        assert abs(ratio_d - 1) < 5 * se_d, (d, ratio_d, se_d)

    wrong = log_qz + math.log(B * N) - math.log(B * B)  # the popular log(B·B) variant
    ratio_wrong, _ = mean_and_se(torch.exp(wrong - target).flatten())
    assert ratio_wrong == pytest.approx(N / B, rel=0.02)
    assert abs(ratio_wrong - 1) > 100 * se

    below, _ = mean_and_se(torch.exp(log_qz - exact).flatten())
    assert below < 1  # the lower bound: about 0.19 of q(z) here


def stratified_minibatches(row, gen):
    """Minibatches drawn as MSS assumes, seen from row ``row`` (Chen et al. 2018, appendix).

    The dataset is cut into M equal strata. x_row = n* is uniform; the partner slot (row + 1) mod B gets a uniform
    item of n*'s own stratum other than n*; the other M − 1 slots get one uniform item from each other stratum.
    Then q̂(z_row) = Σ_j W[row, j]·q(z_row | x_j) is an unbiased estimate of q(z_row).
    """
    size = N // M
    n_star = torch.randint(N, (K,), generator=gen)
    stratum = n_star // size
    items = torch.empty(K, B, dtype=torch.long)
    items[:, row] = n_star
    offset = torch.randint(size - 1, (K,), generator=gen)
    offset += offset >= n_star % size  # skip n* itself
    items[:, (row + 1) % B] = stratum * size + offset
    keys = torch.rand(K, M, generator=gen)
    keys[torch.arange(K), stratum] = 2.0  # n*'s stratum sorts last
    other_strata = keys.argsort(-1)[:, : M - 1]
    other_slots = [c for c in range(B) if c not in (row, (row + 1) % B)]
    for k, slot in enumerate(other_slots):
        items[:, slot] = other_strata[:, k] * size + torch.randint(size, (K,), generator=gen)
    return items


@pytest.mark.slow
@pytest.mark.parametrize("design", ["stratified", "shuffled"])
def test_mss_unbiased_and_known_bugs_are_not(posteriors, design):
    """(c) MSS: E[q̂(z_i)] = q(z_i) for every row i, and for every marginal q(z_id).

    "stratified" draws batches exactly as the paper assumes; "shuffled" draws B distinct items uniformly (what a
    shuffling DataLoader gives), for which the weights are unbiased too since those of the other items sum to
    (N − 1)/N. The column-instead-of-diagonal matrix is off by a factor of about 2 on rows 1 to 3; the W[M−1, 0]
    slip biases rows M − 1 and M by several percent.
    """
    mu_all, lv_all = posteriors
    gen = torch.Generator().manual_seed(3)
    log_w = log_importance_weights(B, N, "mss", dtype=F64)
    deviations = {"ours": [], "column": [], "last_row": []}
    for row in range(B):
        if design == "stratified":
            items = stratified_minibatches(row, gen)
        else:
            items = torch.rand(K, N, generator=gen).argsort(-1)[:, :B]
        mu, lv = mu_all[items], lv_all[items]
        z = draw_z(mu, lv, gen)
        exact, exact_dims = exact_log_q(z[:, row], mu_all, lv_all)

        log_qz, log_prod = estimate_log_qz(z, mu, lv, dataset_size=N, estimator="mss")
        matrix = log_qz_matrix(z, mu, lv)
        torch.testing.assert_close(log_qz, weighted_log_qz(matrix, log_w))
        ratio, se = mean_and_se(torch.exp(log_qz[:, row] - exact))
        assert abs(ratio - 1) < 5 * se, (row, ratio, se)
        deviations["ours"].append(abs(ratio - 1) / se)

        log_prod_dims = 0.0
        for d in range(D):
            _, log_qd = estimate_log_qz(z[..., d : d + 1], mu[..., d : d + 1], lv[..., d : d + 1], N, "mss")
            log_prod_dims = log_prod_dims + log_qd
            ratio_d, se_d = mean_and_se(torch.exp(log_qd[:, row] - exact_dims[:, d]))
            assert abs(ratio_d - 1) < 5 * se_d, (row, d, ratio_d, se_d)
        torch.testing.assert_close(log_prod, log_prod_dims)

        for name, bug in [("column", buggy_column_weights(B, N)), ("last_row", buggy_last_row_weights(B, N))]:
            ratio_bug, se_bug = mean_and_se(torch.exp(weighted_log_qz(matrix, bug)[:, row] - exact))
            deviations[name].append(abs(ratio_bug - 1) / se_bug)

    assert max(deviations["ours"]) < 5
    assert max(deviations["column"]) > 100  # about 2x on rows 1..3 (row 0 happens to be right)
    assert min(deviations["last_row"][M - 1 :]) > 8  # rows M-1 and M: about -4 % and +6 % here


# --- 2. the terms ---------------------------------------------------------------------------------------------------


def batch_of(n_items=64, n_latents=4, seed=0, prior=False, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    if prior:
        mu = torch.zeros(n_items, n_latents, dtype=dtype)
        logvar = torch.zeros(n_items, n_latents, dtype=dtype)
    else:
        mu = torch.randn(n_items, n_latents, generator=gen, dtype=dtype)
        logvar = 0.5 * torch.randn(n_items, n_latents, generator=gen, dtype=dtype) - 1.0
    z = draw_z(mu, logvar, gen)
    x = torch.randn(n_items, 1, 16, 16, generator=gen, dtype=dtype)
    x_hat = x + 0.1 * torch.randn(x.shape, generator=gen, dtype=dtype)
    return x, x_hat, mu, logvar, z


def test_terms_vanish_when_every_posterior_is_the_prior():
    x, x_hat, mu, logvar, z = batch_of(prior=True)
    _, terms = beta_tcvae_loss(x, x_hat, mu, logvar, z, 1000, VAEConfig(estimator="mss"))
    for name in ("mi", "tc", "dwkl", "kl"):
        assert abs(terms[name].item()) < 1e-10, name


def test_mws_terms_with_prior_posteriors_are_the_paper_offsets():
    """MWS = log((1/B) Σ_j q(z|x_j)) − log N: constant offsets, no effect on gradients, summing to the KL (0)."""
    n_data, n_latents = 1000, 4
    x, x_hat, mu, logvar, z = batch_of(n_latents=n_latents, prior=True)
    _, terms = beta_tcvae_loss(x, x_hat, mu, logvar, z, n_data, VAEConfig(estimator="mws"))
    log_n = math.log(n_data)
    assert terms["mi"].item() == pytest.approx(log_n, abs=1e-9)
    assert terms["tc"].item() == pytest.approx((n_latents - 1) * log_n, abs=1e-9)
    assert terms["dwkl"].item() == pytest.approx(-n_latents * log_n, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_terms_decompose_the_kl(estimator):
    """MI + TC + DWKL = E[log q(z|x) − log p(z)] in every batch, whose expectation is the closed-form KL."""
    cfg = VAEConfig(estimator=estimator)
    x, x_hat, mu, logvar, _ = batch_of()
    gen = torch.Generator().manual_seed(5)
    sums, kls = [], []
    for _ in range(400):
        z = draw_z(mu, logvar, gen)
        _, terms = beta_tcvae_loss(x, x_hat, mu, logvar, z, 5000, cfg)
        mc_kl = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, 0.0, 0.0)).sum(-1).mean()
        total = terms["mi"] + terms["tc"] + terms["dwkl"]
        torch.testing.assert_close(total, mc_kl)
        sums.append(total)
        kls.append(terms["kl"])
    sums = torch.stack(sums)
    mean, se = mean_and_se(sums)
    assert abs(mean - kls[0]) < 5 * se, (mean, kls[0], se)
    assert all(torch.equal(k, kls[0]) for k in kls)  # the closed form does not depend on z


def test_loss_is_the_weighted_sum_of_its_terms():
    x, x_hat, mu, logvar, z = batch_of()
    expected_recon = 0.5 * ((x - x_hat) ** 2).sum() / x.shape[0]
    plain = {}
    for estimator in ("mws", "mss"):
        loss, terms = beta_tcvae_loss(
            x, x_hat, mu, logvar, z, 5000, VAEConfig(alpha=1, beta=1, gamma=1, estimator=estimator)
        )
        torch.testing.assert_close(terms["recon"], expected_recon)
        torch.testing.assert_close(loss, terms["recon"] + terms["mi"] + terms["tc"] + terms["dwkl"])
        plain[estimator] = loss
    torch.testing.assert_close(plain["mws"], plain["mss"])  # α = β = γ = 1: the ELBO, whatever the estimator

    loss, terms = beta_tcvae_loss(x, x_hat, mu, logvar, z, 5000, VAEConfig(alpha=2.0, beta=6.0, gamma=0.5))
    torch.testing.assert_close(loss, terms["recon"] + 2.0 * terms["mi"] + 6.0 * terms["tc"] + 0.5 * terms["dwkl"])


def test_loss_refuses_bad_input():
    x, x_hat, mu, logvar, z = batch_of(n_items=8)
    with pytest.raises(ValueError, match="dataset_size"):
        beta_tcvae_loss(x, x_hat, mu, logvar, z, 7, VAEConfig())
    with pytest.raises(ValueError, match="x and x_hat"):
        beta_tcvae_loss(x, x_hat[:, :, :8], mu, logvar, z, 100, VAEConfig())
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        beta_tcvae_loss(x, x_hat, mu[:4], logvar[:4], z[:4], 100, VAEConfig())
    with pytest.raises(ValueError, match="at least 2"):
        beta_tcvae_loss(x[:1], x_hat[:1], mu[:1], logvar[:1], z[:1], 100, VAEConfig(estimator="mss"))


# --- 3. gradients and stability -------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_gradients_reach_mu_and_logvar(estimator):
    x, x_hat, mu, logvar, _ = batch_of(dtype=torch.float32)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    z = draw_z(mu, logvar, torch.Generator().manual_seed(0))  # reparameterised: z depends on mu and logvar
    loss, _ = beta_tcvae_loss(x, x_hat, mu, logvar, z, 5000, VAEConfig(estimator=estimator))
    loss.backward()
    for grad in (mu.grad, logvar.grad):
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_loss_finite_for_large_means_and_small_variances(estimator, dtype):
    gen = torch.Generator().manual_seed(0)
    mu = (1e3 * torch.randn(32, 8, generator=gen)).to(dtype).requires_grad_(True)
    logvar = torch.full((32, 8), -20.0, dtype=dtype, requires_grad=True)
    z = draw_z(mu, logvar, gen)
    x = torch.zeros(32, 1, 16, 16, dtype=dtype)
    loss, terms = beta_tcvae_loss(x, x, mu, logvar, z, 10_000, VAEConfig(estimator=estimator))
    assert loss.dtype == torch.float32  # half precision is promoted
    assert torch.isfinite(loss)
    assert all(torch.isfinite(t) for t in terms.values())
    loss.backward()
    assert torch.isfinite(mu.grad).all()
    assert torch.isfinite(logvar.grad).all()
