"""RecordRegret records pseudo-regret for any loop that steps the environment."""

import gymnasium as gym
import numpy as np
import pytest

from gambit_gym import ENV_ID
from gambit_gym.wrappers import RecordRegret


def test_records_every_step_by_episode_and_matches_info():
    env = RecordRegret(gym.make(ENV_ID, horizon=10))
    seen = []
    for episode in range(3):
        env.reset(seed=episode)
        for _ in range(10):
            _, _, _, _, info = env.step(int(env.action_space.sample()))
            seen.append(info["regret"])
    reg = env.cumulative_regret()
    assert reg.shape == (3, 10) and np.all(np.diff(reg, axis=1) >= 0)
    assert np.allclose(reg[:, -1], np.asarray(seen).reshape(3, 10).sum(1))


@pytest.mark.slow
def test_records_under_stable_baselines3_learn():
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(lambda: gym.make(ENV_ID, horizon=50), n_envs=2, seed=0, wrapper_class=RecordRegret)
    model = sb3.A2C("MlpPolicy", venv, n_steps=5, gamma=0.0, seed=0, device="cpu")
    model.learn(total_timesteps=200)
    regrets = venv.env_method("cumulative_regret")
    assert all(r.shape == (2, 50) and np.all(r >= 0) for r in regrets)


def test_needs_regret_in_info():
    env = RecordRegret(gym.make("CartPole-v1"))
    env.reset(seed=0)
    with pytest.raises(KeyError, match="regret"):
        env.step(0)
