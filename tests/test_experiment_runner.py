"""The resumable runner: backends, results files, resuming, refusing changed definitions, failures."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from agents import StandardTS, run_bandit
from agents.cli import main as cli
from agents.experiments import Experiment, ExperimentError, read_results, run_experiment, run_experiments
from agents.experiments.runner import regret_rounds, write_atomic
from agents.results import standard_error
from gambit_gym import ENV_ID
from tests._experiments import ROOT, TINY, csv_texts, slow_definition


@pytest.mark.slow
def test_serial_and_process_backends_give_identical_numbers(tmp_path):
    exp = Experiment.from_dict(TINY)
    run_experiments([exp], tmp_path / "serial", backend="serial", progress=False)
    run_experiments([exp], tmp_path / "process", backend="process", workers=2, progress=False)
    serial = csv_texts(tmp_path / "serial" / "tiny")
    assert len(serial) == 2 and csv_texts(tmp_path / "process" / "tiny") == serial


@pytest.mark.ray
def test_ray_backend_gives_the_same_numbers_as_serial(tmp_path):
    """Ray tasks on a local Ray instance started by the test write the serial backend's numbers."""
    ray = pytest.importorskip("ray")
    exp = Experiment.from_dict(TINY)
    run_experiments([exp], tmp_path / "serial", backend="serial", progress=False)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        run_experiments([exp], tmp_path / "ray", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert csv_texts(tmp_path / "ray" / "tiny") == csv_texts(tmp_path / "serial" / "tiny")


def test_results_hold_tidy_rows_for_every_agent_round_and_replication(tmp_path):
    exp = Experiment.from_dict(TINY)
    files = run_experiments([exp], tmp_path, backend="serial", progress=False)["tiny"]
    rows = read_results(files[0])
    assert {r["agent"] for r in rows} == {"po", "StdTS", "ens"}
    assert rows[0]["n_actions"] == "3" and rows[0]["experiment"] == "tiny"
    mean = [r["value"] for r in rows if r["agent"] == "po" and r["statistic"] == "mean"]
    final = [r["value"] for r in rows if r["agent"] == "po" and r["statistic"] == "final"]
    assert len(mean) == 40 and len(final) == 3
    assert np.isclose(np.mean(final), mean[-1]) and np.all(np.diff(mean) >= 0)


def test_run_experiment_writes_one_experiment_as_run_bandit_computes_it(tmp_path):
    """``run_experiment``: the files of one experiment, in grid order, holding run_bandit's numbers."""
    exp = Experiment.from_dict({**TINY, "agents": {"StdTS": {"type": "StandardTS"}}})
    files = run_experiment(exp, tmp_path, backend="serial", progress=False)
    assert files == [tmp_path / "tiny" / "n_actions=3.csv", tmp_path / "tiny" / "n_actions=5.csv"]
    res = run_bandit(ENV_ID, {"StdTS": StandardTS}, horizon=40, replications=3, seed=5,
                     env_kwargs={"variant": "synthetic", "n_actions": 5}, progress=False)
    reg = res.cumulative_regret["StdTS"]
    rows = read_results(files[1])
    stat = {s: [r["value"] for r in rows if r["statistic"] == s] for s in ("mean", "se", "final")}
    assert stat["mean"] == reg.mean(axis=0).tolist() and stat["final"] == reg[:, -1].tolist()
    assert stat["se"] == standard_error(reg, axis=0).tolist()
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert run_experiment(exp, tmp_path, backend="serial", progress=False) == files  # resumed: nothing to run
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    with pytest.raises(ValueError, match="backend"):  # the keywords reach run_experiments
        run_experiment(exp, tmp_path, backend="slurm")


def test_one_replication_has_no_standard_error(tmp_path):
    exp = Experiment.from_dict({**TINY, "replications": 1, "agents": {"StdTS": {"type": "StandardTS"}}})
    rows = read_results(run_experiment(exp, tmp_path, backend="serial", progress=False)[0])
    se = [r["value"] for r in rows if r["statistic"] == "se"]
    assert len(se) == 40 and all(math.isnan(v) for v in se)


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
    """Kill a sweep part-way (SIGKILL); the rerun keeps the finished configs and matches an uninterrupted run."""
    definition = slow_definition(tmp_path)
    args = [sys.executable, "-m", "agents.cli", "experiment", "run", str(definition), "--backend", "serial",
            "--quiet"]
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed_dir)], cwd=ROOT)
    folder = killed_dir / "resume"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(folder.glob("*.csv"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in folder.glob("*.csv")}
    assert 2 <= len(done) < 6, "the sweep should have been killed part-way"
    per_agent = 2 * 400 + 20 + 1 + 20 * len(regret_rounds(400))  # mean, se, final, seconds, regret rows
    for text in (t for _, t in done.values()):  # whatever is there is complete
        assert len(text.splitlines()) == 1 + 2 * per_agent

    assert cli(["experiment", "run", str(definition), "--backend", "serial", "--quiet", "--out", str(killed_dir)]) == 0
    for name, (mtime, text) in done.items():  # not recomputed
        assert (folder / name).stat().st_mtime_ns == mtime and (folder / name).read_text() == text
    assert not list(folder.glob(".*.tmp"))

    whole = tmp_path / "whole"
    assert cli(["experiment", "run", str(definition), "--backend", "serial", "--quiet", "--out", str(whole)]) == 0
    assert csv_texts(folder) == csv_texts(whole / "resume")
    assert len(csv_texts(folder)) == 6


def test_results_file_is_absent_or_complete(tmp_path, monkeypatch):
    """A write that fails part-way leaves no results file and removes its own temporary; a temporary left by a
    killed runner is removed by the next run (which holds the folder's lock)."""
    target = tmp_path / "x.csv"

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "a,b\n1,2\n")
    assert not target.exists() and not list(tmp_path.iterdir())
    monkeypatch.undo()
    exp = Experiment.from_dict({**TINY, "name": "x"})
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / ".n_actions=3.csv.1.tmp").write_text("half")
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    assert not list((tmp_path / "x").glob(".*.tmp"))


def test_changed_definition_is_refused_on_resume(tmp_path):
    exp = Experiment.from_dict(TINY)
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    with pytest.raises(ExperimentError, match="different definition.*replications"):
        run_experiments([exp.with_overrides(replications=4)], tmp_path, backend="serial", progress=False)
    reordered = Experiment.from_dict({**TINY, "agents": dict(reversed(list(TINY["agents"].items())))})
    with pytest.raises(ExperimentError, match="changed: agents"):  # agent seeds follow their order
        run_experiments([reordered], tmp_path, backend="serial", progress=False)
    described = Experiment.from_dict({**TINY, "description": "same numbers, new words"})
    run_experiments([described], tmp_path, backend="serial", progress=False)  # only the description changed


def test_a_definition_fixed_before_anything_ran_is_accepted(tmp_path):
    typo = Experiment.from_dict({**TINY, "env": {"variant": "synthetic", "n_actionz": 3}})
    with pytest.raises(ExperimentError, match=r"config n_actions=3: env: .*n_actionz"):
        run_experiments([typo], tmp_path, backend="serial", progress=False)
    run_experiments([Experiment.from_dict(TINY)], tmp_path, backend="serial", progress=False)


def test_bad_agent_option_fails_before_the_sweep_starts(tmp_path):
    exp = Experiment.from_dict({**TINY, "agents": {"po": {"type": "PoGAMBITTS", "n_ofline": 3}}})
    with pytest.raises(ExperimentError, match=r"agents\.po: .*n_ofline"):
        run_experiments([exp], tmp_path, backend="serial", progress=False)
    assert not list(tmp_path.rglob("*.csv"))


EXPLODING = {**TINY, "agents": {"x": {"type": "tests._experiments:ExplodingAgent"}}}


def test_a_failing_config_is_named_and_the_others_are_saved(tmp_path):
    exp = Experiment.from_dict(EXPLODING)
    with pytest.raises(RuntimeError, match="tiny/n_actions=5: RuntimeError: boom"):
        run_experiments([exp], tmp_path, backend="serial", progress=False)
    assert [p.name for p in (tmp_path / "tiny").glob("*.csv")] == ["n_actions=3.csv"]


def test_runner_rejects_bad_arguments(tmp_path):
    exp = Experiment.from_dict(TINY)
    with pytest.raises(ValueError, match="backend"):
        run_experiments([exp], tmp_path, backend="slurm")
    with pytest.raises(ValueError, match="workers"):
        run_experiments([exp], tmp_path, workers=0)
    with pytest.raises(TypeError, match="workers"):
        run_experiments([exp], tmp_path, workers=1.5)
    with pytest.raises(ValueError, match="share a name"):
        run_experiments([exp, exp], tmp_path)
    with pytest.raises(ExperimentError, match="replications"):
        exp.with_overrides(replications=0)


# -- data files: relative paths, and a cache replaced at the same path ------------------------------------
CACHED_EXPERIMENT = """
name = "mine"
horizon = 12
replications = 2
seed = 3
[env]
variant = "cached-llm"
cache_path = "data/c.npz"
n_actions = 3
[agents.StdTS]
type = "StandardTS"
[sweep]
"env.n_actions" = [2, 3]
"""


def test_a_relative_cache_path_is_the_experiment_files_and_a_replaced_cache_is_refused(tmp_path, monkeypatch):
    from tests._domains import handmade_cache

    folder = tmp_path / "sub"
    (folder / "data").mkdir(parents=True)
    handmade_cache(folder / "data" / "c.npz", seed=0)
    (folder / "exp.toml").write_text(CACHED_EXPERIMENT)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the path is the file's, not the working directory's
    exp = Experiment.from_file("../sub/exp.toml")
    assert exp.folder == folder.resolve() and exp.with_overrides(horizon=5).folder == exp.folder
    assert {c.env["cache_path"] for c in exp.configs()} == {str((folder / "data" / "c.npz").resolve())}
    out = tmp_path / "out"
    first = run_experiment(exp, out, backend="serial", progress=False)
    written = (out / "mine" / "experiment.json").read_text()
    assert '"cache_path": "data/c.npz"' in written and '"data"' in written  # the path as written, its content's hash
    texts = csv_texts(out / "mine")
    assert len(first) == 2 and len(texts) == 2
    # moved together with its data, the folder's results stay valid and resume
    moved = tmp_path / "moved"
    folder.rename(moved)
    (out / "mine" / first[1].name).unlink()
    run_experiment(Experiment.from_file(moved / "exp.toml"), out, backend="serial", progress=False)
    assert csv_texts(out / "mine") == texts  # unchanged cache: resumed, the same numbers
    handmade_cache(moved / "data" / "c.npz", seed=1)  # another cache at the same path
    with pytest.raises(ExperimentError, match=r"different definition .*\(changed: data\)"):
        run_experiment(Experiment.from_file(moved / "exp.toml"), out, backend="serial", progress=False)


def test_results_written_before_data_fingerprints_resume_with_a_warning(tmp_path):
    import json

    exp = Experiment.from_dict({**TINY, "env": {"variant": "cached-llm"}, "agents": {"StdTS": {"type": "StandardTS"}},
                                "horizon": 10, "replications": 2})
    run_experiment(exp, tmp_path, backend="serial", progress=False)
    meta = tmp_path / "tiny" / "experiment.json"
    old = json.loads(meta.read_text())
    assert set(old["data"]) == {"n_actions=3", "n_actions=5"}
    del old["data"]  # as written before the runner recorded the data files
    meta.write_text(json.dumps(old))
    with pytest.warns(UserWarning, match="predate the record of the data files"):
        run_experiment(exp, tmp_path, backend="serial", progress=False)
    assert "data" in json.loads(meta.read_text())  # recorded now: a replaced file is caught from here on
    synthetic = Experiment.from_dict({**TINY, "name": "plain", "agents": {"StdTS": {"type": "StandardTS"}}})
    assert synthetic.definition()["data"] == {}


# -- progress inside a config ---------------------------------------------------------------------------
def test_run_config_reports_its_steps_as_it_runs_and_changes_no_number():
    from agents.experiments.runner import TICK_ROUNDS, config_steps, run_config

    exp = Experiment.from_dict({**TINY, "horizon": 120, "block_size": 2,
                                "agents": {"StdTS": {"type": "StandardTS"}, "lin": {"type": "LinearTS"}}})
    config = exp.configs()[0]
    ticks: list[int] = []
    observed = run_config(config, ticks.append)
    assert sum(ticks) == config_steps(config) == 2 * 3 * 120
    blocks, reports = 2, -(-120 // TICK_ROUNDS)  # replications 3 in blocks of 2; every 50 rounds and the last
    assert len(ticks) == 2 * blocks * reports and ticks[:3] == [2 * TICK_ROUNDS, 2 * TICK_ROUNDS, 2 * 20]
    plain = run_config(config)
    for agent, result in plain.items():
        for key in ("mean", "se", "final", "regret"):
            assert np.array_equal(observed[agent][key], result[key]), (agent, key)


@pytest.mark.parametrize("backend", ["serial", pytest.param("process", marks=pytest.mark.slow)])
def test_the_progress_bar_counts_the_steps_of_every_config(tmp_path, capsys, backend):
    exp = Experiment.from_dict({**TINY, "horizon": 60, "agents": {"StdTS": {"type": "StandardTS"}}})
    run_experiments([exp], tmp_path, backend=backend, workers=2, progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in bar if "step" in line][-1]
    assert "configs 2/2" in last and "360/360" in last, last  # 2 configs x 1 agent x 3 replications x 60 rounds
    assert csv_texts(tmp_path / "tiny") == csv_texts(_quiet_run(tmp_path / "quiet", exp))


def _quiet_run(out, exp):
    run_experiments([exp], out, backend="serial", progress=False)
    return out / exp.name
