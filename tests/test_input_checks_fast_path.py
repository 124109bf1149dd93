"""The cheap paths of act/update's input checks (agents/base.py) give exactly what the general checks give, and
every bad argument still gets the general path's error."""

from collections import UserDict

import gymnasium as gym
import numpy as np
import pytest

from agents import FoGAMBITTS, LinearTS, StandardTS
from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv
from tests._agents import ALL_AGENTS, build


class InfoMapping(UserDict):
    """An info that is a mapping but not a dict: the embedding check's general path."""


class Reward(float):
    """A real number that is not exactly a float: the reward check's general path."""


def general_path_arguments(obs, action, reward, info):
    """The same values in types the cheap paths do not take (a list, a float subclass, a numpy int32, a list
    embedding), so that they go through the general checks."""
    slow_info = dict(info)
    slow_info["treatment_embedding"] = info["treatment_embedding"].tolist()
    return obs.tolist(), np.int32(action), Reward(reward), slow_info


@pytest.mark.parametrize("name", ALL_AGENTS)
def test_cheap_and_general_checks_give_identical_runs(name):
    """Twin agents, one fed what the environment hands over (the cheap paths), one the same values in other
    types (the general path): the same actions and the same state bit for bit, K = 12 and d = 4."""
    env = gym.make(ENV_ID, max_episode_steps=200, n_actions=12, embedding_dim=4)
    fast, general = build(ALL_AGENTS[name], env, 5), build(ALL_AGENTS[name], env, 5)
    obs, _ = env.reset(seed=2)
    for _ in range(150):
        a = fast.act(obs)
        assert type(a) is int and general.act(obs.tolist()) == a
        next_obs, r, _, _, info = env.step(a)
        fast.update(obs, a, r, info)
        general.update(*general_path_arguments(obs, a, r, info))
        obs = next_obs
    fast_state, general_state = fast.state_dict(), general.state_dict()
    assert fast_state["rng"] == general_state["rng"]
    for key, value in fast_state["state"].items():
        np.testing.assert_array_equal(value, general_state["state"][key])


def test_context_lookup_equals_the_context_index():
    """The single-row lookup of a valid observation gives what ContextSpace.index gives, in any float dtype,
    and an observation the table does not hold (-0.0 for 0.0) still gets index()'s answer."""
    env = gym.make(ENV_ID)
    agent = StandardTS.from_env(env, seed=0)
    contexts = env.unwrapped.contexts
    for c, features in enumerate(contexts.features):
        for dtype in (np.float32, np.float64):
            x = agent._check_obs(features.astype(dtype))
            assert agent._context_index(x).tolist() == contexts.index(x).tolist() == [c]
        signed_zero = np.where(features == 0, -0.0, 1.0)
        assert agent._context_index(agent._check_obs(signed_zero)).tolist() == [c]


@pytest.mark.parametrize("batched", [False, True])
def test_action_cell_table_equals_the_cell_arithmetic(batched):
    """_action_cells' row lookup is the cells _cell computes, for every context, with or without contexts."""
    env = GeneratorMediatedVectorEnv(num_envs=3, n_actions=7) if batched else gym.make(ENV_ID, n_actions=7)
    for agent in (FoGAMBITTS.from_env(env, seed=0), LinearTS.from_env(env, seed=0)):
        n_contexts = agent.contexts.n_contexts if agent.contexts is not None else 1
        for c in range(n_contexts):
            ctx = np.full(agent.n_rows, c, dtype=np.int64)
            cells = agent._action_cells(ctx)
            assert cells.dtype == np.int64 and cells.flags.writeable
            np.testing.assert_array_equal(cells, agent._cell(ctx[:, None], agent._actions))


def test_bad_arguments_still_get_the_general_errors_on_a_single_env():
    env = gym.make(ENV_ID)
    agent = FoGAMBITTS.from_env(env, seed=0)
    obs, _ = env.reset(seed=0)
    a = agent.act(obs)
    _, r, _, _, info = env.step(a)
    not_one_hot = obs.copy()
    not_one_hot[0] = 2.0
    with pytest.raises(ValueError, match="not one-hot"):
        agent.act(not_one_hot)
    with pytest.raises(ValueError, match="not one-hot"):
        agent.act(np.full_like(obs, np.nan))
    with pytest.raises(ValueError, match=r"obs: expected shape \(7,\)"):
        agent.act(obs[None])
    with pytest.raises(TypeError, match="action"):
        agent.update(obs, True, r, info)
    for action in (-1, 5, np.int64(5), np.int64(-1)):
        with pytest.raises(ValueError, match=r"action: expected values in \[0, 4\]"):
            agent.update(obs, action, r, info)
    with pytest.raises(TypeError, match="reward"):
        agent.update(obs, a, True, info)
    for reward in (float("inf"), np.float64("nan"), -np.inf):
        with pytest.raises(ValueError, match="reward: expected finite"):
            agent.update(obs, a, reward, info)
    with pytest.raises(ValueError, match=r"treatment_embedding'\]: expected shape \(3,\)"):
        agent.update(obs, a, r, {"treatment_embedding": np.zeros((1, 3))})
    with pytest.raises(KeyError, match="treatment_embedding"):
        agent.update(obs, a, r, InfoMapping(info))  # not a dict: refused, as before
    with pytest.raises(ValueError, match="could not convert"):
        agent.update(obs, a, r, {"treatment_embedding": np.array(["a", "b", "c"])})
    # the refused calls changed nothing: the agent learned only from nothing so far
    assert agent.state_dict()["state"]["model.n"].tolist() == [0.0]


def test_bad_arguments_still_get_the_general_errors_on_a_vector_env():
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    agent = LinearTS.from_env(venv, seed=0)
    obs, _ = venv.reset(seed=0)
    a = agent.act(obs)
    _, r, _, _, info = venv.step(a)
    with pytest.raises(ValueError, match=r"obs: expected shape \(3, 7\)"):
        agent.act(obs[:2])
    with pytest.raises(TypeError, match="action"):
        agent.update(obs, a.astype(float), r, info)
    with pytest.raises(ValueError, match="action"):
        agent.update(obs, np.array([0, 1, 9]), r, info)
    with pytest.raises(ValueError, match="reward: expected finite"):
        agent.update(obs, a, np.array([1.0, np.nan, 2.0]), info)
    agent.update(obs, a, r, info)
    assert agent.state_dict()["state"]["model.n"].tolist() == [1.0, 1.0, 1.0]
