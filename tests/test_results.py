"""BanditResult: what run_bandit records, lossless files, tidy tables, paired differences, the per-round callback."""

import io
import json
import zipfile

import numpy as np
import pytest

from agents import BanditResult, LinearTS, PoGAMBITTS, StandardTS, run_bandit
from agents.datafiles import HEADER, DataFileError, write_npz
from agents.results import RESULT_FORMAT, RESULT_VERSION, standard_error
from gambit_gym import ENV_ID
from tests._agents import ALL_AGENTS


@pytest.fixture(scope="module")
def result():
    return run_bandit(ENV_ID, {"StdTS": StandardTS, "LinTS": (LinearTS, {"interactions": True}),
                               "po": (PoGAMBITTS, {"n_offline": 20})},
                      horizon=30, replications=4, seed=3, block_size=3, progress=False)


def assert_same(a: BanditResult, b: BanditResult) -> None:
    for attr in ("cumulative_regret", "rewards", "actions", "optimal"):
        x, y = getattr(a, attr), getattr(b, attr)
        assert list(x) == list(y), attr
        for name in x:
            assert x[name].dtype == y[name].dtype and np.array_equal(x[name], y[name]), (attr, name)
    for attr in ("horizon", "replications", "seed", "n_actions", "config", "seconds", "versions"):
        assert getattr(a, attr) == getattr(b, attr), attr


def test_run_bandit_records_rewards_actions_and_optimal_actions(result):
    K = 5
    assert result.n_actions == K and result.agents == ["StdTS", "LinTS", "po"]
    for name in result.agents:
        reg, acts = result.cumulative_regret[name], result.actions[name]
        assert acts.dtype == np.int64 and acts.min() >= 0 and acts.max() < K
        assert result.rewards[name].shape == reg.shape and np.isfinite(result.rewards[name]).all()
        per_round = np.diff(reg, axis=1, prepend=0.0)
        # an optimal action adds exactly nothing to the cumulative regret; any other adds something
        assert np.array_equal(result.optimal[name], per_round == 0.0)
        counts = result.arm_counts(name)
        assert counts.shape == (4, K) and np.array_equal(counts.sum(axis=1), np.full(4, 30))
        assert np.allclose(result.optimal_action_rate(name), result.optimal[name].mean(axis=0))
    s = result.summary()["po"]
    assert s["optimal_rate"] == pytest.approx(result.optimal["po"].mean())
    assert s["mean_reward"] == pytest.approx(result.rewards["po"].mean())


def test_config_names_each_agent_and_the_environment_seeds(result):
    cfg = result.config
    assert cfg["agents"]["LinTS"] == {"type": "agents.thompson.LinearTS", "kwargs": {"interactions": True},
                                      "env_streams": "run_bandit"}
    assert cfg["block_size"] == 3 and len(cfg["env_reset_seeds"]) == 2  # replications 0-2, then 3
    assert {"python", "gambit-gym", "numpy", "gymnasium"} <= set(result.versions)
    json.dumps(cfg)  # JSON values only


def test_save_then_load_gives_the_same_result(result, tmp_path):
    path = result.save(tmp_path / "run.npz")
    assert_same(result, BanditResult.load(path))
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temporary file left behind
    minimal = BanditResult({"a": np.array([[0.0, 1.5]])}, horizon=2, replications=1, seed=0)
    assert_same(minimal, BanditResult.load(minimal.save(tmp_path / "run.npz")))  # replaces the file


def test_a_failed_save_leaves_the_previous_file_whole(result, tmp_path):
    path = result.save(tmp_path / "run.npz")
    before = path.read_bytes()
    with pytest.raises(TypeError, match="Python objects"):
        write_npz(path, {"format": RESULT_FORMAT}, {"regret/0": np.array([None, 1], dtype=object)})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["run.npz"]


def write_raw(path, header, arrays):
    """An .npz as anyone could write it (no checks), with a JSON header."""
    np.savez(path, **{HEADER: np.array(json.dumps(header))}, **arrays)


def good_header(**changes):
    header = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "agents": ["a"], "horizon": 2,
              "replications": 1, "seed": 0, "n_actions": 3, "config": {}, "seconds": {}, "versions": {}}
    return {**header, **changes}


@pytest.mark.parametrize("header, arrays, message", [
    (good_header(format="something-else"), {"regret/0": np.zeros((1, 2))}, "not a gambit-gym"),
    (good_header(version=99), {"regret/0": np.zeros((1, 2))}, "version 99"),
    (good_header(), {}, "no regret array for agent 'a'"),
    (good_header(), {"regret/0": np.zeros((2, 2))}, r"regret/0 \('a'\): expected float64 of shape \(1, 2\)"),
    (good_header(), {"regret/0": np.array([[0.0, np.nan]])}, "NaN"),
    (good_header(), {"regret/0": np.zeros((1, 2)), "action/0": np.array([[0, 3]])}, "expected actions in 0 .. 2"),
    (good_header(), {"regret/0": np.zeros((1, 2)), "extra": np.zeros(1)}, "unexpected arrays"),
    (good_header(horizon=-2), {"regret/0": np.zeros((1, 2))}, "header 'horizon'"),
    (good_header(agents="a"), {"regret/0": np.zeros((1, 2))}, "header 'agents'"),
])
def test_load_names_what_is_wrong(tmp_path, header, arrays, message):
    path = tmp_path / "bad.npz"
    write_raw(path, header, arrays)
    with pytest.raises(DataFileError, match=message):
        BanditResult.load(path)


def test_load_refuses_missing_truncated_foreign_and_pickled_files(result, tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        BanditResult.load(tmp_path / "absent.npz")
    data = result.save(tmp_path / "run.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="not a readable"):
        BanditResult.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(DataFileError, match="not a gambit-gym"):
        BanditResult.load(tmp_path / "foreign.npz")
    # an object array would run code when unpickled: here it would create a file
    marker = tmp_path / "unpickled"
    evil = np.empty(1, dtype=object)
    evil[0] = Touch(str(marker))
    write_raw(tmp_path / "evil.npz", good_header(), {"regret/0": evil})
    with pytest.raises(DataFileError, match="dtype object"):
        BanditResult.load(tmp_path / "evil.npz")
    assert not marker.exists()


class Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib

        return pathlib.Path(self.path).touch, ()


def test_load_checks_sizes_before_reading(tmp_path):
    path = tmp_path / "big.npz"
    write_raw(path, good_header(), {"regret/0": np.zeros((1, 2))})
    with pytest.raises(DataFileError, match="limit"):
        BanditResult.load(path, max_bytes=100)
    # a member whose header claims far more data than it holds is refused without allocating it
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (10**12,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("reward/0.npy", buf.getvalue() + b"\0" * 8)
    with pytest.raises(DataFileError, match="needs 8,000,000,000,000 bytes"):
        BanditResult.load(path)


def test_to_pandas_is_tidy(result):
    pytest.importorskip("pandas")
    df = result.to_pandas()
    assert list(df.columns) == ["agent", "replication", "round", "cumulative_regret", "regret", "reward", "action",
                                "optimal"]
    assert len(df) == 3 * 4 * 30 and list(df["agent"].cat.categories) == result.agents
    po = df[df["agent"] == "po"]
    assert np.array_equal(po["cumulative_regret"].to_numpy().reshape(4, 30), result.cumulative_regret["po"])
    assert np.array_equal(po["action"].to_numpy(dtype=np.int64).reshape(4, 30), result.actions["po"])
    assert po["round"].min() == 1 and po["round"].max() == 30 and po["replication"].max() == 3
    assert np.allclose(po.groupby("replication")["regret"].sum(), result.cumulative_regret["po"][:, -1])


def test_to_pandas_leaves_unrecorded_columns_missing():
    pytest.importorskip("pandas")
    res = BanditResult({"a": np.array([[1.0, 2.0]]), "b": np.array([[0.0, 0.0]])}, horizon=2, replications=1,
                       seed=0, actions={"b": np.array([[1, 1]])}, n_actions=2)
    df = res.to_pandas()
    assert "reward" not in df and df["action"].isna().tolist() == [True, True, False, False]


def test_paired_difference_is_the_mean_and_se_of_per_replication_differences(result):
    d = result.paired_difference("po", "StdTS")
    diff = result.cumulative_regret["po"][:, -1] - result.cumulative_regret["StdTS"][:, -1]
    assert d["mean"] == pytest.approx(diff.mean()) and d["se"] == pytest.approx(standard_error(diff))
    assert d["n"] == 4 and d["common_random_numbers"] is True
    unknown = BanditResult({"a": np.ones((3, 1)), "b": np.zeros((3, 1))}, horizon=1, replications=3, seed=0)
    assert unknown.paired_difference("a", "b")["common_random_numbers"] is False
    with pytest.raises(KeyError, match="'nope' is not in this result"):
        result.paired_difference("nope", "po")


def test_agents_of_one_run_meet_the_same_contexts_so_pairing_is_exact():
    contexts = {}

    def keep(rnd):
        contexts.setdefault(rnd.agent_name, []).append(np.array(rnd.info["played_context"]))

    res = run_bandit(ENV_ID, {"StdTS": StandardTS, "LinTS": LinearTS}, horizon=40, replications=6, seed=2,
                     callback=keep, progress=False)
    assert not np.array_equal(res.actions["StdTS"], res.actions["LinTS"])
    assert np.array_equal(np.stack(contexts["StdTS"]), np.stack(contexts["LinTS"]))


def test_callback_sees_every_round_of_every_block_before_the_update():
    seen = []

    def check(rnd):
        seen.append((rnd.agent_name, rnd.t, tuple(rnd.replications)))
        assert rnd.obs.shape == (len(rnd.replications), 7) and rnd.rewards.shape == rnd.actions.shape
        # before the update: the agent has learned from t rounds, not t + 1
        assert np.array_equal(rnd.agent.posterior.count.sum(axis=1), np.full(len(rnd.replications), rnd.t))

    res = run_bandit(ENV_ID, {"StdTS": StandardTS}, horizon=5, replications=5, seed=0, block_size=3,
                     callback=check, progress=False)
    assert seen == [("StdTS", t, (0, 1, 2)) for t in range(5)] + [("StdTS", t, (3, 4)) for t in range(5)]
    assert res.cumulative_regret["StdTS"].shape == (5, 5)
    with pytest.raises(TypeError, match="callback"):
        run_bandit(ENV_ID, {"StdTS": StandardTS}, horizon=5, replications=2, callback="print", progress=False)


def test_recording_and_callbacks_change_no_action_or_regret():
    kwargs = dict(horizon=60, replications=5, seed=1, env_kwargs={"n_actions": 4}, progress=False)
    plain = run_bandit(ENV_ID, ALL_AGENTS, **kwargs)
    watched = run_bandit(ENV_ID, ALL_AGENTS, callback=lambda rnd: None, **kwargs)
    for name in ALL_AGENTS:
        assert np.array_equal(plain.cumulative_regret[name], watched.cumulative_regret[name])
        assert np.array_equal(plain.actions[name], watched.actions[name])


@pytest.mark.slow
def test_sb3_agents_are_recorded_like_the_others(tmp_path):
    pytest.importorskip("stable_baselines3")
    rounds = []
    res = run_bandit(ENV_ID, {"A2C": "sb3:A2C", "StdTS": StandardTS}, horizon=25, replications=2, seed=0,
                     callback=lambda rnd: rounds.append((rnd.agent_name, rnd.t, int(rnd.replications[0]))),
                     progress=False)
    assert [r for r in rounds if r[0] == "A2C"] == [("A2C", t, i) for i in range(2) for t in range(25)]
    per_round = np.diff(res.cumulative_regret["A2C"], axis=1, prepend=0.0)
    assert np.array_equal(res.optimal["A2C"], per_round == 0.0)
    assert res.arm_counts("A2C").sum() == 50 and res.config["agents"]["A2C"]["env_streams"] == "sb3"
    assert res.paired_difference("A2C", "StdTS")["common_random_numbers"] is False
    assert "stable-baselines3" in res.versions and "torch" in res.versions
    assert_same(res, BanditResult.load(res.save(tmp_path / "sb3.npz")))
