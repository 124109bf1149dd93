"""Save and restore: every built-in agent's explicit state, its file format and its checks."""

import json

import numpy as np
import pytest

from agents import EnsembleGAMBITTS, LinearTS, StandardTS
from agents.state import check_state, prefixed, unprefixed
from gambit_gym import GeneratorMediatedVectorEnv
from tests._agents import ALL_AGENTS, HAS_TORCH, TINY_ENSEMBLES, build, needs_torch, play

EVERY_AGENT = {**ALL_AGENTS, **TINY_ENSEMBLES}
#: the arrays and scalars that make each agent's state, by name (R = 2 replications of the default env:
#: 12 contexts, K = 5 prompts, d = 3, 7 observation features)
STATE_NAMES = {
    "StdTS": {"posterior.count", "posterior.mean", "posterior.ssq"},
    "LinTS": {"model.chol", "model.b", "model.yy", "model.n"},
    "poGAMBITTS": {"model.chol", "model.b", "model.yy", "model.n", "treatment_means"},
    "foGAMBITTS": {"model.chol", "model.b", "model.yy", "model.n", "treatment.mean", "treatment.chol_psi",
                   "treatment.kappa", "treatment.nu"},
    "ensemble-po": {*(f"{g}.{k}" for g in ("weights", "adam_m", "adam_v") for k in ("w1", "b1", "w2", "b2")),
                    "adam_step", "buffer.x", "buffer.y", "buffer.eps", "n_seen", "y_loc", "y_scale",
                    "noise.chol", "noise.b", "noise.yy", "noise.n", "bank"},
}
STATE_NAMES["ensemble-fo"] = STATE_NAMES["ensemble-po"] - {"bank"} | {f"treatment.{k}" for k in
                                                                       ("mean", "chol_psi", "kappa", "nu")}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The ensemble's float32 products repeat exactly on one thread."""
    if not HAS_TORCH:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def agent_params():
    return [pytest.param(name, marks=needs_torch) if name in TINY_ENSEMBLES else name for name in EVERY_AGENT]


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["class"] == sb["class"] and sa["rng"] == sb["rng"]
    assert set(sa["state"]) == set(sb["state"])
    for name, value in sa["state"].items():
        other = sb["state"][name]
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype and np.array_equal(other, value), name
        else:
            assert type(other) is type(value) and other == value, name


def trained(name, seed=0, rounds=40):
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = build(EVERY_AGENT[name], venv, seed)
    play(agent, venv, 0, rounds)
    return agent, venv


@pytest.mark.parametrize("name", agent_params())
def test_save_and_load_continue_exactly_like_the_original(name, tmp_path):
    agent, venv = trained(name)
    agent.save(tmp_path / "agent.npz")
    clone = build(EVERY_AGENT[name], venv, 99)  # different seed: everything must come from the file
    clone.load(tmp_path / "agent.npz")
    assert_same_state(agent, clone)
    env_a, env_b = GeneratorMediatedVectorEnv(num_envs=2), GeneratorMediatedVectorEnv(num_envs=2)
    assert np.array_equal(play(agent, env_a, 5, 30), play(clone, env_b, 5, 30))
    assert_same_state(agent, clone)


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


@needs_torch
@pytest.mark.parametrize("simulation", [True, False])
def test_ensemble_save_restore_round_trip(tmp_path, simulation):
    kwargs = dict(n_members=4, warmup=10, simulation=simulation)
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = EnsembleGAMBITTS.from_env(venv, seed=0, **kwargs)
    play(agent, venv, 0, 40)
    agent.save(tmp_path / "ens.npz")
    clone = EnsembleGAMBITTS.from_env(venv, seed=123, **kwargs)
    clone.load(tmp_path / "ens.npz")
    env_a, env_b = GeneratorMediatedVectorEnv(num_envs=2), GeneratorMediatedVectorEnv(num_envs=2)
    assert np.array_equal(play(agent, env_a, 5, 30), play(clone, env_b, 5, 30))


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_torch) if n in TINY_ENSEMBLES else n
                                  for n in STATE_NAMES])
def test_each_agent_lists_exactly_its_state(name, tmp_path):
    agent, _ = trained(name, rounds=15)
    state = agent.state_dict()["state"]
    assert set(state) == STATE_NAMES[name]
    agent.save(tmp_path / "agent.npz")
    with np.load(tmp_path / "agent.npz", allow_pickle=False) as data:  # plain arrays and JSON: no pickle
        meta = json.loads(str(data["__meta__"]))
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
    assert set(arrays) == {k for k, v in state.items() if isinstance(v, np.ndarray)}
    assert set(meta["scalars"]) == {k for k, v in state.items() if not isinstance(v, np.ndarray)}
    assert meta["class"] == type(agent).__name__
    assert all(arrays[k].shape == state[k].shape for k in arrays)


def test_state_is_a_copy():
    agent, _ = trained("foGAMBITTS", rounds=5)
    state = agent.state_dict()["state"]
    state["treatment.mean"][:] = 123.0
    assert not np.any(agent.treatment.mean == 123.0)


@needs_torch
def test_restored_scalars_are_python_numbers(tmp_path):
    agent, venv = trained("ensemble-fo", rounds=20)
    agent.save(tmp_path / "ens.npz")
    clone = build(TINY_ENSEMBLES["ensemble-fo"], venv, 1)
    clone.load(tmp_path / "ens.npz")
    assert type(clone.n_seen) is int and clone.n_seen == 20
    assert type(clone.adam_step) is int and clone.adam_step == 20 - 10 + 1  # one step per round from warm-up on
    assert type(clone.y_loc) is float and type(clone.y_scale) is float
    assert clone.y_loc == agent.y_loc and clone.y_scale == agent.y_scale != 1.0


def rewrite(path, arrays=None, scalars=None):
    """The file at ``path`` with some arrays / header scalars replaced."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        stored = {k: data[k] for k in data.files if k != "__meta__"}
    stored.update(arrays or {})
    meta["scalars"].update(scalars or {})
    np.savez(path, __meta__=np.array(json.dumps(meta)), **stored)


def test_a_wrong_shaped_array_is_named_and_nothing_is_loaded(tmp_path):
    agent, venv = trained("foGAMBITTS", rounds=10)
    agent.save(tmp_path / "fo.npz")
    rewrite(tmp_path / "fo.npz", {"treatment.kappa": np.ones((2, 3))})
    clone = build(ALL_AGENTS["foGAMBITTS"], venv, 1)
    before = clone.state_dict()
    with pytest.raises(ValueError, match=r"treatment\.kappa has shape \(2, 3\), expected \(2, 60\)"):
        clone.load(tmp_path / "fo.npz")
    after = clone.state_dict()
    assert after["rng"] == before["rng"]
    assert all(np.array_equal(after["state"][k], v) for k, v in before["state"].items())


def test_a_wrong_dtype_or_a_missing_or_unknown_array_is_named(tmp_path):
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    LinearTS.from_env(venv, seed=0).save(tmp_path / "lin.npz")
    rewrite(tmp_path / "lin.npz", {"model.b": np.zeros((2, 13), dtype=np.float32)})
    with pytest.raises(ValueError, match="model.b has dtype float32"):
        LinearTS.from_env(venv, seed=0).load(tmp_path / "lin.npz")
    rewrite(tmp_path / "lin.npz", {"model.b": np.zeros((2, 13)), "model.extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected \['model.extra'\]"):
        LinearTS.from_env(venv, seed=0).load(tmp_path / "lin.npz")


@needs_torch
def test_a_scalar_of_the_wrong_kind_is_named(tmp_path):
    agent, venv = trained("ensemble-po", rounds=12)
    agent.save(tmp_path / "ens.npz")
    rewrite(tmp_path / "ens.npz", scalars={"n_seen": 12.5})
    with pytest.raises(TypeError, match="n_seen must be an integer"):
        build(TINY_ENSEMBLES["ensemble-po"], venv, 0).load(tmp_path / "ens.npz")


def test_loading_state_of_another_agent_fails(tmp_path):
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    LinearTS.from_env(venv, seed=0).save(tmp_path / "lin.npz")
    with pytest.raises(ValueError, match="LinearTS"):
        StandardTS.from_env(venv, seed=0).load(tmp_path / "lin.npz")


def test_check_state_and_prefixes():
    live = {"n": 0, "loc": 0.0, "x": np.zeros((2, 3))}
    out = check_state("thing", live, {"n": np.int64(4), "loc": 2, "x": np.ones((2, 3))})
    assert type(out["n"]) is int and type(out["loc"]) is float and out["loc"] == 2.0
    given = np.ones((2, 3))
    assert check_state("thing", live, {**out, "x": given})["x"] is not given  # copied
    with pytest.raises(ValueError, match=r"thing: state names differ: missing \['x'\], unexpected \['y'\]"):
        check_state("thing", live, {"n": 1, "loc": 1.0, "y": np.zeros((2, 3))})
    with pytest.raises(TypeError, match="thing: x must be an array"):
        check_state("thing", live, {"n": 1, "loc": 1.0, "x": 3.0})
    with pytest.raises(TypeError, match="thing: loc must be a real number"):
        check_state("thing", live, {"n": 1, "loc": "far", "x": np.zeros((2, 3))})
    with pytest.raises(TypeError, match="thing: loc must be a real number"):
        check_state("thing", live, {"n": 1, "loc": True, "x": np.zeros((2, 3))})
    with pytest.raises(TypeError, match="thing: expected a mapping"):
        check_state("thing", live, [("n", 1)])
    assert prefixed("model", {"b": 1}) == {"model.b": 1}
    assert unprefixed("model", {"model.b": 1, "models.c": 2, "treatment.b": 3}) == {"b": 1}
