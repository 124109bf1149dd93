"""Agents: protocol, single/batched agreement, regret behaviour, reproducibility, bad input."""

import gymnasium as gym
import numpy as np
import pytest

from agents import (
    Agent,
    FoGAMBITTS,
    IncompatibleEnvError,
    LinearTS,
    PoGAMBITTS,
    StandardTS,
    run_bandit,
)
from gambit_gym import GeneratorMediatedVectorEnv
from tests.conftest import ENV_ID

ALL_AGENTS = {
    "StdTS": StandardTS,
    "StdTS-context": (StandardTS, {"contextual": True}),
    "LinTS": LinearTS,
    "LinTS-interactions": (LinearTS, {"interactions": True}),
    "poGAMBITTS": (PoGAMBITTS, {"n_offline": 100}),
    "poGAMBITTS-hedged": (PoGAMBITTS, {"n_offline": 100, "hedged": True}),
    "poGAMBITTS-fixed-v": (PoGAMBITTS, {"n_offline": 100, "noise_var": 1.0}),
    "foGAMBITTS": FoGAMBITTS,
}


def build(spec, env, seed):
    cls, kwargs = spec if isinstance(spec, tuple) else (spec, {})
    return cls.from_env(env, seed=seed, **kwargs)


@pytest.mark.parametrize("name", ALL_AGENTS)
def test_agents_follow_the_protocol_on_a_single_env(name):
    env = gym.make(ENV_ID)
    agent = build(ALL_AGENTS[name], env, 0)
    assert isinstance(agent, Agent)
    obs, info = env.reset(seed=0)
    for _ in range(30):
        action = agent.act(obs)
        assert type(action) is int and 0 <= action < 5
        next_obs, reward, _, _, info = env.step(action)
        agent.update(obs, action, reward, info)
        obs = next_obs
    agent.reset()


@pytest.mark.parametrize("name", ALL_AGENTS)
def test_single_agent_is_the_one_row_view_of_the_batched_agent(name):
    """Same seeds: an agent on a single env and one on a 1-env vector env act identically."""
    env = gym.make(ENV_ID, horizon=100)
    venv = GeneratorMediatedVectorEnv(num_envs=1, horizon=100)
    single, batched = build(ALL_AGENTS[name], env, 3), build(ALL_AGENTS[name], venv, 3)
    obs, _ = env.reset(seed=11)
    vobs, _ = venv.reset(seed=11)
    for _ in range(100):
        a, va = single.act(obs), batched.act(vobs)
        assert va.shape == (1,) and a == va[0]
        next_obs, r, _, _, info = env.step(a)
        vnext, vr, _, _, vinfo = venv.step(va)
        assert r == vr[0] and info["regret"] == vinfo["regret"][0]
        single.update(obs, a, r, info)
        batched.update(vobs, va, vr, vinfo)
        obs, vobs = next_obs, vnext


def test_headline_pogambitts_at_most_half_of_standard_ts():
    """Default synthetic instance, K = 5, lowest noise, T = 1000, 50 replications."""
    res = run_bandit(ENV_ID, {"poGAMBITTS": PoGAMBITTS, "StdTS": StandardTS}, horizon=1000,
                     replications=50, seed=323, progress=False)
    s = res.summary()
    print(f"\npoGAMBITTS {s['poGAMBITTS']['mean']:.1f} +- {s['poGAMBITTS']['se']:.1f}, "
          f"StdTS {s['StdTS']['mean']:.1f} +- {s['StdTS']['se']:.1f}")
    assert s["poGAMBITTS"]["mean"] <= 0.5 * s["StdTS"]["mean"]


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


@pytest.mark.parametrize("name", ["StdTS-context", "LinTS", "poGAMBITTS-hedged", "foGAMBITTS"])
def test_save_and_restore_gives_identical_future_actions(name, tmp_path):
    venv = GeneratorMediatedVectorEnv(num_envs=4)
    agent = build(ALL_AGENTS[name], venv, 0)
    obs, _ = venv.reset(seed=0)
    for _ in range(40):
        a = agent.act(obs)
        nobs, r, _, _, info = venv.step(a)
        agent.update(obs, a, r, info)
        obs = nobs
    agent.save(tmp_path / "agent.npz")
    clone = build(ALL_AGENTS[name], venv, 99)  # different seed: everything must come from the file
    clone.load(tmp_path / "agent.npz")
    state_env = GeneratorMediatedVectorEnv(num_envs=4)
    state_env.reset(seed=1)
    obs2, _ = state_env.reset(seed=1)
    for _ in range(30):
        a, b = agent.act(obs2), clone.act(obs2)
        assert np.array_equal(a, b)
        nobs, r, _, _, info = state_env.step(a)
        agent.update(obs2, a, r, info)
        clone.update(obs2, b, r, info)
        obs2 = nobs


def test_loading_state_of_another_agent_fails(tmp_path):
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    LinearTS.from_env(venv, seed=0).save(tmp_path / "lin.npz")
    with pytest.raises(ValueError, match="LinearTS"):
        StandardTS.from_env(venv, seed=0).load(tmp_path / "lin.npz")


def test_incompatible_environments_get_clear_errors():
    with pytest.raises(IncompatibleEnvError, match="Discrete"):
        StandardTS.from_env(gym.make("Pendulum-v1"))
    cartpole = gym.make("CartPole-v1")
    StandardTS.from_env(cartpole)  # context-free TS needs nothing more than Discrete actions
    with pytest.raises(IncompatibleEnvError, match="treatment_embedding|contexts"):
        FoGAMBITTS.from_env(cartpole)
    with pytest.raises(IncompatibleEnvError, match="simulation access"):
        PoGAMBITTS(n_actions=5, obs_dim=7, contexts=gym.make(ENV_ID).unwrapped.contexts, embedding_dim=3)


def test_bad_update_arguments_get_clear_errors():
    env = gym.make(ENV_ID)
    agent = FoGAMBITTS.from_env(env, seed=0)
    obs, _ = env.reset(seed=0)
    a = agent.act(obs)
    _, r, _, _, info = env.step(a)
    with pytest.raises(ValueError, match="obs"):
        agent.act(obs[:3])
    with pytest.raises(TypeError, match="action"):
        agent.update(obs, 1.5, r, info)
    with pytest.raises(ValueError, match="action"):
        agent.update(obs, 7, r, info)
    with pytest.raises(TypeError, match="reward"):
        agent.update(obs, a, "high", info)
    with pytest.raises(ValueError, match="reward"):
        agent.update(obs, a, float("nan"), info)
    with pytest.raises(KeyError, match="treatment_embedding"):
        agent.update(obs, a, r, {})
    with pytest.raises(ValueError, match="treatment_embedding"):
        agent.update(obs, a, r, {"treatment_embedding": np.zeros(5)})


def test_run_bandit_bad_arguments():
    with pytest.raises(ValueError, match="horizon"):
        run_bandit(ENV_ID, {"s": StandardTS}, horizon=0)
    with pytest.raises(ValueError, match="agents"):
        run_bandit(ENV_ID, {}, horizon=5)
    with pytest.raises(TypeError, match="agents\\['x'\\]"):
        run_bandit(ENV_ID, {"x": 3}, horizon=5, replications=2, progress=False)


def test_result_summary_table_and_plot(tmp_path):
    res = run_bandit(ENV_ID, {"StdTS": StandardTS, "LinTS": LinearTS}, horizon=30, replications=5,
                     seed=0, progress=False)
    s = res.summary()
    assert set(s) == {"StdTS", "LinTS"} and s["StdTS"]["se"] >= 0
    assert "StdTS" in res.table()
    pytest.importorskip("matplotlib")
    res.plot(tmp_path / "regret.png")
    assert (tmp_path / "regret.png").stat().st_size > 1000
