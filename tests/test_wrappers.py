"""RecordRegret records pseudo-regret for any loop that steps the environment; rewards standardised for learners."""

import gymnasium as gym
import numpy as np
import pytest

from gambit_gym import ENV_ID
from gambit_gym.wrappers import RecordRegret, RunningStandardizer, StandardizeReward


def test_records_every_step_by_episode_and_matches_info():
    env = RecordRegret(gym.make(ENV_ID, max_episode_steps=10))
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

    venv = make_vec_env(ENV_ID, n_envs=2, seed=0, wrapper_class=RecordRegret, env_kwargs={"max_episode_steps": 50})
    model = sb3.A2C("MlpPolicy", venv, n_steps=5, gamma=0.0, seed=0, device="cpu")
    model.learn(total_timesteps=200)
    regrets = venv.env_method("cumulative_regret")
    assert all(r.shape == (2, 50) and np.all(r >= 0) for r in regrets)


def test_needs_regret_in_info():
    env = RecordRegret(gym.make("CartPole-v1"))
    env.reset(seed=0)
    with pytest.raises(KeyError, match="regret"):
        env.step(0)


def test_running_standardizer_uses_only_earlier_rewards_per_row():
    rng = np.random.default_rng(0)
    rewards = rng.normal(80, 5, size=(40, 3))
    std = RunningStandardizer(3)
    scaled = np.array([std(r) for r in rewards])
    for t in range(40):
        past = rewards[:t]
        sd = past.std(axis=0) if t > 1 else np.ones(3)
        expected = np.zeros(3) if t == 0 else (rewards[t] - past.mean(axis=0)) / sd
        assert np.allclose(scaled[t], expected)
    with pytest.raises(ValueError, match="rewards"):
        std(np.zeros(2))


def test_standardize_reward_is_the_one_row_standardizer_and_leaves_info_alone():
    env = StandardizeReward(RecordRegret(gym.make(ENV_ID, reward_noise_sd=5.0)))
    plain = gym.make(ENV_ID, reward_noise_sd=5.0)
    env.reset(seed=0)
    plain.reset(seed=0)
    std = RunningStandardizer(1)
    for _ in range(30):
        _, scaled, _, _, info = env.step(1)
        _, reward, _, _, plain_info = plain.step(1)
        assert type(scaled) is float and scaled == std(np.array([reward]))[0]
        assert info["regret"] == plain_info["regret"]
    assert env.get_wrapper_attr("cumulative_regret")(include_current=True).shape == (1, 30)
