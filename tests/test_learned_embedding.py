"""LearnedEmbeddingGAMBITTS: the learned projection, its exact projected posterior, save/restore, bad configs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import gambit_gym  # noqa: F401  (registers the environment)
from agents.base import IncompatibleEnvError
from agents.learned_embedding import LearnedEmbeddingGAMBITTS, principal_angles, reward_direction

SPARSE = dict(variant="synthetic", embedding_dim=50, active_dims=3, reward_noise_sd=1.0, effect_size=3.0)


def _vec(n_envs=8, **kwargs):
    return gym.make_vec("GeneratorMediated-v0", num_envs=n_envs, vectorization_mode="vector_entry_point",
                        **{**SPARSE, **kwargs})


def _play(agent, venv, rounds, obs):
    for _ in range(rounds):
        a = agent.act(obs)
        nxt, r, _, _, info = venv.step(a)
        agent.update(obs, a, r, info)
        obs = nxt
    return obs


def test_principal_angles_closed_forms():
    e = np.eye(4)
    assert np.allclose(principal_angles(e[:, :2], e[:, 0]), [0.0])
    assert np.allclose(principal_angles(e[:, :2], e[:, 2:]), [np.pi / 2, np.pi / 2])
    tilted = np.array([1.0, 0.0, 1.0, 0.0])
    assert np.allclose(principal_angles(e[:, :1], tilted), [np.pi / 4])
    assert principal_angles(np.stack([e[:, :2], e[:, 2:]]), e[:, 0]).shape == (2, 1)
    with pytest.raises(ValueError, match="truth: expected 4 rows"):
        principal_angles(e[:, :2], np.ones(3))


@pytest.mark.parametrize(("estimator", "final"), [(dict(estimator="full"), 0.15),
                                                  (dict(estimator="pc", n_components=50), 0.35)])
def test_learned_subspace_aligns_with_the_true_reward_direction_as_data_grows(estimator, final):
    """Reward linear in 3 of 50 coordinates: the reward-relevant subspace is span(coefficients). (The synthetic
    bank is isotropic, so the "pc" estimator needs all 50 components: its leading ones are random mixtures; its
    first direction is a posterior draw, so it ends farther from the truth than the "full" posterior mean.)"""
    venv = _vec()
    truth = venv.unwrapped.scenario.outcome.coef
    assert np.count_nonzero(truth) == 3
    agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=3, n_offline=50, seed=0, **estimator)
    obs, _ = venv.reset(seed=1)
    angles = [principal_angles(agent.basis, truth).max(axis=1).mean()]
    for rounds in (40, 160, 600):
        obs = _play(agent, venv, rounds, obs)
        angles.append(principal_angles(agent.basis, truth).max(axis=1).mean())
    assert angles[0] > 1.0  # before data: the bank's contrasts, far from the truth
    assert all(b < a for a, b in zip(angles, angles[1:])), angles
    assert angles[-1] < final, angles


def test_projected_posterior_is_the_exact_projection_of_the_full_statistics():
    """Between refits the low-dimensional posterior is updated by rank-one steps; it must equal the projected
    prior + data: T^T (G + Lambda) T and T^T X^T y with T = diag(P, I)."""
    venv = _vec(n_envs=3)
    agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=0, refit_every=30, first_refit=30,
                                              estimator="full")
    obs, _ = venv.reset(seed=0)
    _play(agent, venv, 47, obs)  # refit at 30, then 17 rank-one updates
    D, k, other = agent.embedding_dim, agent.k, agent._n_other
    T = np.zeros((3, D + other, k + other))
    T[:, :D, :k] = agent.basis
    T[:, D:, k:] = np.eye(other)
    prior = agent._prior_diagonal()
    full = agent._state()["gram"] + prior[:, :, None] * np.eye(D + other)  # the state holds every round
    want = np.swapaxes(T, 1, 2) @ full @ T
    got = agent.model.chol @ np.swapaxes(agent.model.chol, 1, 2)
    assert np.allclose(got, want, rtol=1e-9, atol=1e-9)
    assert np.allclose(agent.model.b, np.einsum("rpq,rp->rq", T, agent.xty))
    assert np.allclose(agent.model.n, 47) and np.allclose(agent.count, 47)
    assert np.allclose(np.swapaxes(agent.basis, 1, 2) @ agent.basis, np.eye(k))


def test_full_space_baseline_is_rank_none():
    venv = _vec(n_envs=2)
    agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=None, n_offline=20, seed=0)
    assert agent.k == 50 and np.allclose(agent.basis, np.eye(50))
    obs, _ = venv.reset(seed=0)
    _play(agent, venv, 5, obs)
    assert agent.model.chol.shape == (2, 50 + 8, 50 + 8)


@pytest.mark.parametrize("estimator", ["pc", "full"])
def test_save_restore_continues_bit_for_bit(tmp_path, estimator):
    venv = _vec(n_envs=4)
    agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=3, estimator=estimator)
    obs, _ = venv.reset(seed=2)
    obs = _play(agent, venv, 25, obs)
    path = agent.save(tmp_path / "learned.state")
    twin = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=99, estimator=estimator)
    twin.load(path)
    for name, value in agent._state().items():
        assert np.array_equal(value, twin._state()[name]), name
    for _ in range(20):  # both see the same rounds (a refit falls at 40) and must act alike
        a, b = agent.act(obs), twin.act(obs)
        assert np.array_equal(a, b)
        nxt, r, _, _, info = venv.step(a)
        agent.update(obs, a, r, info)
        twin.update(obs, a, r, info)
        obs = nxt
    assert np.array_equal(agent.basis, twin.basis)
    other = LearnedEmbeddingGAMBITTS.from_env(venv, rank=3, n_offline=20, seed=3, estimator=estimator)
    with pytest.raises(ValueError):
        other.load(path)


def test_single_env_and_reset():
    env = gym.make("GeneratorMediated-v0", **SPARSE)
    agent = LearnedEmbeddingGAMBITTS.from_env(env, rank=2, n_offline=20, seed=0)
    obs, _ = env.reset(seed=0)
    a = agent.act(obs)
    assert isinstance(a, int)
    _, r, _, _, info = env.step(a)
    agent.update(obs, a, r, info)
    assert agent.subspace().shape == (50, 2)
    agent.reset()
    assert agent.count[0] == 0 and agent.rounds == 0


def test_bad_configurations_are_named():
    small = gym.make("GeneratorMediated-v0")  # d = 3: no high-dimensional embedding
    with pytest.raises(ValueError, match=r"rank: expected 1 <= rank < the embedding's dimension 3, got 3.*'full'"):
        LearnedEmbeddingGAMBITTS.from_env(small, rank=3, n_offline=5)
    big = gym.make("GeneratorMediated-v0", **SPARSE)
    with pytest.raises(ValueError, match="rank: expected 1 <= rank < the embedding's dimension 50, got 60"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=60, n_offline=5)
    with pytest.raises(ValueError, match="rank"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=0, n_offline=5)
    with pytest.raises(ValueError, match="refit_every"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=2, n_offline=5, refit_every=0)
    with pytest.raises(ValueError, match=r"estimator: expected one of \['pc', 'full'\], got 'sir'"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=2, n_offline=5, estimator="sir")
    with pytest.raises(ValueError, match=r"n_components: expected rank \(4\) <= n_components <= the embedding's "
                                         r"dimension 50, got 3"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=4, n_offline=5, n_components=3)
    with pytest.raises(ValueError, match="n_components: expected rank"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=4, n_offline=5, n_components=51)
    with pytest.raises(ValueError, match="pc_prior_power"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=2, n_offline=5, pc_prior_power=-1.0)
    with pytest.raises(ValueError, match="pc_draws"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=2, n_offline=5, pc_draws=1)
    with pytest.raises(ValueError, match=r"true_direction: expected a finite non-zero \(50,\)"):
        LearnedEmbeddingGAMBITTS.from_env(big, rank=2, n_offline=5, true_direction=np.ones(49))
    with pytest.raises(IncompatibleEnvError, match="simulation access"):
        LearnedEmbeddingGAMBITTS(5, 7, embedding_dim=50, contexts=big.unwrapped.contexts, rank=2)
    with pytest.raises(IncompatibleEnvError, match="embedding_dim"):
        LearnedEmbeddingGAMBITTS(5, 7, contexts=big.unwrapped.contexts, rank=2, treatment_means=np.zeros((12, 5, 3)))


def test_active_dims_option():
    env = gym.make("GeneratorMediated-v0", embedding_dim=10, active_dims=2)
    coef = env.unwrapped.scenario.outcome.coef
    assert np.count_nonzero(coef) == 2 and np.isclose(np.linalg.norm(coef), 1.0)
    dense = gym.make("GeneratorMediated-v0", embedding_dim=10).unwrapped.scenario.outcome.coef
    assert np.allclose(coef[:2] / np.linalg.norm(coef[:2]), dense[:2] / np.linalg.norm(dense[:2]))
    with pytest.raises(ValueError, match="active_dims"):
        gym.make("GeneratorMediated-v0", embedding_dim=10, active_dims=11)
    with pytest.raises(ValueError, match="active_dims: only used when the coefficients are drawn"):
        gym.make("GeneratorMediated-v0", embedding_dim=2, active_dims=1, coefficients=[1.0, 0.0])
    with pytest.raises(ValueError, match="active_dims: only used with outcome='linear'"):
        gym.make("GeneratorMediated-v0", outcome="mlp", active_dims=1)


def _history(agent, venv, rounds, obs):
    """Play ``rounds`` rounds and return what was seen: z (R, n, D), the context one-hots (R, n, C) and y (R, n)."""
    zs, xs, ys = [], [], []
    for _ in range(rounds):
        a = agent.act(obs)
        nxt, r, _, _, info = venv.step(a)
        agent.update(obs, a, r, info)
        zs.append(info["treatment_embedding"])
        xs.append(obs)
        ys.append(r)
        obs = nxt
    return np.stack(zs, axis=1), np.stack(xs, axis=1), np.stack(ys, axis=1)


def test_principal_component_posterior_equals_a_direct_ridge_solution():
    """The "pc" regression, updated round by round, equals the closed form on the recorded history:
    u = V^T (z - centre), precision diag(prior) + Phi^T Phi, mean = precision^{-1} Phi^T y; the projected
    model equals T^T (that precision) T with T = diag(B, I); the components are the bank covariance's
    leading eigenvectors; and the prior puts variance 1/prior_precision (times v) on the embedding's part."""
    venv = _vec(n_envs=3)
    agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_components=12, n_offline=40, pc_draws=40,
                                              prior_precision=2.0, pc_prior_power=1.5, seed=0,
                                              refit_every=40, first_refit=40)
    obs, _ = venv.reset(seed=4)
    z, x, y = _history(agent, venv, 57, obs)  # a refit at 40, then 17 rank-one updates of the projected model
    m, other = 12, agent._n_other
    V, lam = agent.components, agent.eigenvalues
    assert np.allclose(np.swapaxes(V, 1, 2) @ V, np.eye(m)) and np.all(np.diff(lam, axis=1) <= 0)
    prior = agent._pc_prior_diagonal()
    var = 1.0 / prior[:, :m]
    assert np.allclose((lam * var).sum(axis=1), 1 / 2.0)  # sum_j lambda_j Var(beta_j) = 1 / prior_precision
    assert np.allclose(var / var[:, :1], (lam / lam[:, :1]) ** 1.5)
    u = np.einsum("rnd,rdm->rnm", z - agent.centre[:, None], V)
    phi = np.concatenate([u, x, np.ones(y.shape + (1,))], axis=2)
    precision = prior[:, :, None] * np.eye(m + other) + np.swapaxes(phi, 1, 2) @ phi
    mean = np.linalg.solve(precision, np.einsum("rnp,rn->rp", phi, y)[:, :, None])[:, :, 0]
    got = agent.pc_model.chol @ np.swapaxes(agent.pc_model.chol, 1, 2)
    assert np.allclose(got, precision, rtol=1e-9, atol=1e-9)
    assert np.allclose(agent.pc_model.posterior_mean(), mean, rtol=1e-7, atol=1e-9)
    T = np.zeros((3, m + other, agent.k + other))
    T[:, :m, : agent.k] = agent.pc_basis
    T[:, m:, agent.k:] = np.eye(other)
    low = agent.model.chol @ np.swapaxes(agent.model.chol, 1, 2)
    assert np.allclose(low, np.swapaxes(T, 1, 2) @ precision @ T, rtol=1e-9, atol=1e-9)
    assert np.allclose(agent.model.b, np.einsum("rpq,rp->rq", T, np.einsum("rnp,rn->rp", phi, y)))
    assert np.allclose(agent.basis, V @ agent.pc_basis)
    assert np.allclose(np.swapaxes(agent.basis, 1, 2) @ agent.basis, np.eye(agent.k))


def test_components_are_the_bank_covariance_eigenvectors():
    """Given treatment means (no draws): V spans the top eigenvectors of the means' covariance."""
    env = gym.make("GeneratorMediated-v0", **SPARSE)
    C, K, D = env.unwrapped.contexts.n_contexts, 5, 50
    means = np.random.default_rng(0).standard_normal((C, K, D)) * np.linspace(3.0, 0.1, D)
    agent = LearnedEmbeddingGAMBITTS.from_env(env, rank=2, n_components=4, treatment_means=means, seed=0)
    flat = means.reshape(-1, D) - means.reshape(-1, D).mean(axis=0)
    values, vectors = np.linalg.eigh(flat.T @ flat / len(flat))
    assert np.allclose(agent.eigenvalues[0], values[::-1][:4])
    assert np.allclose(np.abs(np.sum(agent.components[0] * vectors[:, ::-1][:, :4], axis=0)), 1.0)


def test_sampled_projection_explores_and_the_posterior_mean_does_not():
    """sample_projection=True draws the first direction at each refit (two seeds differ before any data);
    False takes the posterior mean, which before data is zero, so the bank's contrasts fill the projection."""
    venv = _vec(n_envs=2)
    a = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=0)
    b = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=0, sample_projection=False)
    assert not np.allclose(np.abs(a.pc_basis[:, :, 0]), np.abs(b.pc_basis[:, :, 0]))
    c = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=0, sample_projection=False)
    assert np.array_equal(b.basis, c.basis)


def test_diagnostics_report_the_alignment_with_the_env_reward_direction():
    venv = _vec(n_envs=3)
    truth = venv.unwrapped.scenario.outcome.coef
    assert np.allclose(reward_direction(venv)[:, 0], truth)
    oracle = LearnedEmbeddingGAMBITTS.from_env(venv, fixed_projection="coordinates:0,1,2", n_offline=20, seed=0)
    d = oracle.diagnostics()
    assert set(d) == {"angle", "decision_angle"} and d["angle"].shape == (3,)
    assert np.allclose(d["angle"], 0.0, atol=1e-6) and np.allclose(d["decision_angle"], 0.0, atol=1e-6)
    wrong = LearnedEmbeddingGAMBITTS.from_env(venv, fixed_projection="coordinates:3", n_offline=20, seed=0)
    assert np.allclose(wrong.diagnostics()["angle"], np.pi / 2)
    full = LearnedEmbeddingGAMBITTS.from_env(venv, rank=None, n_offline=20, seed=0)
    assert np.allclose(full.diagnostics()["angle"], np.pi / 2)  # no data: no direction
    blind = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=0, true_direction=None)
    assert blind.diagnostics() == {}
    misspecified = gym.make("GeneratorMediated-v0", variant="misspecified")
    assert reward_direction(misspecified) is None


def test_reward_direction_of_the_cached_llm_variant_is_the_reward_gradient():
    """On the cached messages the mean reward minus z . direction minus the context effect is one constant."""
    env = gym.make("GeneratorMediated-v0", variant="cached-llm", working_embedding="full", n_actions=5)
    scenario = env.unwrapped.scenario
    direction = reward_direction(env)
    assert direction.shape == (384, 1)
    ctx = scenario.cache.context_index.astype(np.int64)[scenario._order]
    rest = scenario._f - scenario._working @ direction[:, 0] - scenario.outcome.context_effect[ctx]
    assert rest.std() < 1e-5 * scenario._f.std()
    assert reward_direction(gym.make("GeneratorMediated-v0", variant="cached-llm", n_actions=5)) is None


@pytest.mark.parametrize("estimator", ["pc", "full"])
def test_replications_are_independent(estimator):
    """Changing one row's rewards changes nothing in the other rows' learned state (bit for bit)."""
    venv = _vec(n_envs=3)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, size=(30, 3))
    first, _ = venv.reset(seed=0)
    obs = [first] + [venv.step(a)[0] for a in actions[:-1]]  # valid context observations
    z = rng.standard_normal((30, 3, 50))
    y = rng.standard_normal((30, 3))
    states = []
    for changed in (False, True):
        agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=5, estimator=estimator,
                                                  first_refit=5, refit_every=10)
        for t in range(30):
            reward = y[t] + (changed and t % 3 == 0) * np.array([0.0, 5.0, 0.0])
            agent.act(obs[t])
            agent.update(obs[t], actions[t], reward, {"treatment_embedding": z[t]})
        states.append(agent._state())
    for key, value in states[0].items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == 3:
            assert np.array_equal(value[[0, 2]], states[1][key][[0, 2]]), key
    assert not np.array_equal(states[0]["basis"][1], states[1]["basis"][1])
