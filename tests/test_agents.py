"""The agent protocol: every built-in agent on single and vector envs, the base class, bad input."""

import gymnasium as gym
import numpy as np
import pytest

from agents import Agent, BatchedAgent, FoGAMBITTS, IncompatibleEnvError, PoGAMBITTS, StandardTS
from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv
from tests._agents import ALL_AGENTS, build


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
    env = gym.make(ENV_ID, max_episode_steps=100)
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


def test_reset_returns_to_the_prior():
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = build(ALL_AGENTS["foGAMBITTS"], venv, 0)
    prior = agent.state_dict()["state"]
    obs, _ = venv.reset(seed=0)
    a = agent.act(obs)
    _, r, _, _, info = venv.step(a)
    agent.update(obs, a, r, info)
    assert not np.array_equal(agent.state_dict()["state"]["model.n"], prior["model.n"])
    agent.reset()
    after = agent.state_dict()["state"]
    assert all(np.array_equal(after[k], prior[k]) for k in prior)


def test_batched_agent_hooks_are_abstract():
    """A subclass that leaves out a hook cannot be built; one with all five can."""

    class NoUpdate(BatchedAgent):
        needs_contexts = False

        def _init_state(self):
            self.count = 0

        def _act(self, ctx, x):
            return np.zeros(self.n_rows, dtype=np.int64)

        def _state(self):
            return {"count": self.count}

        def _load_state(self, state):
            self.count = state["count"]

    with pytest.raises(TypeError, match="_update"):
        NoUpdate.from_env(gym.make("CartPole-v1"))

    class Counter(NoUpdate):
        def _update(self, ctx, x, a, y, z):
            self.count += 1

    env = gym.make("CartPole-v1")
    agent = Counter.from_env(env, seed=0)
    obs, _ = env.reset(seed=0)
    action = agent.act(obs)
    _, reward, _, _, info = env.step(action)
    agent.update(obs, action, reward, info)
    assert action == 0 and agent.state_dict()["state"] == {"count": 1}


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
