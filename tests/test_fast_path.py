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


# -- the per-round kernels: the same bits as their numpy form, and the numpy form where they do not apply --------
def run_normal_gamma(seed, n_rows, n_cells, discount):
    """300 rounds of agent-style draws and updates; every draw and the final state."""
    rng = np.random.default_rng(seed)
    post = posteriors.NormalGamma(n_rows, n_cells, m=1.0, nu=0.5, alpha=2.0, beta=3.0, discount=discount)
    rows, draws = np.arange(n_rows), []
    for _ in range(300):
        cells = rng.integers(0, n_cells, size=(n_rows, 5))
        draws.append(post.sample(rng, rows[:, None], cells))
        post.update(rows, rng.integers(0, n_cells, size=n_rows), 80 + 30 * rng.standard_normal(n_rows))
    return [*post.state().values(), np.array(draws), post.posterior_mean(), rng.random(3)]


@needs_numba
@pytest.mark.parametrize("n_rows", [1, 3])
@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_normal_gamma_equal_with_and_without_numba(n_rows, discount, monkeypatch):
    fast = run_normal_gamma(0, n_rows, 7, discount)
    monkeypatch.setattr(posteriors, "_compiled", None)
    for a, b in zip(fast, run_normal_gamma(0, n_rows, 7, discount), strict=True):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def run_linear(seed, noise_var, discount):
    rng = np.random.default_rng(seed)
    post = LinearGaussian(4, np.zeros(6), np.full(6, 0.1), noise_var=noise_var, discount=discount)
    draws = []
    for _ in range(200):
        draws.append(post.sample(rng))
        post.update(rng.standard_normal((4, 6)), 80 + 3 * rng.standard_normal(4))
    return [*post.state().values(), np.array(draws), post.posterior_mean(), *post.noise_params(), rng.random(3)]


@needs_numba
@pytest.mark.parametrize("noise_var", [None, 2.0])
@pytest.mark.parametrize("discount", [1.0, 0.95])
def test_linear_model_kernels_equal_numpy_form(noise_var, discount, monkeypatch):
    fast = run_linear(1, noise_var, discount)
    monkeypatch.setattr(posteriors, "_compiled", None)
    for a, b in zip(fast, run_linear(1, noise_var, discount), strict=True):
        np.testing.assert_array_equal(a, b)


@needs_numba
def test_noise_params_clamp_and_nan_as_numpy(monkeypatch):
    """b_n's max(., 0) as np.maximum: negative residual sums give b0, NaN passes through."""
    post = LinearGaussian(3, np.zeros(2), np.full(2, 0.1))
    post.yy[:] = [-5.0, 4.0, np.nan]
    fast = post.noise_params()
    monkeypatch.setattr(posteriors, "_compiled", None)
    for a, b in zip(fast, post.noise_params(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert fast[1][0] == post.b0 and np.isnan(fast[1][2])


@needs_numba
def test_normal_gamma_arguments_the_kernels_do_not_take_get_numpys_semantics(monkeypatch):
    """Repeated rows (numpy discounts such a row once), negative and out-of-range indices."""
    def run():
        post = posteriors.NormalGamma(3, 4, m=0.0, nu=1.0, alpha=1.0, beta=1.0, discount=0.9)
        post.update(np.array([0, 0, 2]), np.array([1, 3, 0]), np.array([1.0, 2.0, 3.0]))
        post.update(np.array([-1, 1]), np.array([-1, 2]), np.array([4.0, 5.0]))
        draw = post.sample(np.random.default_rng(0), np.array([[-1], [0]]), np.array([[0, -1], [1, 2]]))
        with pytest.raises(IndexError):
            post.update(np.array([0]), np.array([4]), np.array([1.0]))
        with pytest.raises(IndexError):
            post.sample(np.random.default_rng(0), np.array([[0]]), np.array([[0, 4]]))
        return [*post.state().values(), draw]

    fast = run()
    monkeypatch.setattr(posteriors, "_compiled", None)
    for a, b in zip(fast, run(), strict=True):
        np.testing.assert_array_equal(a, b)
