"""run_bandit and its results: reproducibility, blocks, bad arguments, summaries, files, standard errors."""

import math

import numpy as np
import pytest

from agents import BanditResult, FoGAMBITTS, LinearTS, StandardTS, run_bandit
from agents.results import standard_error
from agents.sb3 import SB3_PREFIX, parse_sb3_spec
from gambit_gym import ENV_ID
from tests._agents import ALL_AGENTS


@pytest.mark.slow
def test_every_agent_has_sublinear_regret_on_an_easy_instance():
    """Two contexts, no context effects, 3 well separated prompts: the second half of the run adds
    much less regret than the first (linear regret would add as much)."""
    easy = {"n_actions": 3, "context_shift": 0.0, "context_effect_sd": 0.0, "effect_size": 2.0,
            "contexts": [("weather", ["sunny", "rainy"])]}
    res = run_bandit(ENV_ID, ALL_AGENTS, horizon=1000, replications=20, seed=1, env_kwargs=easy,
                     progress=False)
    for name, reg in res.cumulative_regret.items():
        mean = reg.mean(axis=0)
        first, second = mean[499], mean[-1] - mean[499]
        assert second < 0.6 * first, (name, first, second)


@pytest.mark.slow
def test_same_seed_same_results_bit_for_bit():
    kwargs = dict(horizon=200, replications=8, env_kwargs={"n_actions": 4}, progress=False)
    a = run_bandit(ENV_ID, ALL_AGENTS, seed=5, **kwargs)
    b = run_bandit(ENV_ID, ALL_AGENTS, seed=5, **kwargs)
    c = run_bandit(ENV_ID, ALL_AGENTS, seed=6, **kwargs)
    for name in ALL_AGENTS:
        assert np.array_equal(a.cumulative_regret[name], b.cumulative_regret[name])
        assert not np.array_equal(a.cumulative_regret[name], c.cumulative_regret[name])


def test_blocks_split_replications_reproducibly():
    kwargs = dict(horizon=50, replications=10, seed=2, progress=False)
    a = run_bandit(ENV_ID, {"fo": FoGAMBITTS}, block_size=4, **kwargs)
    b = run_bandit(ENV_ID, {"fo": FoGAMBITTS}, block_size=4, **kwargs)
    assert np.array_equal(a.cumulative_regret["fo"], b.cumulative_regret["fo"])
    assert a.cumulative_regret["fo"].shape == (10, 50)


def test_run_bandit_bad_arguments():
    with pytest.raises(ValueError, match="horizon"):
        run_bandit(ENV_ID, {"s": StandardTS}, horizon=0)
    with pytest.raises(ValueError, match="agents"):
        run_bandit(ENV_ID, {}, horizon=5)
    with pytest.raises(TypeError, match="agents\\['x'\\]"):
        run_bandit(ENV_ID, {"x": 3}, horizon=5, replications=2, progress=False)
    with pytest.raises(TypeError, match="env: Stable-Baselines3 agents \\['ppo'\\] need an environment id"):
        run_bandit(lambda **kw: None, {"ppo": "sb3:PPO"}, horizon=5, replications=2, progress=False)


def test_result_summary_table_and_plot(tmp_path):
    res = run_bandit(ENV_ID, {"StdTS": StandardTS, "LinTS": LinearTS}, horizon=30, replications=5,
                     seed=0, progress=False)
    s = res.summary()
    assert set(s) == {"StdTS", "LinTS"} and s["StdTS"]["se"] >= 0
    assert "StdTS" in res.table()
    pytest.importorskip("matplotlib")
    res.plot(tmp_path / "regret.png")
    assert (tmp_path / "regret.png").stat().st_size > 1000


def test_summary_standard_error_is_that_of_the_final_regret():
    reg = np.array([[1.0, 2.0], [1.0, 4.0], [2.0, 9.0]])
    res = BanditResult({"a": reg}, horizon=2, replications=3, seed=0)
    assert res.summary()["a"]["mean"] == 5.0
    assert res.summary()["a"]["se"] == pytest.approx(np.std([2.0, 4.0, 9.0], ddof=1) / math.sqrt(3))
    assert "| a | 5.00 +- 2.08 |" in res.table()


def test_standard_error():
    assert standard_error([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    x = np.array([[1.0, 5.0], [3.0, 5.0], [8.0, 5.0]])
    assert np.allclose(standard_error(x, axis=0), [np.std([1, 3, 8], ddof=1) / math.sqrt(3), 0.0])
    assert np.allclose(standard_error(x, axis=1), np.std(x, axis=1, ddof=1) / math.sqrt(2))
    assert math.isnan(standard_error([7.0]))  # one value: no spread to estimate
    assert np.isnan(standard_error(np.ones((1, 4)), axis=0)).all() and standard_error(np.ones((1, 4))).shape == (4,)


def test_parse_sb3_spec():
    assert parse_sb3_spec(f"{SB3_PREFIX}PPO") == ("PPO", {})
    assert parse_sb3_spec(("sb3:DQN", {"learning_starts": 20})) == ("DQN", {"learning_starts": 20})
    assert parse_sb3_spec("PPO") is None
    assert parse_sb3_spec(StandardTS) is None
    assert parse_sb3_spec((StandardTS, {"contextual": True})) is None
