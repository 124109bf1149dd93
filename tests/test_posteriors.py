"""Posterior updates against closed forms, and sampled draws against scipy's distributions."""

import numpy as np
import pytest
from scipy import stats

from agents.posteriors import (
    LinearGaussian,
    NormalGamma,
    NormalInverseWishart,
    cholesky_rank_one_update,
    solve_lower,
    solve_lower_transpose,
)

KS_ALPHA = 1e-3  # a correct sampler fails one of these with probability ~0.1%


def test_rank_one_update_and_triangular_solves():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 6, 6))
    B = A @ A.transpose(0, 2, 1) + 6 * np.eye(6)
    L = np.linalg.cholesky(B)
    x = rng.standard_normal((4, 6))
    cholesky_rank_one_update(L, x)
    B2 = B + x[:, :, None] * x[:, None, :]
    assert np.allclose(L @ L.transpose(0, 2, 1), B2)
    assert np.allclose(np.tril(L), L)
    b = rng.standard_normal((4, 6))
    assert np.allclose(solve_lower(L, b), np.linalg.solve(L, b[..., None])[..., 0])
    assert np.allclose(solve_lower_transpose(L, b), np.linalg.solve(L.transpose(0, 2, 1), b[..., None])[..., 0])


def linear_data(seed=0, n=60, p=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    X[:, -1] = 1.0
    y = X @ rng.standard_normal(p) + 80 + 0.7 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("noise_var", [None, 2.0])
def test_linear_gaussian_sequential_equals_batch_closed_form(noise_var):
    X, y = linear_data()
    p = X.shape[1]
    mu0 = np.array([0.5, -0.2, 0.1, 70.0])  # a non-zero prior mean: its B0 mu0 term must be kept
    B0 = np.diag([2.0, 1.0, 0.5, 1e-3])
    post = LinearGaussian(3, mu0, B0, noise_var=noise_var, a0=2.0, b0=1.5)
    for xi, yi in zip(X, y):
        post.update(np.tile(xi, (3, 1)), np.full(3, yi))
    Bn = B0 + X.T @ X
    mun = np.linalg.solve(Bn, B0 @ mu0 + X.T @ y)
    assert np.allclose(post.chol[0] @ post.chol[0].T, Bn)
    assert np.allclose(post.posterior_mean(), mun)
    a_n, b_n = post.noise_params()
    assert a_n[0] == pytest.approx(2.0 + len(y) / 2)
    assert b_n[0] == pytest.approx(1.5 + 0.5 * (y @ y + mu0 @ B0 @ mu0 - mun @ Bn @ mun))
    assert post.dim == p


def test_linear_gaussian_learned_variance_draws_match_student_t():
    X, y = linear_data(1, n=25)
    post = LinearGaussian(20_000, np.zeros(4), np.diag([1.0, 1.0, 1.0, 1e-4]), a0=2.0, b0=1.0)
    for xi, yi in zip(X, y):
        post.update(np.broadcast_to(xi, (20_000, 4)), np.full(20_000, yi))
    draws = post.sample(np.random.default_rng(2))
    a_n, b_n = (v[0] for v in post.noise_params())
    cov = np.linalg.inv(post.chol[0] @ post.chol[0].T)
    mean = post.posterior_mean()[0]
    for j in range(4):  # theta_j ~ t_{2 a_n}(mu_j, sqrt(b_n / a_n * cov_jj))
        dist = stats.t(df=2 * a_n, loc=mean[j], scale=np.sqrt(b_n / a_n * cov[j, j]))
        assert stats.kstest(draws[:, j], dist.cdf).pvalue > KS_ALPHA


def test_linear_gaussian_fixed_variance_draws_match_normal():
    X, y = linear_data(3, n=10)
    post = LinearGaussian(20_000, np.zeros(4), np.eye(4), noise_var=3.0)
    for xi, yi in zip(X, y):
        post.update(np.broadcast_to(xi, (20_000, 4)), np.full(20_000, yi))
    draws = post.sample(np.random.default_rng(4))
    cov = 3.0 * np.linalg.inv(post.chol[0] @ post.chol[0].T)
    mean = post.posterior_mean()[0]
    for j in range(4):
        assert stats.kstest(draws[:, j], stats.norm(mean[j], np.sqrt(cov[j, j])).cdf).pvalue > KS_ALPHA


def test_normal_gamma_closed_form_and_draws():
    rng = np.random.default_rng(5)
    y = 80 + 3 * rng.standard_normal(12)
    m, nu, alpha, beta = 77.0, 5.0, 1.0, 10.0  # the paper's prior
    ng = NormalGamma(20_000, 2, m, nu, alpha, beta)
    rows = np.arange(20_000)
    for yi in y:
        ng.update(rows, np.zeros(20_000, dtype=int), np.full(20_000, yi))
    n, ybar, S = len(y), y.mean(), ((y - y.mean()) ** 2).sum()
    alpha_n = alpha + n / 2
    beta_n = beta + S / 2 + n * nu * (ybar - m) ** 2 / (2 * (n + nu))
    loc = (nu * m + n * ybar) / (nu + n)
    assert ng.count[0, 0] == n and ng.mean[0, 0] == pytest.approx(ybar) and ng.ssq[0, 0] == pytest.approx(S)
    draws = ng.sample(np.random.default_rng(6))
    # marginal of the mean: t_{2 alpha_n}(loc, sqrt(beta_n / (alpha_n (nu + n))))
    dist = stats.t(df=2 * alpha_n, loc=loc, scale=np.sqrt(beta_n / (alpha_n * (nu + n))))
    assert stats.kstest(draws[:, 0], dist.cdf).pvalue > KS_ALPHA
    prior = stats.t(df=2 * alpha, loc=m, scale=np.sqrt(beta / (alpha * nu)))  # untouched cell = prior
    assert stats.kstest(draws[:, 1], prior.cdf).pvalue > KS_ALPHA


def test_normal_inverse_wishart_sequential_equals_batch_formula():
    rng = np.random.default_rng(7)
    d = 3
    Z = rng.standard_normal((15, d)) @ np.diag([1.0, 2.0, 0.5]) + np.array([1.0, -1.0, 0.0])
    mu0, psi0, kappa0, nu0 = np.array([0.2, 0.0, -0.1]), 2.0 * np.eye(d), 1.5, d + 1.0
    niw = NormalInverseWishart(1, 4, d, mu0=mu0, psi0=psi0, kappa0=kappa0, nu0=nu0)
    for z in Z:
        niw.update(np.array([0]), np.array([2]), z[None])
    n, zbar = len(Z), Z.mean(0)
    scatter = (Z - zbar).T @ (Z - zbar)
    psi_n = psi0 + scatter + kappa0 * n / (kappa0 + n) * np.outer(zbar - mu0, zbar - mu0)
    assert np.allclose(niw.psi()[0, 2], psi_n)
    assert np.allclose(niw.mean[0, 2], (kappa0 * mu0 + n * zbar) / (kappa0 + n))
    assert niw.kappa[0, 2] == kappa0 + n and niw.nu[0, 2] == nu0 + n
    assert np.allclose(niw.psi()[0, 0], psi0)  # other cells untouched


def test_normal_inverse_wishart_mean_draws_match_two_step_scipy_draws():
    """t-marginal draws vs Sigma ~ scipy invwishart, mean ~ N(m, Sigma / kappa)."""
    rng = np.random.default_rng(8)
    d, n_draws = 2, 20_000
    niw = NormalInverseWishart(n_draws, 1, d)
    Z = rng.standard_normal((6, d)) + 1.0
    rows = np.arange(n_draws)
    for z in Z:
        niw.update(rows, np.zeros(n_draws, dtype=int), np.broadcast_to(z, (n_draws, d)))
    ours = niw.sample_mean(np.random.default_rng(9))[:, 0]
    psi, m, kappa, nu = niw.psi()[0, 0], niw.mean[0, 0], niw.kappa[0, 0], niw.nu[0, 0]
    sigmas = stats.invwishart(df=nu, scale=psi).rvs(n_draws, random_state=10)
    chol = np.linalg.cholesky(sigmas / kappa)
    ref = m + np.einsum("nij,nj->ni", chol, np.random.default_rng(11).standard_normal((n_draws, d)))
    for j in range(d):
        assert stats.ks_2samp(ours[:, j], ref[:, j]).pvalue > KS_ALPHA


def test_bad_priors_are_rejected():
    with pytest.raises(ValueError, match="prior_precision"):
        LinearGaussian(1, np.zeros(2), -np.eye(2))
    with pytest.raises(ValueError, match="nu0"):
        NormalInverseWishart(1, 1, 3, nu0=1.0)
    with pytest.raises(ValueError, match="prior_count"):
        NormalGamma(1, 1, 0.0, 0.0, 1.0, 1.0)


def updated_posteriors():
    """One of each posterior, two rows, after a few updates."""
    rng = np.random.default_rng(12)
    ng = NormalGamma(2, 3, 0.0, 1.0, 1.0, 1.0)
    lin = LinearGaussian(2, np.zeros(3), np.eye(3))
    niw = NormalInverseWishart(2, 3, 2)
    rows = np.arange(2)
    for _ in range(4):
        ng.update(rows, rng.integers(3, size=2), rng.standard_normal(2))
        lin.update(rng.standard_normal((2, 3)), rng.standard_normal(2))
        niw.update(rows, rng.integers(3, size=2), rng.standard_normal((2, 2)))
    return {"NormalGamma": (ng, lambda: NormalGamma(2, 3, 0.0, 1.0, 1.0, 1.0)),
            "LinearGaussian": (lin, lambda: LinearGaussian(2, np.zeros(3), np.eye(3))),
            "NormalInverseWishart": (niw, lambda: NormalInverseWishart(2, 3, 2))}


STATE_OF = {"NormalGamma": {"count": (2, 3), "mean": (2, 3), "ssq": (2, 3)},
            "LinearGaussian": {"chol": (2, 3, 3), "b": (2, 3), "yy": (2,), "n": (2,)},
            "NormalInverseWishart": {"mean": (2, 3, 2), "chol_psi": (2, 3, 2, 2), "kappa": (2, 3), "nu": (2, 3)}}


@pytest.mark.parametrize("name", STATE_OF)
def test_posterior_state_round_trip(name):
    post, fresh = updated_posteriors()[name]
    state = post.state()
    assert {k: v.shape for k, v in state.items()} == STATE_OF[name]
    other = fresh()
    other.load_state(state)
    assert all(np.array_equal(other.state()[k], v) for k, v in state.items())
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    draw = {"NormalGamma": lambda p, r: p.sample(r), "LinearGaussian": lambda p, r: p.sample(r),
            "NormalInverseWishart": lambda p, r: p.sample_mean(r)}[name]
    assert np.array_equal(draw(post, rng_a), draw(other, rng_b))
    # state() is a snapshot and load_state keeps a copy: neither shares memory with the live arrays
    key = next(iter(state))
    state[key][...] = 99.0
    assert not np.any(post.state()[key] == 99.0) and not np.any(other.state()[key] == 99.0)


@pytest.mark.parametrize("name", STATE_OF)
def test_posterior_load_state_names_what_is_wrong(name):
    post, _ = updated_posteriors()[name]
    state = post.state()
    key = next(iter(state))
    with pytest.raises(ValueError, match=f"{name}: {key} has shape \\(5,\\)"):
        post.load_state({**state, key: np.zeros(5)})
    with pytest.raises(ValueError, match=f"{name}: state names differ: missing \\['{key}'\\]"):
        post.load_state({k: v for k, v in state.items() if k != key})


def test_normal_inverse_wishart_mode_covariance_factor():
    niw = updated_posteriors()["NormalInverseWishart"][0]
    rows, cells = np.array([[0], [1]]), np.array([[0, 2], [1, 1]])
    factor = niw.mode_covariance_factor(rows, cells)
    mode = niw.psi()[rows, cells] / (niw.nu[rows, cells] + niw.dim + 1)[..., None, None]  # Psi / (nu + d + 1)
    assert factor.shape == (2, 2, 2, 2)
    assert np.allclose(factor @ np.swapaxes(factor, -1, -2), mode)
    assert np.allclose(np.triu(factor, 1), 0.0)
