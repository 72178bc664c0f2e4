"""The β-TCVAE objective (Chen et al. 2018): reconstruction + α·MI + β·TC + γ·dimension-wise KL.

The KL term of the ELBO, averaged over the data, splits into three parts::

    E_x KL(q(z|x) || p(z)) = E[log q(z|x) - log q(z)]                   index-code mutual information (MI)
                           + E[log q(z) - Σ_d log q(z_d)]               total correlation (TC)
                           + E[Σ_d log q(z_d) - Σ_d log p(z_d)]         dimension-wise KL (DWKL)

where q(z) = (1/N) Σ_n q(z|x_n) is the aggregate posterior over the N training crops. The densities
log q(z_i) and log Π_d q(z_id) at a sample z_i ~ q(z|x_i) are estimated from the minibatch through the
matrix ``L[i, j, d] = log q(z_id | x_j)`` (:func:`log_qz_matrix`) and a matrix of importance weights
``W[i, j]`` (:func:`log_importance_weights`)::

    log q(z_i)        ≈ logsumexp_j (log W[i, j] + Σ_d L[i, j, d])
    log Π_d q(z_id)   ≈ Σ_d logsumexp_j (log W[i, j] + L[i, j, d])

Two choices of W, both needing the TRUE dataset size N (a wrong N is a common bug):

* minibatch-weighted sampling (MWS, the paper's section 4.1): ``W[i, j] = 1 / (B·N)`` everywhere. This is the
  paper's lower-bound estimator (E[q̂(z)] <= q(z)), not an unbiased one: it is the plain minibatch average
  ``log((1/B) Σ_j q(z_i|x_j))`` minus log N, so its MI, TC and DWKL are those of the plain average shifted by
  exactly +log N, +(D-1)·log N and -D·log N. The shifts do not depend on the model parameters (the gradients are
  those of the plain average) and cancel in MI + TC + DWKL; with every posterior equal to the prior the terms are
  exactly log N, (D-1)·log N and -D·log N. Prefer MSS when the values of the terms matter (reports, model cards).
* minibatch-stratified sampling (MSS, the paper's appendix): with M = B - 1, ``W[i, i] = 1/N`` (the sample's
  own posterior), ``W[i, (i+1) mod B] = (N - M)/(N·M)`` (one partner per row) and ``1/M`` elsewhere; each row
  sums to 1 and the estimate of q(z_i) is unbiased when the batch is drawn as the paper assumes (the dataset cut
  into M equal strata; the partner comes from x_i's own stratum, every other sample from one of the other
  strata). The original code and its best-known port fill a column instead of the diagonal, and put the last
  row's partner weight in row M - 1 (``W[M-1, 0]``) instead of row M: both are fixed here and tested against a
  brute-force aggregate posterior in ``tests/core/test_vae_loss.py``.

The estimators work in float32 or float64 (half-precision inputs are promoted to float32).

Data parallelism: under ``torchrun`` each process holds a contiguous share of the global minibatch. To reproduce
the single-process estimate, a process scores its own rows against the whole batch: pass the all-gathered posterior
parameters of the global batch as ``mu``/``logvar`` of :func:`estimate_log_qz` (or ``batch_mu``/``batch_logvar`` of
:func:`beta_tcvae_loss`) and the position of the local rows in it as ``offset``; the rows of L and of W are then
those of the global matrices (the MSS partner of global row r stays at column (r + 1) mod B).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..config import TCEstimator, VAEConfig

__all__ = [
    "beta_tcvae_loss",
    "estimate_log_qz",
    "gaussian_log_density",
    "log_importance_weights",
    "log_qz_matrix",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _promote(t: Tensor) -> Tensor:
    """At least float32: log-densities in bfloat16/float16 lose every digit that matters here."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def gaussian_log_density(z: Tensor, mu: Tensor | float, logvar: Tensor | float) -> Tensor:
    """Elementwise log-density of ``z`` under N(mu, exp(logvar)).

    Parameters
    ----------
    z, mu, logvar : Tensor or float
        Broadcastable; ``logvar`` is the natural log of the variance.

    Returns
    -------
    Tensor
        ``-0.5·(log 2π + logvar + (z - mu)² / exp(logvar))``, broadcast shape.

    Examples
    --------
    >>> import torch
    >>> round(gaussian_log_density(torch.tensor(0.0), 0.0, 0.0).item(), 4)  # -0.5·log(2π)
    -0.9189
    """
    z = torch.as_tensor(z)
    mu = torch.as_tensor(mu, dtype=z.dtype, device=z.device)
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    scaled = (z - mu) * torch.exp(-0.5 * logvar)  # scale before squaring: no 0·inf for tiny variances
    return -0.5 * (_LOG_2PI + logvar + scaled * scaled)


def log_qz_matrix(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Matrix of log q(z_id | x_j) for every sample i and posterior j of a minibatch.

    Parameters
    ----------
    z : Tensor of shape (..., B, D) or (..., b, D)
        One sample per item, z_i ~ q(z | x_i); may be only some rows (b <= B) of the minibatch, e.g. one
        process's share under data parallelism.
    mu, logvar : Tensor of shape (..., B, D)
        Posterior means and log-variances of the minibatch's items.

    Returns
    -------
    Tensor of shape (..., b, B, D)
        ``[..., i, j, d] = log N(z_id; mu_jd, exp(logvar_jd))``; leading dimensions are kept (independent batches).

    Examples
    --------
    >>> import torch
    >>> log_qz_matrix(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2)).shape
    torch.Size([3, 3, 2])
    """
    if mu.shape != logvar.shape or z.ndim < 2 or z.shape[:-2] != mu.shape[:-2] or z.shape[-1:] != mu.shape[-1:]:
        raise ValueError(
            f"mu and logvar must share one shape (..., B, D) and z be (..., b, D); got {tuple(z.shape)}, "
            f"{tuple(mu.shape)}, {tuple(logvar.shape)}."
        )
    return gaussian_log_density(z.unsqueeze(-2), mu.unsqueeze(-3), logvar.unsqueeze(-3))


def _check_sizes(batch_size: int, dataset_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"The minibatch is empty (batch size {batch_size}).")
    if dataset_size < batch_size:
        raise ValueError(
            f"dataset_size ({dataset_size}) is smaller than the minibatch ({batch_size}): pass the number of "
            "crops in the whole training set (the estimators of log q(z) need the true dataset size N)."
        )


def log_importance_weights(
    batch_size: int,
    dataset_size: int,
    estimator: TCEstimator | str = TCEstimator.MWS,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Log importance weights ``log W[i, j]`` of posterior j when estimating q(z_i) from a minibatch.

    Parameters
    ----------
    batch_size : int
        Minibatch size B (MSS needs B >= 2).
    dataset_size : int
        Number of items N in the whole training set, N >= B.
    estimator : TCEstimator or str, default="mws"
        ``"mws"``: every weight 1/(B·N). ``"mss"``: 1/N on the diagonal, (N - M)/(N·M) at ``(i, (i+1) mod B)``
        and 1/M elsewhere, with M = B - 1 (each row sums to 1).
    dtype : torch.dtype, default=torch.float32
    device : torch.device or str, optional

    Returns
    -------
    Tensor of shape (B, B)

    Examples
    --------
    >>> w = log_importance_weights(4, 12, "mss").exp()
    >>> [round(v, 4) for v in w[3].tolist()]  # row 3: partner (column 0), others, own (diagonal)
    [0.25, 0.3333, 0.3333, 0.0833]
    """
    _check_sizes(batch_size, dataset_size)
    estimator = TCEstimator(estimator)
    n, b = float(dataset_size), batch_size
    if estimator is TCEstimator.MWS:
        return torch.full((b, b), -math.log(b * n), dtype=dtype, device=device)
    if b < 2:
        raise ValueError("Minibatch-stratified sampling needs a minibatch of at least 2 items.")
    m = b - 1
    weights = torch.full((b, b), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(b)
    weights[rows, (rows + 1) % b] = (n - m) / (n * m)  # the partner drawn from x_i's own stratum
    weights[rows, rows] = 1.0 / n  # the sample's own posterior: the diagonal, not a column
    return weights.log().to(dtype=dtype, device=device)


def estimate_log_qz(
    z: Tensor,
    mu: Tensor,
    logvar: Tensor,
    dataset_size: int,
    estimator: TCEstimator | str = TCEstimator.MWS,
    *,
    offset: int = 0,
) -> tuple[Tensor, Tensor]:
    """Minibatch estimates of log q(z_i) and log Π_d q(z_id) under the aggregate posterior.

    Parameters
    ----------
    z : Tensor of shape (..., b, D)
        z_i ~ q(z | x_i) for items ``offset .. offset + b - 1`` of the minibatch (usually all of it: b = B).
    mu, logvar : Tensor of shape (..., B, D)
        The posterior parameters of the whole minibatch (under data parallelism: gathered from every process).
    dataset_size : int
        Number of items N in the whole training set (not the batch size).
    estimator : TCEstimator or str, default="mws"
        Minibatch-weighted (``"mws"``) or minibatch-stratified (``"mss"``) sampling; see the module docstring.
    offset : int, default=0
        Position in the minibatch of ``z``'s first row.

    Returns
    -------
    log_qz : Tensor of shape (..., b)
        Estimate of log q(z_i).
    log_prod_qzd : Tensor of shape (..., b)
        Estimate of Σ_d log q(z_id).

    Examples
    --------
    >>> import torch
    >>> zeros = torch.zeros(4, 3)
    >>> log_qz, log_prod = estimate_log_qz(zeros, zeros, zeros, dataset_size=100, estimator="mss")
    >>> torch.allclose(log_qz, gaussian_log_density(zeros, 0.0, 0.0).sum(-1))  # posterior = prior: exact
    True
    """
    z, mu, logvar = _promote(z), _promote(mu), _promote(logvar)
    matrix = log_qz_matrix(z, mu, logvar)
    rows = z.shape[-2]
    if not 0 <= offset <= mu.shape[-2] - rows:
        raise ValueError(f"Rows {offset} .. {offset + rows - 1} do not lie in a minibatch of {mu.shape[-2]} items.")
    log_w = log_importance_weights(mu.shape[-2], dataset_size, estimator, dtype=matrix.dtype, device=matrix.device)
    log_w = log_w[offset : offset + rows]
    log_qz = torch.logsumexp(log_w + matrix.sum(-1), dim=-1)
    log_prod_qzd = torch.logsumexp(log_w.unsqueeze(-1) + matrix, dim=-2).sum(-1)
    return log_qz, log_prod_qzd


def beta_tcvae_loss(
    x: Tensor,
    x_hat: Tensor,
    mu: Tensor,
    logvar: Tensor,
    z: Tensor,
    dataset_size: int,
    cfg: VAEConfig,
    *,
    batch_mu: Tensor | None = None,
    batch_logvar: Tensor | None = None,
    offset: int = 0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """β-TCVAE loss of one minibatch: reconstruction + α·MI + β·TC + γ·dimension-wise KL.

    Parameters
    ----------
    x, x_hat : Tensor of shape (B, 1, Y, X)
        Crops and their reconstructions.
    mu, logvar : Tensor of shape (B, D)
        Posterior parameters of the crops.
    z : Tensor of shape (B, D)
        One sample z_i ~ q(z | x_i) per crop (the one that produced ``x_hat``).
    dataset_size : int
        Number of crops in the whole training set (>= B); under data parallelism, the global count.
    cfg : VAEConfig
        Supplies ``alpha``, ``beta``, ``gamma`` and ``estimator``.
    batch_mu, batch_logvar : Tensor of shape (B_global, D), optional
        Under data parallelism: the posterior parameters of the whole global minibatch (all-gathered, in order),
        of which ``x``, ``mu``, ``logvar`` and ``z`` are rows ``offset .. offset + B - 1``. The estimators then
        score the local samples against the global batch, as a single process would. Give both or neither.
    offset : int, default=0
        Position of the local rows in the global minibatch (with ``batch_mu``).

    Returns
    -------
    loss : Tensor
        Scalar, mean over the (local) minibatch, in nats.
    terms : dict of str to Tensor
        Scalars: ``recon`` (0.5·sum of squared errors over pixels, the negative Gaussian log-likelihood with unit
        variance up to a constant), ``mi``, ``tc``, ``dwkl`` (minibatch estimates; ``mi + tc + dwkl`` equals the
        Monte-Carlo KL ``E[log q(z|x) - log p(z)]`` exactly), and ``kl``, the closed-form KL(q(z|x) || N(0, I)),
        for reference.

    Raises
    ------
    ValueError
        If the shapes disagree or ``dataset_size`` is smaller than the batch.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(8, 1, 16, 16)
    >>> zeros = torch.zeros(8, 4)
    >>> loss, terms = beta_tcvae_loss(x, x, zeros, zeros, zeros, 1000, VAEConfig(estimator="mss"))
    >>> abs(loss.item()) < 1e-5, sorted(terms)  # perfect reconstruction, posterior = prior
    (True, ['dwkl', 'kl', 'mi', 'recon', 'tc'])
    """
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat differ in shape: {tuple(x.shape)} vs {tuple(x_hat.shape)}.")
    if mu.ndim != 2 or not (z.shape == mu.shape == logvar.shape) or mu.shape[0] != x.shape[0]:
        raise ValueError(
            f"mu, logvar and z must be (B, D) with B = {x.shape[0]} crops; got {tuple(mu.shape)}, "
            f"{tuple(logvar.shape)}, {tuple(z.shape)}."
        )
    if (batch_mu is None) != (batch_logvar is None):
        raise ValueError("Give both batch_mu and batch_logvar (the global batch's posterior), or neither.")
    if batch_mu is None:
        batch_mu, batch_logvar, offset = mu, logvar, 0
    elif batch_mu.ndim != 2 or batch_mu.shape != batch_logvar.shape or batch_mu.shape[1] != mu.shape[1]:
        raise ValueError(
            f"batch_mu and batch_logvar must be (B_global, D) with D = {mu.shape[1]}; got {tuple(batch_mu.shape)}, "
            f"{tuple(batch_logvar.shape)}."
        )
    _check_sizes(batch_mu.shape[0], dataset_size)
    x, x_hat, mu, logvar, z, batch_mu, batch_logvar = (
        _promote(t) for t in (x, x_hat, mu, logvar, z, batch_mu, batch_logvar)
    )

    recon = 0.5 * (x - x_hat).pow(2).flatten(1).sum(1).mean()
    log_qz_x = gaussian_log_density(z, mu, logvar).sum(-1)
    log_pz = gaussian_log_density(z, 0.0, 0.0).sum(-1)
    log_qz, log_prod_qzd = estimate_log_qz(z, batch_mu, batch_logvar, dataset_size, cfg.estimator, offset=offset)

    mi = (log_qz_x - log_qz).mean()
    tc = (log_qz - log_prod_qzd).mean()
    dwkl = (log_prod_qzd - log_pz).mean()
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()

    loss = recon + cfg.alpha * mi + cfg.beta * tc + cfg.gamma * dwkl
    return loss, {"recon": recon, "mi": mi, "tc": tc, "dwkl": dwkl, "kl": kl}
