"""LearnedEmbeddingGAMBITTS: the learned projection, its exact projected posterior, save/restore, bad configs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import gambit_gym  # noqa: F401  (registers the environment)
from agents.base import IncompatibleEnvError
from agents.learned_embedding import LearnedEmbeddingGAMBITTS, principal_angles

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


def test_learned_subspace_aligns_with_the_true_reward_direction_as_data_grows():
    """Reward linear in 3 of 50 coordinates: the reward-relevant subspace is span(coefficients)."""
    venv = _vec()
    truth = venv.unwrapped.scenario.outcome.coef
    assert np.count_nonzero(truth) == 3
    agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=3, n_offline=50, seed=0)
    obs, _ = venv.reset(seed=1)
    angles = [principal_angles(agent.basis, truth).max(axis=1).mean()]
    for rounds in (40, 160, 600):
        obs = _play(agent, venv, rounds, obs)
        angles.append(principal_angles(agent.basis, truth).max(axis=1).mean())
    assert angles[0] > 1.0  # before data: the bank's contrasts, far from the truth
    assert all(b < a for a, b in zip(angles, angles[1:])), angles
    assert angles[-1] < 0.15, angles


def test_projected_posterior_is_the_exact_projection_of_the_full_statistics():
    """Between refits the low-dimensional posterior is updated by rank-one steps; it must equal the projected
    prior + data: T^T (G + Lambda) T and T^T X^T y with T = diag(P, I)."""
    venv = _vec(n_envs=3)
    agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=0, refit_every=30, first_refit=30)
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


def test_save_restore_continues_bit_for_bit(tmp_path):
    venv = _vec(n_envs=4)
    agent = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=3)
    obs, _ = venv.reset(seed=2)
    obs = _play(agent, venv, 25, obs)
    path = agent.save(tmp_path / "learned.state")
    twin = LearnedEmbeddingGAMBITTS.from_env(venv, rank=2, n_offline=20, seed=99)
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
    other = LearnedEmbeddingGAMBITTS.from_env(venv, rank=3, n_offline=20, seed=3)
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
