"""The batched environment: shapes, determinism, autoreset and agreement with the single env."""

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

from gambit_gym import ENV_ID, GeneratorMediatedEnv, GeneratorMediatedVectorEnv
from tests.conftest import VARIANT_KWARGS


def run_vec(seed, n_envs=16, steps=20, **kwargs):
    venv = gym.make_vec(ENV_ID, num_envs=n_envs, vectorization_mode="vector_entry_point", **kwargs)
    obs, _ = venv.reset(seed=seed)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        obs, r, term, trunc, info = venv.step(rng.integers(venv.single_action_space.n, size=n_envs))
        out.append((obs, r, info["treatment_embedding"], info["regret"]))
    return out


@pytest.mark.parametrize("kwargs", VARIANT_KWARGS)
def test_vector_env_shapes_and_info_masks(kwargs):
    venv = gym.make_vec(ENV_ID, num_envs=8, vectorization_mode="vector_entry_point", **kwargs)
    assert isinstance(venv, GeneratorMediatedVectorEnv)
    obs, info = venv.reset(seed=0)
    assert obs.shape == (8, 7) and obs.dtype == np.float32
    obs, r, term, trunc, info = venv.step(venv.action_space.sample())
    d = venv.scenario.embedding_dim
    assert info["treatment_embedding"].shape == (8, d)
    assert r.shape == term.shape == trunc.shape == (8,)
    for key in ("expected_reward", "optimal_action", "optimal_expected_reward", "regret"):
        assert info[key].shape == (8,) and info["_" + key].all()
    assert np.all(info["regret"] >= 0)
    assert info["context"]["location"].shape == (8,)
    assert venv.observation_space.contains(obs)


def test_vector_env_deterministic_for_a_seed_and_seeds_differ():
    a, b, c = run_vec(3), run_vec(3), run_vec(4)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert np.array_equal(u, v)
    assert not np.array_equal(a[0][1], c[0][1])


def test_vector_env_autoreset_next_step():
    venv = GeneratorMediatedVectorEnv(num_envs=4, max_episode_steps=2)
    venv.reset(seed=0)
    assert not venv.step(np.zeros(4, dtype=int))[3].any()
    assert venv.step(np.zeros(4, dtype=int))[3].all()
    obs, r, term, trunc, info = venv.step(np.zeros(4, dtype=int))  # the reset step
    assert np.all(r == 0) and not trunc.any() and "regret" not in info
    assert not venv.step(np.zeros(4, dtype=int))[3].any()


def test_vector_env_agrees_with_single_env_in_distribution():
    """Rewards of a fixed action from the vector env and from many single-env steps: same law."""
    n = 4000
    venv = GeneratorMediatedVectorEnv(num_envs=n, variant="misspecified", embedding_noise_sd=0.5)
    venv.reset(seed=0)
    _, r_vec, _, _, info_vec = venv.step(np.full(n, 2))
    env = GeneratorMediatedEnv(variant="misspecified", embedding_noise_sd=0.5)
    env.reset(seed=1)
    r_single, z_single = [], []
    for _ in range(n):
        _, r, _, _, info = env.step(2)
        r_single.append(r)
        z_single.append(info["treatment_embedding"][0])
    assert stats.ks_2samp(r_vec, r_single).pvalue > 1e-3
    assert stats.ks_2samp(info_vec["treatment_embedding"][:, 0], z_single).pvalue > 1e-3


def test_vector_env_bad_actions():
    venv = GeneratorMediatedVectorEnv(num_envs=3, n_actions=4)
    venv.reset(seed=0)
    for bad in (np.array([0, 1]), np.array([0, 1, 4]), np.array([0.0, 1.0, 2.0]), np.array([-1, 0, 0])):
        with pytest.raises(ValueError, match="actions"):
            venv.step(bad)
    with pytest.raises(ValueError, match="num_envs"):
        GeneratorMediatedVectorEnv(num_envs=0)


def test_vector_env_simulation_access_and_oracle():
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    venv.reset(seed=0)
    assert venv.sample_treatments(0, 1, 5).shape == (5, 3)
    single = GeneratorMediatedEnv()
    assert np.array_equal(venv.expected_rewards(4), single.expected_rewards(4))
    assert venv.expected_rewards(np.array([0, 4])).shape == (2, 5)


def test_vector_env_episode_length_by_either_name_and_none_when_constructed_directly():
    for kwargs in ({"max_episode_steps": 3}, {"horizon": 3}):
        venv = GeneratorMediatedVectorEnv(num_envs=2, **kwargs)
        venv.reset(seed=0)
        assert [bool(venv.step(np.zeros(2, dtype=int))[3].all()) for _ in range(3)] == [False, False, True]
        assert venv.horizon == venv.max_episode_steps == 3
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    venv.reset(seed=0)
    assert venv.max_episode_steps is None and not any(venv.step(np.zeros(2, dtype=int))[3].any() for _ in range(1100))
    with pytest.raises(ValueError, match="max_episode_steps"):
        GeneratorMediatedVectorEnv(num_envs=2, max_episode_steps=0)
