"""The compiled triangular kernels (numba, the ``fast`` extra) against their numpy form, and their stability."""

import numpy as np
import pytest

from agents import posteriors
from agents.posteriors import LinearGaussian, cholesky_rank_one_update, solve_lower, solve_lower_transpose

needs_numba = pytest.mark.skipif(posteriors._compiled is None, reason="numba (the fast extra) is not installed")


@pytest.fixture
def numpy_only(monkeypatch):
    """Run the numpy form of the kernels, as on an install without numba."""
    monkeypatch.setattr(posteriors, "_compiled", None)


def random_factor(rng, shape, p):
    A = rng.standard_normal(shape + (p, p))
    return np.linalg.cholesky(A @ np.swapaxes(A, -1, -2) + p * np.eye(p))


def run_kernels(seed, shape, p):
    """Ten rank-one updates then both solves; everything they return or change."""
    rng = np.random.default_rng(seed)
    L = random_factor(rng, shape, p)
    out = []
    for _ in range(10):
        cholesky_rank_one_update(L, 10 * rng.standard_normal(shape + (p,)))
        b = rng.standard_normal(shape + (p,))
        out += [L.copy(), solve_lower(L, b), solve_lower_transpose(L, b)]
    return out


@needs_numba
@pytest.mark.parametrize("shape", [(1,), (3,), (250,), (2, 3), ()])
@pytest.mark.parametrize("p", [1, 3, 11, 40])
def test_compiled_kernels_equal_numpy_form_bit_for_bit(shape, p, monkeypatch):
    fast = run_kernels(0, shape, p)
    monkeypatch.setattr(posteriors, "_compiled", None)
    slow = run_kernels(0, shape, p)
    for a, b in zip(fast, slow, strict=True):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@needs_numba
def test_linear_model_equal_with_and_without_numba(monkeypatch):
    def run():
        rng, post = np.random.default_rng(5), LinearGaussian(4, np.zeros(9), np.full(9, 0.1))
        draws = []
        for _ in range(300):
            post.update(rng.standard_normal((4, 9)), 80 + 3 * rng.standard_normal(4))
            draws.append(post.sample(rng))
        return [*post.state().values(), np.array(draws), post.posterior_mean()]

    fast = run()
    monkeypatch.setattr(posteriors, "_compiled", None)
    for a, b in zip(fast, run(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_factor_takes_the_numpy_form_with_the_same_numbers():
    rng = np.random.default_rng(1)
    L = random_factor(rng, (3,), 5)
    x = rng.standard_normal((3, 5))
    strided = np.asfortranarray(L)  # not C-contiguous: the compiled kernels do not take it
    cholesky_rank_one_update(L, x)
    cholesky_rank_one_update(strided, x)
    np.testing.assert_array_equal(L, strided)
    b = rng.standard_normal((3, 5))
    np.testing.assert_array_equal(solve_lower(L, b), solve_lower(strided, b))
    np.testing.assert_array_equal(solve_lower_transpose(L, b), solve_lower_transpose(strided, b))
    np.testing.assert_allclose(solve_lower(L, b), np.linalg.solve(L, b[..., None])[..., 0], rtol=1e-13)
    np.testing.assert_allclose(solve_lower_transpose(L, b),
                               np.linalg.solve(np.swapaxes(L, 1, 2), b[..., None])[..., 0], rtol=1e-13)


def check_stability(rounds, p=11):
    """``rounds`` rank-one updates of one factor against the exact sum: small integer vectors make
    ``I + sum x x^T`` exact in float64, so any error is the factor's."""
    rng = np.random.default_rng(2)
    xs = rng.integers(-3, 4, size=(rounds, p)).astype(np.float64)
    L = np.eye(p)[None].copy()
    for x in xs:
        cholesky_rank_one_update(L, x[None])
    exact = np.eye(p) + xs.T @ xs
    assert np.array_equal(exact, np.round(exact))  # the sums really are exact
    err = np.abs(L[0] @ L[0].T - exact).max() / np.abs(exact).max()
    assert err < 1e-10, err
    assert np.array_equal(L[0], np.tril(L[0])) and (np.diag(L[0]) > 0).all()


def test_factor_stays_exact_over_many_updates():
    check_stability(20_000)


def test_factor_stays_exact_over_many_updates_numpy_form(numpy_only):
    check_stability(2_000)


@needs_numba
@pytest.mark.slow
def test_factor_stays_exact_over_a_million_updates():
    check_stability(1_000_000)


@pytest.mark.parametrize("shape", [(), (1,), (1, 5), (8,), (3, 7)])
def test_small_gamma_draws_equal_the_generators_array_draws(shape):
    """The scalar-at-a-time draws of small arrays are rng.gamma's and rng.chisquare's, from the same stream."""
    a = np.random.default_rng(0).uniform(0.5, 60.0, size=shape)
    ours, theirs = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(20):
        np.testing.assert_array_equal(posteriors._standard_gamma(ours, a), theirs.gamma(a))
        np.testing.assert_array_equal(2.0 * posteriors._standard_gamma(ours, a / 2.0), theirs.chisquare(a))
    assert ours.random() == theirs.random()  # the streams are at the same place
