"""Gymnasium's conventions: what gym.make / gym.make_vec forward, the sync mode's info layout and numbers,
the vector API (get_attr / call / set_attr), seeds, the spec, and custom agents on plain envs."""

import importlib.util
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents import run_bandit
from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv
from tests.conftest import VARIANT_KWARGS

ROOT = Path(__file__).resolve().parents[1]
ALL_VARIANTS = [*VARIANT_KWARGS, {"variant": "cached-llm"}, {"variant": "cached-llm", "outcome": "mlp", "n_actions": 8}]


def make_vec(mode, n=3, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=n, vectorization_mode=mode, **kwargs)


def structure(value):
    """Keys, nesting, dtypes and shapes of an info dict (not the numbers)."""
    if isinstance(value, dict):
        return {k: structure(v) for k, v in value.items()}
    arr = np.asarray(value)
    return (arr.dtype.str if arr.dtype.kind != "U" else "str", arr.shape)


def steps_until_truncated(venv, limit=5000):
    venv.reset(seed=0)
    for t in range(1, limit + 1):
        if venv.step(np.zeros(venv.num_envs, dtype=np.int64))[3].all():
            return t
    raise AssertionError("never truncated")


# -- what gym.make_vec forwards ---------------------------------------------------------------
def test_make_vec_forwards_max_episode_steps_and_render_mode_to_the_vector_entry_point():
    venv = make_vec("vector_entry_point", max_episode_steps=7, render_mode="ansi")
    assert venv.max_episode_steps == 7 and venv.spec.max_episode_steps == 7
    assert steps_until_truncated(venv) == 7
    frames = venv.render()
    assert len(frames) == 3 and all("regret=" in f for f in frames)
    assert make_vec("vector_entry_point").spec.max_episode_steps == 1000


@pytest.mark.parametrize("mode", ["vector_entry_point", "sync"])
def test_max_episode_steps_1500_gives_1500_round_episodes_in_every_mode(mode):
    venv = make_vec(mode, n=2, max_episode_steps=1500)
    assert steps_until_truncated(venv) == 1500
    assert make_vec(mode, n=2).unwrapped.get_attr("max_episode_steps") in ((1000, 1000), (None, None))


def test_horizon_as_existing_code_passes_it_keeps_working_in_the_vector_env():
    venv = make_vec("vector_entry_point", horizon=5)  # gym.make_vec also passes max_episode_steps=1000
    assert venv.horizon == venv.max_episode_steps == venv.spec.max_episode_steps == 5
    assert steps_until_truncated(venv) == 5


# -- the sync mode's layout and numbers ---------------------------------------------------------
@pytest.mark.parametrize("kwargs", ALL_VARIANTS)
def test_info_has_the_keys_nesting_masks_and_dtypes_of_the_sync_mode(kwargs):
    native, sync = make_vec("vector_entry_point", max_episode_steps=2, **kwargs), make_vec("sync", max_episode_steps=2,
                                                                                            **kwargs)
    _, info_native = native.reset(seed=0)
    _, info_sync = sync.reset(seed=0)
    assert structure(info_native) == structure(info_sync)
    assert set(info_native["context"]) >= {"_location", "_previous_day_steps"}
    for _ in range(3):  # two rounds, then the autoreset step
        actions = np.zeros(3, dtype=np.int64)
        out_native, out_sync = native.step(actions), sync.step(actions)
        assert structure(out_native[4]) == structure(out_sync[4])
        for a, b in zip(out_native[:4], out_sync[:4]):
            assert a.dtype == b.dtype and a.shape == b.shape


@pytest.mark.parametrize("kwargs", ALL_VARIANTS)
@pytest.mark.parametrize("seed", [11, [5, 9, 2]])
def test_per_env_seeding_gives_the_sync_modes_numbers(kwargs, seed):
    native = make_vec("vector_entry_point", max_episode_steps=4, seeding="per-env", **kwargs)
    sync = make_vec("sync", max_episode_steps=4, **kwargs)
    obs_native, info_native = native.reset(seed=seed)
    obs_sync, info_sync = sync.reset(seed=seed)
    assert np.array_equal(obs_native, obs_sync)
    rng = np.random.default_rng(0)
    for _ in range(11):  # across two autoresets
        actions = rng.integers(native.single_action_space.n, size=3)
        out_native, out_sync = native.step(actions), sync.step(actions)
        for a, b in zip(out_native[:4], out_sync[:4]):
            assert np.array_equal(a, b)
        for key, value in out_sync[4].items():
            if not isinstance(value, dict):
                assert np.array_equal(out_native[4][key], value), key
    for a, b in zip(native.call("sample_treatments", 1, 2, 5), sync.call("sample_treatments", 1, 2, 5)):
        assert np.array_equal(a, b)


def test_per_env_seed_list_with_none_keeps_that_streams_and_int_seeds_count_up():
    native = GeneratorMediatedVectorEnv(num_envs=3, seeding="per-env")
    native.reset(seed=[4, 5, 6])
    native.step(np.array([0, 1, 2]))
    kept = native.get_attr("np_random")[1].bit_generator.state
    native.reset(seed=[7, None, 8])
    assert native.get_attr("np_random")[1].bit_generator.state != kept  # the reset drew its context
    a = GeneratorMediatedVectorEnv(num_envs=3, seeding="per-env")
    b = GeneratorMediatedVectorEnv(num_envs=3, seeding="per-env")
    assert np.array_equal(a.reset(seed=10)[0], b.reset(seed=[10, 11, 12])[0])


# -- seeds in the shared mode ---------------------------------------------------------------------
def test_shared_mode_takes_a_seed_list_for_its_one_stream():
    a, b = GeneratorMediatedVectorEnv(num_envs=4), GeneratorMediatedVectorEnv(num_envs=4)
    oa, _ = a.reset(seed=[0, 1, 2, 3])
    ob, _ = b.reset(seed=[0, 1, 2, 3])
    assert np.array_equal(oa, ob)
    actions = np.array([0, 1, 2, 3])
    assert np.array_equal(a.step(actions)[1], b.step(actions)[1])
    c = GeneratorMediatedVectorEnv(num_envs=4)
    c.reset(seed=[0, 1, 2, 4])
    assert not np.array_equal(a.step(actions)[1], c.step(actions)[1])
    a.reset(seed=[None] * 4)  # every entry None: like seed=None


@pytest.mark.parametrize(
    ("seed", "match"),
    [([0, 1], "list of 4"), ([0, None, 1, 2], "give every entry or none"), ([0, 1, -2, 3], r"seed\[2\]"),
     ("abcd", "seed"), (1.5, "seed"), (True, "seed"), (-1, "seed")],
)
def test_bad_seeds_are_named(seed, match):
    with pytest.raises((ValueError, TypeError), match=match):
        GeneratorMediatedVectorEnv(num_envs=4).reset(seed=seed)


def test_np_random_is_settable_and_seeds_like_reset():
    a, b = GeneratorMediatedVectorEnv(num_envs=4), GeneratorMediatedVectorEnv(num_envs=4)
    a.np_random = np.random.default_rng(5)
    assert a.np_random_seed == -1
    oa, _ = a.reset()
    ob, _ = b.reset(seed=5)
    assert b.np_random_seed == 5 and np.array_equal(oa, ob)
    actions = np.zeros(4, dtype=np.int64)
    assert np.array_equal(a.step(actions)[1], b.step(actions)[1])
    with pytest.raises(TypeError, match="np_random"):
        a.np_random = 3
    per_env = GeneratorMediatedVectorEnv(num_envs=2, seeding="per-env")
    with pytest.raises(AttributeError, match="get_attr"):
        _ = per_env.np_random


# -- the vector API ---------------------------------------------------------------------------------
def test_get_attr_call_and_set_attr_behave_as_in_sync_mode():
    native, sync = make_vec("vector_entry_point"), make_vec("sync")
    native.reset(seed=0)
    sync.reset(seed=0)
    for a, b in zip(native.call("expected_rewards", 3), sync.call("expected_rewards", 3)):
        assert np.array_equal(a, b)
    assert native.get_attr("embedding_dim") == sync.get_attr("embedding_dim") == (3, 3, 3)
    assert native.get_attr("render_mode") == sync.get_attr("render_mode") == (None, None, None)
    native.set_attr("max_episode_steps", 4)
    assert native.get_attr("max_episode_steps") == (4, 4, 4) and steps_until_truncated(native) == 4
    native.set_attr("max_episode_steps", [6, 6, 6])
    assert steps_until_truncated(native) == 6
    with pytest.raises(ValueError, match="share 'max_episode_steps'"):
        native.set_attr("max_episode_steps", [1, 2, 3])
    with pytest.raises(ValueError, match="one value per sub-environment"):
        native.set_attr("max_episode_steps", [1, 2])
    with pytest.raises(AttributeError):
        native.get_attr("no_such_attribute")


def test_set_attr_np_random_per_env():
    venv = GeneratorMediatedVectorEnv(num_envs=2, seeding="per-env")
    venv.set_attr("np_random", [np.random.default_rng(1), np.random.default_rng(2)])
    obs, _ = venv.reset()
    same = GeneratorMediatedVectorEnv(num_envs=2, seeding="per-env")
    assert np.array_equal(obs, same.reset(seed=[1, 2])[0])
    with pytest.raises(TypeError, match=r"np_random\[1\]"):
        venv.set_attr("np_random", [np.random.default_rng(1), 5])
    with pytest.raises(ValueError, match="seeding='per-env'"):
        GeneratorMediatedVectorEnv(num_envs=2).set_attr("np_random", [np.random.default_rng(1),
                                                                      np.random.default_rng(2)])


def test_vector_render_rgb_array_one_frame_per_sub_environment():
    venv = make_vec("vector_entry_point", n=2, render_mode="rgb_array", n_actions=4)
    venv.reset(seed=0)
    before = venv.render()
    venv.step(np.array([0, 3]))
    frames = venv.render()
    assert len(frames) == 2 and all(f.shape == (96, 72, 3) and f.dtype == np.uint8 for f in frames + before)
    with pytest.raises(ValueError, match="render_mode"):
        make_vec("vector_entry_point", render_mode="human")
    with pytest.raises(ValueError, match="seeding"):
        make_vec("vector_entry_point", seeding="each")


# -- custom agents on plain environments -------------------------------------------------------------
def load_custom_agent():
    spec = importlib.util.spec_from_file_location("custom_agent", ROOT / "examples" / "custom_agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["EpsilonGreedy", "BatchedEpsilonGreedy"])
def test_custom_agents_work_on_a_plain_gym_make_env_and_a_vector_env(name):
    cls = getattr(load_custom_agent(), name)
    env = gym.make(ENV_ID, max_episode_steps=50)  # TimeLimit(OrderEnforcing(PassiveEnvChecker(env)))
    agent = cls.from_env(env, seed=0)
    obs, info = env.reset(seed=0)
    for _ in range(50):
        action = agent.act(obs)
        assert type(action) is int and env.action_space.contains(action)
        next_obs, reward, _, _, info = env.step(action)
        agent.update(obs, action, reward, info)
        obs = next_obs
    res = run_bandit(ENV_ID, {name: cls}, horizon=100, replications=4, seed=0, progress=False)
    assert res.cumulative_regret[name].shape == (4, 100)


def test_the_batched_agent_route_gives_save_load_and_action_probabilities():
    module = load_custom_agent()
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    agent = module.BatchedEpsilonGreedy.from_env(venv, seed=1, epsilon=0.2)
    obs, _ = venv.reset(seed=0)
    for _ in range(30):
        actions = agent.act(obs)
        next_obs, rewards, _, _, info = venv.step(actions)
        agent.update(obs, actions, rewards, info)
        obs = next_obs
    probs = agent.action_probabilities(obs, n_draws=4000)
    greedy = np.where(agent.counts == 0, np.inf, agent.means).argmax(axis=1)
    assert probs.shape == (3, 5) and np.allclose(probs.sum(1), 1)
    # epsilon-greedy: the greedy arm with 1 - epsilon + epsilon / K, each other arm epsilon / K
    assert np.allclose(probs[np.arange(3), greedy], 0.8 + 0.2 / 5, atol=0.03)
    path = Path(tempfile.mkdtemp()) / "eps.state"
    agent.save(path)
    clone = module.BatchedEpsilonGreedy.from_env(venv, seed=9, epsilon=0.2)
    clone.load(path)
    assert np.array_equal(clone.means, agent.means) and np.array_equal(clone.act(obs), agent.act(obs))
    with pytest.raises(ValueError, match="obs"):
        agent.act(obs[:2])
