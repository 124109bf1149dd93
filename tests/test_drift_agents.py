"""Drift (#15, the agents): forgetting in the posteriors, the bank-prior poGAMBITTS, its drift tests and refresh."""

import numpy as np
import pytest
from scipy import stats

from agents import (
    BankPriorPoGAMBITTS,
    DiscountedStandardTS,
    FoGAMBITTS,
    IncompatibleEnvError,
    LinearTS,
    PoGAMBITTS,
    StandardTS,
    posteriors,
    run_bandit,
)
from agents.drift import BankNormalInverseWishart, bank_prior, predictive_scores
from agents.gambitts import offline_treatment_draws
from agents.posteriors import LinearGaussian, NormalGamma, NormalInverseWishart
from benchmarks.drift_consistency import late_slopes
from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv
from gambit_gym.contexts import ContextSpace
from tests._agents import build, play

KS_ALPHA = 1e-3


@pytest.fixture(params=["compiled", "numpy"])
def kernels(request, monkeypatch):
    """Both forms of the triangular kernels: compiled (numba, when installed) and plain numpy."""
    if request.param == "compiled" and posteriors._compiled is None:
        pytest.skip("numba (the fast extra) is not installed")
    if request.param == "numpy":
        monkeypatch.setattr(posteriors, "_compiled", None)
    return request.param


def weights(n, gamma):
    """gamma^(n - i) for observations i = 1..n."""
    return gamma ** (n - 1 - np.arange(n))


# -- forgetting in the posteriors: closed forms ----------------------------------------------------
@pytest.mark.parametrize("noise_var", [None, 2.0])
def test_discounted_linear_gaussian_equals_weighted_sums(kernels, noise_var):
    rng = np.random.default_rng(0)
    n, p, gamma = 80, 4, 0.95
    X = rng.standard_normal((n, p))
    X[:, -1] = 1.0
    y = 80 + X @ rng.standard_normal(p) + rng.standard_normal(n)
    mu0 = np.array([0.5, -0.2, 0.1, 70.0])
    A = rng.standard_normal((p, p))
    B0 = A @ A.T + np.eye(p)  # a full prior precision: its Cholesky columns are all restored
    post = LinearGaussian(2, mu0, B0, noise_var=noise_var, a0=2.0, b0=1.5, discount=gamma)
    for xi, yi in zip(X, y):
        post.update(np.tile(xi, (2, 1)), np.full(2, yi))
    w = weights(n, gamma)
    Bn = B0 + (w[:, None] * X).T @ X
    bn = B0 @ mu0 + X.T @ (w * y)
    mun = np.linalg.solve(Bn, bn)
    np.testing.assert_allclose(post.chol[0] @ post.chol[0].T, Bn, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(post.b[0], bn, rtol=1e-10)
    np.testing.assert_allclose(post.posterior_mean()[0], mun, rtol=1e-10)
    assert post.yy[0] == pytest.approx(w @ y**2, rel=1e-10) and post.n[0] == pytest.approx(w.sum(), rel=1e-10)
    a_n, b_n = post.noise_params()
    assert a_n[0] == pytest.approx(2.0 + w.sum() / 2, rel=1e-10)
    assert b_n[0] == pytest.approx(1.5 + 0.5 * (w @ y**2 + mu0 @ B0 @ mu0 - mun @ Bn @ mun), rel=1e-8)


def test_discounted_linear_gaussian_same_with_and_without_numba(monkeypatch):
    if posteriors._compiled is None:
        pytest.skip("numba (the fast extra) is not installed")

    def run():
        rng, post = np.random.default_rng(5), LinearGaussian(4, np.zeros(9), np.full(9, 0.1), discount=0.99)
        draws = []
        for _ in range(200):
            post.update(rng.standard_normal((4, 9)), 80 + 3 * rng.standard_normal(4))
            draws.append(post.sample(rng))
        return [*post.state().values(), np.array(draws)]

    fast = run()
    monkeypatch.setattr(posteriors, "_compiled", None)
    for a, b in zip(fast, run(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_discounted_normal_gamma_discounts_every_arm_every_round():
    rng = np.random.default_rng(1)
    gamma, n = 0.9, 40
    arms = rng.integers(3, size=n)
    y = 5 + rng.standard_normal(n)
    ng = NormalGamma(1, 3, m=1.0, nu=2.0, alpha=1.0, beta=1.0, discount=gamma)
    for a, yi in zip(arms, y):
        ng.update(np.array([0]), np.array([a]), np.array([yi]))
    w = weights(n, gamma)  # by round, whichever arm was played
    for arm in range(3):
        wa, ya = w[arms == arm], y[arms == arm]
        mean = wa @ ya / wa.sum()
        assert ng.count[0, arm] == pytest.approx(wa.sum(), rel=1e-10)
        assert ng.mean[0, arm] == pytest.approx(mean, rel=1e-10)
        assert ng.ssq[0, arm] == pytest.approx(wa @ (ya - mean) ** 2, rel=1e-10)


def niw_closed_form(Z, w, mu0, psi0, kappa0, nu0):
    """NIW posterior of data ``Z`` with weights ``w`` (the weighted likelihood; all weights 1 is the usual)."""
    W = w.sum()
    if W == 0:
        return mu0, psi0, kappa0, nu0
    zbar = w @ Z / W
    scatter = (w[:, None] * (Z - zbar)).T @ (Z - zbar)
    kappa = kappa0 + W
    psi = psi0 + scatter + kappa0 * W / kappa * np.outer(zbar - mu0, zbar - mu0)
    return (kappa0 * mu0 + W * zbar) / kappa, psi, kappa, nu0 + W


def test_discounted_niw_equals_weighted_closed_form_also_for_cells_left_alone(kernels):
    rng = np.random.default_rng(2)
    d, n, gamma = 3, 60, 0.93
    mu0, psi0, kappa0, nu0 = np.array([0.2, 0.0, -0.1]), 2.0 * np.eye(d), 1.5, d + 1.0
    niw = NormalInverseWishart(2, 3, d, mu0=mu0, psi0=psi0, kappa0=kappa0, nu0=nu0, discount=gamma)
    cells = rng.integers(2, size=(n, 2))  # cell 2 is never played: it stays at the prior
    cells[-10:, 0] = 0  # cell 1 of row 0 is left alone for its last 10 rounds: its data decay meanwhile
    Z = rng.standard_normal((n, 2, d)) + 1.0
    for t in range(n):
        niw.update(np.arange(2), cells[t], Z[t])
    w = weights(n, gamma)
    for row in range(2):
        mean, chol, kappa, nu = niw.current(row, np.arange(3))
        for cell in range(3):
            played = cells[:, row] == cell
            m, psi, k, v = niw_closed_form(Z[played, row], w[played], mu0, psi0, kappa0, nu0)
            np.testing.assert_allclose(mean[cell], m, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(chol[cell] @ chol[cell].T, psi, rtol=1e-10, atol=1e-12)
            assert kappa[cell] == pytest.approx(k, rel=1e-10) and nu[cell] == pytest.approx(v, rel=1e-10)


def test_discounted_niw_mean_draws_follow_the_discounted_posterior():
    """Draws made from the parts of Psi' (no factor of it) against the multivariate t of :meth:`current`."""
    rng = np.random.default_rng(12)
    R, d = 20_000, 2
    niw = NormalInverseWishart(R, 2, d, mu0=np.array([1.0, -1.0]), psi0=np.diag([1.0, 3.0]), kappa0=2.0, nu0=4.0,
                               discount=0.8)
    rows = np.arange(R)
    for z in rng.standard_normal((6, d)) * 2.0 + 3.0:  # cell 0 learns, then is left alone for 3 rounds
        niw.update(rows, np.zeros(R, dtype=int), np.broadcast_to(z, (R, d)))
    for z in rng.standard_normal((3, d)):
        niw.update(rows, np.ones(R, dtype=int), np.broadcast_to(z, (R, d)))
    ours = niw.sample_mean(np.random.default_rng(13), rows, np.zeros(R, dtype=int))
    m, L, kappa, nu = (v[0] for v in niw.current(np.array([0]), np.array([0])))
    ref_rng = np.random.default_rng(14)
    chi2 = ref_rng.chisquare(nu - d + 1, size=R)
    ref = m + ref_rng.standard_normal((R, d)) @ L.T / np.sqrt(kappa * chi2)[:, None]
    for j in range(d):
        assert stats.ks_2samp(ours[:, j], ref[:, j]).pvalue > KS_ALPHA


def test_discounted_niw_state_round_trip_and_discount_one_state_unchanged():
    niw = NormalInverseWishart(2, 3, 2, discount=0.9)
    rng = np.random.default_rng(3)
    for _ in range(5):
        niw.update(np.arange(2), rng.integers(3, size=2), rng.standard_normal((2, 2)))
    state = niw.state()
    assert state["rounds"] == 5 and state["last"].shape == (2, 3)
    other = NormalInverseWishart(2, 3, 2, discount=0.9)
    other.load_state(state)
    np.testing.assert_array_equal(other.sample_mean(np.random.default_rng(0)),
                                  niw.sample_mean(np.random.default_rng(0)))
    # discount = 1 keeps exactly the old state (old state files load)
    assert set(NormalInverseWishart(2, 3, 2).state()) == {"mean", "chol_psi", "kappa", "nu"}
    assert set(LinearGaussian(2, np.zeros(2), np.eye(2), discount=1.0).state()) == {"chol", "b", "yy", "n"}


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, float("nan"), "0.9", True])
def test_discount_outside_0_1_is_rejected(bad):
    error = TypeError if isinstance(bad, (str, bool)) else ValueError
    for make in (lambda: NormalGamma(1, 1, 0.0, 1.0, 1.0, 1.0, discount=bad),
                 lambda: LinearGaussian(1, np.zeros(2), np.eye(2), discount=bad),
                 lambda: NormalInverseWishart(1, 1, 2, discount=bad)):
        with pytest.raises(error, match="discount"):
            make()
    with pytest.raises(error, match="discount"):
        FoGAMBITTS.from_env(GeneratorMediatedVectorEnv(num_envs=2), seed=0, discount=bad)


# -- forgetting in the agents ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kwargs", [(StandardTS, {}), (StandardTS, {"contextual": True}), (LinearTS, {}),
                                         (PoGAMBITTS, {"n_offline": 30}), (FoGAMBITTS, {})])
def test_discount_one_plays_exactly_as_the_agent_without_it(cls, kwargs):
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    plain, explicit = build((cls, kwargs), venv, 4), build((cls, {**kwargs, "discount": 1.0}), venv, 4)
    np.testing.assert_array_equal(play(plain, venv, 9, 120), play(explicit, venv, 9, 120))
    assert all(np.array_equal(v, explicit._state()[k]) for k, v in plain._state().items())
    assert set(plain._state()) == set(explicit._state())


@pytest.mark.parametrize("cls, kwargs", [(FoGAMBITTS, {"discount": 0.99}),
                                         (PoGAMBITTS, {"n_offline": 20, "discount": 0.9}),
                                         (DiscountedStandardTS, {"contextual": True})])
def test_discounted_agents_save_and_restore(tmp_path, cls, kwargs):
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    agent = build((cls, kwargs), venv, 3)
    play(agent, venv, 1, 50)
    twin = build((cls, kwargs), venv, 8)
    twin.load(agent.save(tmp_path / "agent.state"))
    np.testing.assert_array_equal(play(agent, venv, 2, 40), play(twin, venv, 2, 40))
    if cls is FoGAMBITTS:
        assert agent._state()["treatment.rounds"] == 90 and "treatment.last" in agent._state()


def test_discounted_standard_ts_is_standard_ts_with_discount():
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    assert DiscountedStandardTS.from_env(venv, seed=0).posterior.discount == 0.99
    a = play(DiscountedStandardTS.from_env(venv, seed=1, discount=0.9), venv, 2, 80)
    b = play(StandardTS.from_env(venv, seed=1, discount=0.9), venv, 2, 80)
    np.testing.assert_array_equal(a, b)
    c = play(DiscountedStandardTS.from_env(venv, seed=1, discount=1.0), venv, 2, 80)
    np.testing.assert_array_equal(c, play(StandardTS.from_env(venv, seed=1), venv, 2, 80))


def test_discounted_standard_ts_recovers_after_the_best_arm_changes():
    """Two arms swap means at round 300: discounting forgets the old winner; plain TS keeps playing it."""
    R, T, change = 200, 600, 300
    rng = np.random.default_rng(6)
    space = ContextSpace()
    obs = np.broadcast_to(space.features[0], (R, space.feature_dim))
    late_right = {}
    for name, agent in (("plain", StandardTS(2, space.feature_dim, n_envs=R, seed=1)),
                        ("discounted", DiscountedStandardTS(2, space.feature_dim, n_envs=R, seed=1, discount=0.95))):
        right = []
        for t in range(T):
            a = agent.act(obs)
            best = 0 if t < change else 1
            agent.update(obs, a, np.where(a == best, 1.0, 0.0) + 0.5 * rng.standard_normal(R), {})
            if t >= T - 100:
                right.append(a == best)
        late_right[name] = np.mean(right)
    assert late_right["discounted"] > 0.8 > late_right["plain"]


# -- the bank-prior agent ------------------------------------------------------------------------------------
def test_bank_prior_is_centred_on_the_bank_poGAMBITTS_draws():
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    po = PoGAMBITTS.from_env(venv, seed=4, n_offline=15)
    hybrid = BankPriorPoGAMBITTS.from_env(venv, seed=4, n_offline=15)
    C, K, d = venv.contexts.n_contexts, 5, venv.embedding_dim
    np.testing.assert_array_equal(hybrid.treatment.mean, po.treatment_means.reshape(2, C * K, d))
    assert np.all(hybrid.treatment.kappa == 15.0) and np.all(hybrid.treatment.nu == 15.0 + d + 1)
    # E[Sigma] under the prior, Psi0 / (nu0 - d - 1), is the bank covariance (ddof 1, up to the tiny ridge)
    rng = np.random.default_rng(4)
    c, a, draws = next(iter(offline_treatment_draws(venv.sample_treatments, 2, C, K, 15, d, rng)))
    L = hybrid.treatment.prior_chols[1, 0]
    np.testing.assert_allclose(L @ L.T / 15.0, np.cov(draws[1].T), rtol=1e-7)


def test_bank_prior_update_equals_the_niw_closed_form_with_the_bank_as_prior():
    rng = np.random.default_rng(5)
    d, n = 3, 25
    bank = rng.standard_normal((2, 4, 10, d)) + 2.0
    mu0, L0 = bank_prior(bank, bank_weight=7.0)
    niw = BankNormalInverseWishart(mu0, L0, kappa0=7.0, nu0=7.0 + d + 1)
    Z = rng.standard_normal((n, d))
    for z in Z:
        niw.update(np.array([1]), np.array([3]), z[None])
    m, psi, kappa, nu = niw_closed_form(Z, np.ones(n), mu0[1, 3], L0[1, 3] @ L0[1, 3].T, 7.0, 7.0 + d + 1)
    np.testing.assert_allclose(niw.mean[1, 3], m, rtol=1e-10)
    np.testing.assert_allclose(niw.psi()[1, 3], psi, rtol=1e-10)
    assert niw.kappa[1, 3] == kappa and niw.nu[1, 3] == nu
    np.testing.assert_array_equal(niw.mean[0], mu0[0])  # other cells untouched


def test_discounted_bank_prior_decays_towards_each_cells_own_bank():
    rng = np.random.default_rng(6)
    d, gamma, n = 2, 0.9, 30
    mu0, L0 = bank_prior(rng.standard_normal((1, 2, 8, d)) * [1.0, 3.0], bank_weight=4.0)
    niw = BankNormalInverseWishart(mu0, L0, kappa0=4.0, nu0=4.0 + d + 1, discount=gamma)
    cells = rng.integers(2, size=n)
    Z = rng.standard_normal((n, d)) + 5.0
    for t in range(n):
        niw.update(np.array([0]), cells[t:t + 1], Z[t][None])
    mean, chol, kappa, nu = niw.current(0, np.arange(2))
    w = weights(n, gamma)
    for cell in range(2):
        played = cells == cell
        m, psi, k, v = niw_closed_form(Z[played], w[played], mu0[0, cell], L0[0, cell] @ L0[0, cell].T,
                                       4.0, 4.0 + d + 1)
        np.testing.assert_allclose(mean[cell], m, rtol=1e-10)
        np.testing.assert_allclose(chol[cell] @ chol[cell].T, psi, rtol=1e-10)
        assert kappa[cell] == pytest.approx(k, rel=1e-10) and nu[cell] == pytest.approx(v, rel=1e-10)


def test_predictive_scores_are_standard_normal_under_the_model():
    """A generator drawn from the prior, a few treatments learned, then one more: its score is exactly N(0, 1)
    (the posterior predictive is calibrated over the prior); a shifted treatment scores high."""
    rng = np.random.default_rng(7)
    R, d, n = 4000, 3, 6
    mu0, psi0, kappa0, nu0 = np.array([1.0, -2.0, 0.5]), np.diag([1.0, 2.0, 0.5]), 2.0, d + 2.0
    sigma = stats.invwishart(df=nu0, scale=psi0).rvs(R, random_state=rng)
    chol = np.linalg.cholesky(sigma)
    mean = mu0 + np.einsum("rij,rj->ri", chol, rng.standard_normal((R, d))) / np.sqrt(kappa0)
    niw = NormalInverseWishart(R, 1, d, mu0=mu0, psi0=psi0, kappa0=kappa0, nu0=nu0)
    rows, cell = np.arange(R), np.zeros(R, dtype=int)

    def draw():
        return mean + np.einsum("rij,rj->ri", chol, rng.standard_normal((R, d)))

    for _ in range(n):
        niw.update(rows, cell, draw())
    u = predictive_scores(draw(), *niw.current(rows, cell))
    assert stats.kstest(u, stats.norm.cdf).pvalue > KS_ALPHA
    shifted = predictive_scores(draw() + 3.0 * np.sqrt(np.diagonal(sigma, axis1=1, axis2=2)),
                                *niw.current(rows, cell))
    assert np.median(shifted) > 2.0


@pytest.mark.parametrize("kwargs", [{}, {"discount": 0.99}, {"detector": "cusum", "threshold": 2.0},
                                    {"detector": "page-hinkley", "threshold": 2.0, "discount": 0.95}])
def test_bank_prior_state_round_trip_through_a_file(tmp_path, kwargs):
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    kwargs = {"n_offline": 10, **kwargs}
    if "detector" in kwargs:
        kwargs["simulator"] = ShiftingGenerator(venv.embedding_dim, 5)
    agent = build((BankPriorPoGAMBITTS, kwargs), venv, 3)
    play(agent, venv, 1, 60)
    path = agent.save(tmp_path / "agent.state")
    twin = build((BankPriorPoGAMBITTS, kwargs), venv, 99)
    twin.load(path)
    assert {k: v.shape if isinstance(v, np.ndarray) else v for k, v in agent._state().items()} == \
        {k: v.shape if isinstance(v, np.ndarray) else v for k, v in twin._state().items()}
    np.testing.assert_array_equal(play(agent, venv, 2, 40), play(twin, venv, 2, 40))
    for name, value in agent.diagnostics().items():
        assert value.shape == (3,) and np.array_equal(value, twin.diagnostics()[name]), name
    if "detector" in kwargs:  # a threshold of 2 fires: the refresh counts and its draws are part of the state
        assert agent.diagnostics()["refreshes"].sum() > 0


def test_bank_prior_reset_forgets_rounds_and_keeps_the_bank():
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = BankPriorPoGAMBITTS.from_env(venv, seed=0, n_offline=10)
    fresh = agent._state()
    play(agent, venv, 0, 30)
    agent.reset()
    assert all(np.array_equal(v, agent._state()[k]) for k, v in fresh.items())


@pytest.mark.parametrize("kwargs, match", [
    ({"n_offline": 1}, "n_offline"), ({"bank_weight": 0.0}, "bank_weight"), ({"detector": "adwin"}, "detector"),
    ({"threshold": 0.0}, "threshold"), ({"allowance": -1.0}, "allowance"), ({"refresh_draws": 1}, "refresh_draws"),
    ({"query_budget": -1}, "query_budget"), ({"discount": 0.0}, "discount"),
    ({"refresh_scope": "all"}, "refresh_scope"),
])
def test_bank_prior_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BankPriorPoGAMBITTS.from_env(GeneratorMediatedVectorEnv(num_envs=2), seed=0, **kwargs)


def test_a_detector_needs_access_to_the_current_generator():
    venv = GeneratorMediatedVectorEnv(num_envs=2)

    def deployment_only(action, context, n, rng):
        return venv.sample_treatments(action, context, n, rng)

    with pytest.raises(IncompatibleEnvError, match="current=True"):
        BankPriorPoGAMBITTS.from_env(venv, seed=0, detector="cusum", simulator=deployment_only)
    with pytest.raises(IncompatibleEnvError, match="simulation access"):
        BankPriorPoGAMBITTS(5, 7, contexts=venv.contexts, embedding_dim=3, n_envs=2)


# -- drift detection and refresh ----------------------------------------------------------------------------
class ShiftingGenerator:
    """Gaussian treatments N(means[a] + 0.3 c, I) that move by ``shift`` in every cell once ``shifted`` is set;
    the signature of the environment's ``sample_treatments`` with current access. Records current queries."""

    def __init__(self, d, n_actions, shift=0.0):
        self.means = np.linspace(-1.0, 1.0, n_actions)[:, None] * np.ones(d)
        self.shift, self.shifted, self.queries = shift, False, []

    def mean(self, action, context, current=True):
        return self.means[action] + 0.3 * context + (self.shift if current and self.shifted else 0.0)

    def __call__(self, action, context, n, rng=None, current=False, replication=None):
        if current:
            self.queries.append((action, context, n, replication))
        rng = np.random.default_rng() if rng is None else rng
        return self.mean(action, context, current) + rng.standard_normal((n, self.means.shape[1]))


def drive_one_cell(agent, generator, rounds, rng):
    """``rounds`` rounds of every row playing action 0 in context 0; treatments from the generator as it is now.
    Returns, per round, which rows' tests fired."""
    space = agent.contexts
    obs = np.broadcast_to(space.features[0], (agent.n_rows, space.feature_dim))
    a = np.zeros(agent.n_rows, dtype=np.int64)
    fired = []
    for _ in range(rounds):
        before = agent.alarms.copy()
        z = generator.mean(0, 0) + rng.standard_normal((agent.n_rows, agent.embedding_dim))
        agent.update(obs, a, z.sum(axis=1), {"treatment_embedding": z})
        fired.append(agent.alarms > before)
    return np.array(fired)


def drift_agent(generator, R, detector, **kwargs):
    return BankPriorPoGAMBITTS(n_actions=5, obs_dim=7, contexts=ContextSpace(), embedding_dim=2, n_envs=R, seed=1,
                               simulator=generator, n_offline=50, detector=detector, **kwargs)


@pytest.mark.parametrize("detector, shift, median_delay, max_delay", [
    ("cusum", 1.0, 30, 100), ("cusum", 2.0, 10, 20), ("page-hinkley", 3.0, 8, 15)])
def test_detector_fires_soon_after_an_abrupt_shift_and_refreshes_from_the_current_generator(
        detector, shift, median_delay, max_delay):
    """The mean of every cell moves by ``shift`` sd along one axis after 300 treatments of each row's cell."""
    R = 50
    generator = ShiftingGenerator(2, 5, shift=np.array([shift, 0.0]))
    agent = drift_agent(generator, R, detector)
    rng = np.random.default_rng(8)
    pre = drive_one_cell(agent, generator, 300, rng)
    assert pre.sum() == 0  # no false alarm in 300 treatments of each row's cell
    generator.shifted = True
    post = drive_one_cell(agent, generator, 120, rng)
    assert post.any(axis=0).all(), "every row detects the shift"
    delay = post.argmax(axis=0) + 1  # treatments of the changed cell until the first alarm
    print(f"\n{detector}, shift {shift} sd: delay median {np.median(delay)}, max {delay.max()}")
    assert np.median(delay) <= median_delay and delay.max() <= max_delay, delay
    diag = agent.diagnostics()
    np.testing.assert_array_equal(diag["refreshes"], diag["alarms"])
    np.testing.assert_array_equal(diag["queries"], 50 * diag["refreshes"])
    assert all(q[:3] == (0, 0, 50) for q in generator.queries)  # the fired cell, refresh_draws, now
    assert sorted(q[3] for q in generator.queries) == np.repeat(np.arange(R), diag["refreshes"]).tolist()
    # the refreshed cell is centred on the shifted generator, not the deployment one
    cell = 0  # context 0, action 0
    assert np.all(np.abs(agent.treatment.prior_means[:, cell] - generator.mean(0, 0)) < 0.6)


def test_without_budget_an_alarm_only_resets_the_test():
    generator = ShiftingGenerator(2, 5, shift=np.array([3.0, 0.0]))
    agent = drift_agent(generator, 10, "cusum", query_budget=49)  # less than one refresh of 50 draws
    rng = np.random.default_rng(9)
    drive_one_cell(agent, generator, 50, rng)
    generator.shifted = True
    drive_one_cell(agent, generator, 40, rng)
    diag = agent.diagnostics()
    assert np.all(diag["alarms"] > 0) and np.all(diag["refreshes"] == 0) and np.all(diag["queries"] == 0)
    assert generator.queries == []


@pytest.mark.parametrize("scope, budget, per_alarm", [("context", None, 5), ("replication", None, 60),
                                                      ("replication", 7 * 50, 7)])
def test_refresh_scope_refreshes_the_context_or_the_replication_in_order_while_the_budget_lasts(
        scope, budget, per_alarm):
    R = 4
    generator = ShiftingGenerator(2, 5, shift=np.array([3.0, 0.0]))
    agent = drift_agent(generator, R, "cusum", refresh_scope=scope, query_budget=budget)
    rng = np.random.default_rng(10)
    drive_one_cell(agent, generator, 50, rng)
    generator.shifted = True
    post = drive_one_cell(agent, generator, 30, rng)
    first = post.argmax(axis=0)
    assert post.any(axis=0).all()
    diag = agent.diagnostics()
    assert np.all(diag["refreshes"] >= per_alarm) and np.all(diag["queries"] == 50 * diag["refreshes"])
    if budget is not None:
        assert np.all(diag["queries"] == budget)
    rows_first = [q for q in generator.queries if q[3] == int(np.argmin(first))][:per_alarm]
    want = [(0, 0)] + [(b, 0) for b in range(1, 5)] + [(b, c) for c in range(1, 12) for b in range(5)]
    assert [q[:2] for q in rows_first] == want[:per_alarm]  # (action, context): the fired cell, its context, the rest
    # every refreshed cell is centred on the current generator
    refreshed = np.array([c * 5 + b for b, c in want[:per_alarm]])
    expected = np.array([generator.mean(b, c) for b, c in want[:per_alarm]])
    assert np.all(np.abs(agent.treatment.prior_means[:, refreshed] - expected) < 0.6)


def test_on_a_drifting_environment_the_agent_refreshes_through_the_environments_current_access():
    """The environment's own drift (abrupt, at round 300) and its count of current-generator draws."""
    import gymnasium as gym

    venv = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", horizon=700,
                        drift={"kind": "abrupt", "at": 300, "magnitude": 3.0})
    agent = BankPriorPoGAMBITTS.from_env(venv, seed=0, n_offline=50, detector="cusum")
    obs, _ = venv.reset(seed=1)
    for t in range(700):
        a = agent.act(obs)
        next_obs, r, _, _, info = venv.step(a)
        agent.update(obs, a, r, info)
        obs = next_obs
        if t == 299:
            assert agent.diagnostics()["alarms"].sum() == 0  # before the drift
    diag = agent.diagnostics()
    assert np.all(diag["refreshes"] > 0)
    np.testing.assert_array_equal(diag["queries"], venv.unwrapped.current_queries)


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["cusum", "page-hinkley"])
def test_few_false_alarms_without_drift_on_the_synthetic_env(detector):
    """The default threshold on the default synthetic environment (no drift): 20 replications x 3,000 rounds."""
    venv = GeneratorMediatedVectorEnv(num_envs=20)

    def simulator(action, context, n, rng=None, current=False, replication=None):
        return venv.sample_treatments(action, context, n, rng)  # no drift: the generator now is the deployed one

    agent = BankPriorPoGAMBITTS.from_env(venv, seed=2, n_offline=20, detector=detector, simulator=simulator)
    play(agent, venv, 5, 3000)
    alarms = agent.diagnostics()["alarms"]
    print(f"\n{detector}: {alarms.sum()} alarms in {20 * 3000} treatments")
    assert alarms.sum() <= 3


@pytest.mark.slow
def test_bank_prior_late_regret_slope_below_pogambitts_with_a_small_bank():
    """Default synthetic env, n_offline = 20, T = 5,000, 20 replications: poGAMBITTS acts on the bank's
    sampling error for ever; the bank-prior agent learns the treatment means, so its second-half slope is lower."""
    res = run_bandit(ENV_ID, {"po": (PoGAMBITTS, {"n_offline": 20}),
                              "hybrid": (BankPriorPoGAMBITTS, {"n_offline": 20})},
                     horizon=5000, replications=20, seed=15, progress=False)
    po, hybrid = late_slopes(res.cumulative_regret["po"]), late_slopes(res.cumulative_regret["hybrid"])
    diff = po - hybrid  # paired: the same environment seeds
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    print(f"\nlate slope: po {po.mean():.4f}, bank-prior {hybrid.mean():.4f}, difference {diff.mean():.4f} +- {se:.4f}")
    assert diff.mean() > 2 * se and hybrid.mean() < 0.8 * po.mean()
