"""Save and restore: every built-in agent's explicit state, its file format and its checks."""

import json

import numpy as np
import pytest

from agents import EnsembleGAMBITTS, LinearTS, StandardTS
from agents.state import StateFileError, check_state, prefixed, unprefixed
from gambit_gym import GeneratorMediatedVectorEnv
from tests._agents import ALL_AGENTS, TINY_ENSEMBLES, build, needs_ensemble, play

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


def agent_params():
    return [pytest.param(name, marks=needs_ensemble) if name in TINY_ENSEMBLES else name for name in EVERY_AGENT]


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


@needs_ensemble
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


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_ensemble) if n in TINY_ENSEMBLES else n
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


@needs_ensemble
def test_restored_scalars_are_python_numbers(tmp_path):
    agent, venv = trained("ensemble-fo", rounds=20)
    agent.save(tmp_path / "ens.npz")
    clone = build(TINY_ENSEMBLES["ensemble-fo"], venv, 1)
    clone.load(tmp_path / "ens.npz")
    assert type(clone.n_seen) is int and clone.n_seen == 20
    assert type(clone.adam_step) is int and clone.adam_step == len(range(10, 21, 4))  # every 4th round from warm-up
    # the target standardisation is per replication: one (loc, scale) per row, from its own warm-up rewards
    assert clone.y_loc.shape == clone.y_scale.shape == (2,)
    assert np.array_equal(clone.y_loc, agent.y_loc) and np.array_equal(clone.y_scale, agent.y_scale)
    assert clone.y_loc[0] != clone.y_loc[1] and np.all(clone.y_scale != 1.0)


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


@needs_ensemble
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


# -- the state file: one name in, the same name out; everything checked before anything is loaded ------------
SEVEN_CONTEXTS = [("weather", [f"w{i}" for i in range(7)])]  # one 7-level factor: 7 contexts, 7 features


def state_of(agent):
    state = agent.state_dict()
    return state["rng"], {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state["state"].items()}


def assert_unchanged(agent, before):
    rng, state = state_of(agent)
    assert rng == before[0]
    assert all(np.array_equal(state[k], v) for k, v in before[1].items())


def write_npz(path, meta, **arrays):
    """A hand-made file: ``meta`` (a dict goes in as JSON text, anything else as it is) and arrays."""
    header = np.array(json.dumps(meta)) if isinstance(meta, dict) else meta
    with open(path, "wb") as fh:  # a handle: np.savez adds no suffix
        np.savez(fh, **({} if header is None else {"__meta__": header}), **arrays)
    return path


def test_save_writes_exactly_the_given_path_and_load_reads_it_back(tmp_path):
    agent, venv = trained("LinTS", rounds=10)
    names = ["agent.state", "agent", "agent.npz", "agent.state.npz"]
    for name in names:
        path = tmp_path / name
        assert agent.save(str(path)) == path and path.is_file()
        clone = build(ALL_AGENTS["LinTS"], venv, 99)
        clone.load(str(path))
        assert_same_state(agent, clone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no suffix added, no temporary file left


def test_save_replaces_a_file_in_one_rename(tmp_path):
    path = tmp_path / "agent.state"
    first, venv = trained("foGAMBITTS", rounds=5)
    first.save(path)
    second, _ = trained("foGAMBITTS", seed=1, rounds=30)
    second.save(path)
    clone = build(ALL_AGENTS["foGAMBITTS"], venv, 99)
    clone.load(path)
    assert_same_state(second, clone)
    assert [p.name for p in tmp_path.iterdir()] == ["agent.state"]


def test_save_to_a_folder_or_a_missing_folder_is_an_error_and_writes_nothing(tmp_path):
    agent, _ = trained("StdTS", rounds=3)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        agent.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        agent.save(tmp_path / "missing" / "agent.state")
    with pytest.raises(TypeError, match="path: expected a file name"):
        agent.save(3)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="no such file"):
        agent.load(tmp_path / "agent.state")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_state_with_nan_or_inf_is_refused_naming_the_array(tmp_path, bad):
    agent, venv = trained("LinTS", rounds=10)
    path = agent.save(tmp_path / "agent.npz")
    b = agent.state_dict()["state"]["model.b"]
    b[1, 3] = bad
    rewrite(path, {"model.b": b})
    clone = build(ALL_AGENTS["LinTS"], venv, 1)
    before = state_of(clone)
    with pytest.raises(ValueError, match=f"{path}: model.b contains NaN or infinite values"):
        clone.load(path)
    assert_unchanged(clone, before)
    state = agent.state_dict()
    state["state"]["model.chol"][0, 2, 2] = bad
    with pytest.raises(ValueError, match="state: model.chol contains NaN or infinite values"):
        clone.load_state_dict(state)
    assert_unchanged(clone, before)


@pytest.mark.parametrize(("current", "differs", "shown"), [
    ({"num_envs": 2, "contexts": SEVEN_CONTEXTS}, "n_contexts", "n_contexts=12, .*; this agent is built for "
                                                               "n_contexts=7"),
    ({"num_envs": 3}, "n_rows", "n_rows=2, .*; this agent is built for .*n_rows=3"),
    ({"num_envs": 2, "embedding_dim": 4}, "embedding_dim", "embedding_dim=3, .*embedding_dim=4"),
    ({"num_envs": 2, "variant": "misspecified", "observed_dims": [0, 1, 2]}, "variant",
     "variant='synthetic'.*variant='misspecified'"),
])
def test_a_state_saved_for_another_environment_is_refused_saying_saved_vs_current(tmp_path, current, differs,
                                                                                   shown):
    """Standard TS's arrays are (R, K) whatever the contexts, embedding or variant: only the saved
    environment signature can tell that the state belongs to another environment."""
    path = StandardTS.from_env(GeneratorMediatedVectorEnv(num_envs=2), seed=0).save(tmp_path / "agent.state")
    other = StandardTS.from_env(GeneratorMediatedVectorEnv(**current), seed=0)
    before = state_of(other)
    with pytest.raises(ValueError, match=f"{path}: saved for an environment with .*{shown}.*"
                                         rf"\(differs in {differs}\)"):
        other.load(path)
    assert_unchanged(other, before)
    with pytest.raises(ValueError, match=rf"state: saved for an environment .*\(differs in {differs}\)"):
        other.load_state_dict(StandardTS.from_env(GeneratorMediatedVectorEnv(num_envs=2), seed=0).state_dict())


def test_a_batched_state_does_not_load_into_a_single_env_agent(tmp_path):
    import gymnasium as gym

    from gambit_gym import ENV_ID

    path = StandardTS.from_env(GeneratorMediatedVectorEnv(num_envs=1), seed=0).save(tmp_path / "agent.state")
    with pytest.raises(ValueError, match=r"batched=True, .*batched=False, .*\(differs in batched\)"):
        StandardTS.from_env(gym.make(ENV_ID), seed=0).load(path)


def test_the_variant_is_compared_only_when_both_sides_know_it(tmp_path):
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    saved = StandardTS.from_env(venv, seed=0)
    play(saved, venv, 0, 10)
    path = saved.save(tmp_path / "agent.state")
    direct = StandardTS(n_actions=5, obs_dim=7, contexts=venv.contexts, embedding_dim=3, n_envs=2, seed=1)
    assert direct.env_signature()["variant"] is None
    direct.load(path)
    assert_same_state(saved, direct)


def _saved(tmp_path):
    agent, venv = trained("LinTS", rounds=10)
    path = agent.save(tmp_path / "agent.state")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
    return path, venv, meta, arrays


class _Payload:
    """Unpickling this object creates a file: proof that a loader ran code from a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def corrupt_files(tmp_path):
    """``{file: what the error must say}``: damaged, foreign and unsafe versions of a valid state file."""
    path, _, meta, arrays = _saved(tmp_path)
    data = path.read_bytes()
    files = {}

    def put(name, content, problem):
        (tmp_path / name).write_bytes(content)
        files[tmp_path / name] = problem

    for cut in (0, 10, 100, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        put(f"cut{cut}.state", data[:cut], "not a readable agent state file")
    flipped = bytearray(data)
    chol = arrays["model.chol"].tobytes()
    flipped[data.find(chol) + len(chol) // 2] ^= 0xFF  # one byte of an array's data: the CRC no longer matches
    put("flipped.state", bytes(flipped), r"model\.chol: unreadable \(truncated or corrupt\)")
    put("text.state", b"agent state\n" * 50, "not a readable agent state file")
    legacy = {k: meta[k] for k in ("class", "rng", "scalars")}  # the layout before the format marker
    bad = {
        "json": (np.array('{"class": "LinearTS", '), "the header is not valid JSON"),
        "list": (np.array("[1, 2]"), "the header is a JSON list"),
        "numbers": (np.arange(3), r"__meta__ is int64 of shape \(3,\), expected text"),
        "none": (None, "no __meta__ header"),
        "format": ({**meta, "format": "something else"}, "not a gambit-gym agent state file"),
        "legacy": (legacy, "save the agent again"),
        "version": ({**meta, "version": 99}, "agent state file version 99"),
        "env": ({k: v for k, v in meta.items() if k != "env"}, "the header's 'env' is missing"),
        "scalars": ({**meta, "scalars": [1]}, "the header's 'scalars' is missing or not a JSON object"),
    }
    for name, (header, problem) in bad.items():
        files[write_npz(tmp_path / f"{name}.state", header, **arrays)] = problem
    files[tmp_path / "foreign.npz"] = "no __meta__ header"
    np.savez(tmp_path / "foreign.npz", x=np.arange(3))
    marker = tmp_path / "code-ran"
    pickled = {**arrays, "model.b": np.array([[_Payload(marker)] * 13] * 2, dtype=object)}
    files[write_npz(tmp_path / "pickled.state", meta, **pickled)] = r"model\.b: holds Python objects \(a pickle\)"
    return files, marker


def test_damaged_foreign_and_pickled_files_give_a_state_file_error_naming_the_file(tmp_path):
    files, marker = corrupt_files(tmp_path)
    agent = LinearTS.from_env(GeneratorMediatedVectorEnv(num_envs=2), seed=3)
    before = state_of(agent)
    for path, problem in files.items():
        with pytest.raises(StateFileError, match=problem) as err:
            agent.load(path)
        assert type(err.value) is StateFileError and str(err.value).startswith(f"{path}: ")
        # no raw BadZipFile / EOFError / JSONDecodeError shown behind it
        assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    assert_unchanged(agent, before)
    assert not marker.exists()  # the pickle was never loaded
    with np.load(tmp_path / "pickled.state", allow_pickle=True) as data:  # the payload is live: a pickle loader
        data["model.b"]                                                   # runs it
    assert marker.exists()


def test_a_corrupt_random_stream_state_is_named(tmp_path):
    path, venv, meta, arrays = _saved(tmp_path)
    write_npz(path, {**meta, "rng": {"bit_generator": "PCG64", "state": {"state": "x", "inc": 1}}}, **arrays)
    agent = LinearTS.from_env(venv, seed=3)
    before = state_of(agent)
    with pytest.raises(ValueError, match=f"{path}: rng is not a state of a PCG64 random stream"):
        agent.load(path)
    assert_unchanged(agent, before)


def test_an_oversized_array_is_refused_before_it_is_read(tmp_path):
    """The shape is checked against the live state from the array's header, before its bytes are read."""
    path, venv, meta, arrays = _saved(tmp_path)
    write_npz(path, meta, **{**arrays, "model.yy": np.zeros(1_000_000)})
    with pytest.raises(ValueError, match=rf"{path}: model.yy has shape \(1000000,\), expected \(2,\)"):
        LinearTS.from_env(venv, seed=3).load(path)
