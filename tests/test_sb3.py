"""Stable-Baselines3 algorithms as agents: every variant, regret recorded, seeded repeatability."""

import numpy as np
import pytest

from agents import StandardTS, run_bandit
from agents.experiments import Experiment, load_results, run_experiments
from agents.sb3 import SB3_ALGORITHMS, StandardizeReward, run_sb3
from gambit_gym import ENV_ID
from tests.conftest import VARIANT_KWARGS

pytest.importorskip("stable_baselines3")
import gymnasium as gym  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402

ALL_VARIANTS = [*VARIANT_KWARGS, {"variant": "cached-llm"}, {"variant": "cached-llm", "outcome": "mlp", "n_actions": 8}]


@pytest.mark.parametrize("kwargs", ALL_VARIANTS)
def test_sb3_check_env_passes_on_every_variant(kwargs):
    check_env(gym.make(ENV_ID, **kwargs).unwrapped, warn=True)


@pytest.mark.slow  # 18 short training runs: ~20 s together
@pytest.mark.parametrize("algorithm", SB3_ALGORITHMS)
@pytest.mark.parametrize("kwargs", ALL_VARIANTS)
def test_each_algorithm_learns_online_on_every_variant_with_regret_recorded(algorithm, kwargs):
    res = run_sb3(algorithm, ENV_ID, horizon=300, replications=2, seed=1, env_kwargs=kwargs, progress=False)
    reg = res.cumulative_regret[algorithm]
    assert reg.shape == (2, 300)
    assert np.all(np.diff(reg, axis=1) >= 0) and np.all(reg >= 0) and reg[:, -1].max() > 0


@pytest.mark.parametrize("algorithm", SB3_ALGORITHMS)
def test_seeded_runs_repeat_exactly(algorithm):
    a = run_sb3(algorithm, horizon=120, replications=2, seed=7, progress=False).cumulative_regret[algorithm]
    b = run_sb3(algorithm, horizon=120, replications=2, seed=7, progress=False).cumulative_regret[algorithm]
    c = run_sb3(algorithm, horizon=120, replications=2, seed=8, progress=False).cumulative_regret[algorithm]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_sb3_agents_sit_beside_bandit_agents_in_run_bandit():
    res = run_bandit(ENV_ID, {"StdTS": StandardTS, "PPO": "sb3:PPO", "DQN": ("sb3:DQN", {"learning_starts": 20})},
                     horizon=100, replications=2, seed=0, progress=False)
    assert set(res.summary()) == {"StdTS", "PPO", "DQN"}
    alone = run_bandit(ENV_ID, {"StdTS": StandardTS}, horizon=100, replications=2, seed=0, progress=False)
    assert np.array_equal(res.cumulative_regret["StdTS"], alone.cumulative_regret["StdTS"])


def test_sb3_agents_in_an_experiment_config(tmp_path):
    exp = Experiment.from_dict({"name": "rl", "horizon": 60, "replications": 2, "seed": 3,
                                "env": {"variant": "cached-llm"},
                                "agents": {"A2C": {"type": "sb3:A2C", "n_steps": 4}, "StdTS": {"type": "StandardTS"}}})
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    cfg = load_results(tmp_path)["rl"].configs[0]
    assert set(cfg.agents) == {"A2C", "StdTS"} and len(cfg.agents["A2C"].final) == 2


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="algorithm"):
        run_sb3("SAC", horizon=10, replications=1, progress=False)
    with pytest.raises(TypeError, match="sb3:PPO"):
        run_sb3("PPO", horizon=10, replications=1, progress=False, not_a_setting=1)
    with pytest.raises(ValueError, match="horizon"):
        run_sb3("PPO", horizon=0, replications=1, progress=False)
    with pytest.raises(ValueError, match="device"):
        run_sb3("PPO", horizon=10, replications=1, progress=False, device="cuda")


def test_standardized_reward_uses_only_past_rewards():
    env = StandardizeReward(gym.make(ENV_ID, reward_noise_sd=5.0))
    env.reset(seed=0)
    scaled = [env.step(0)[1] for _ in range(50)]
    # the same seed replayed unwrapped: the output is (r_t - mean(r_<t)) / sd(r_<t) (population sd), 0 first
    env2 = gym.make(ENV_ID, reward_noise_sd=5.0)
    env2.reset(seed=0)
    rewards = np.array([env2.step(0)[1] for _ in range(50)])
    expected = [0.0] + [(rewards[t] - rewards[:t].mean()) / (rewards[:t].std() if t > 1 else 1.0)
                        for t in range(1, 50)]
    assert np.allclose(scaled, expected)
