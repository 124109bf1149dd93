"""Experiments: definitions, the resumable runner, the backends, the report and the CLI."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.experiments import (
    PAPER_ORDER,
    Experiment,
    ExperimentError,
    check_findings,
    load_experiment,
    load_results,
    named_experiments,
    read_results,
    run_experiments,
    write_report,
)
from agents.experiments.runner import config_table, write_atomic
from gambit_gym.cli import main as cli
from tests.conftest import ENV_ID

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny", "horizon": 40, "replications": 3, "seed": 5,
    "env": {"variant": "synthetic"},
    "agents": {"po": {"type": "PoGAMBITTS", "n_offline": 20}, "StdTS": {"type": "StandardTS"},
               "ens": {"type": "EnsembleGAMBITTS", "n_members": 3, "warmup": 10, "batch_size": 8}},
    "sweep": {"env.n_actions": [3, 5]},
}


def _csv_texts(folder: Path) -> dict[str, str]:
    """Every results file's text without its wall-time rows (the only values that may differ)."""
    return {p.name: "".join(line for line in p.read_text().splitlines(keepends=True) if ",seconds," not in line)
            for p in sorted(folder.glob("*.csv"))}


# -- definitions ---------------------------------------------------------------------------------
def test_named_experiments_cover_the_papers_grid():
    exps = named_experiments()
    assert list(exps) == list(PAPER_ORDER) and len(exps) == 9
    for name in ("arms", "noise-linear", "noise-mlp", "dims", "simulation-access"):
        assert any(a["type"] == "EnsembleGAMBITTS" for a in exps[name].agents.values()), name
    assert [c.params["n_actions"] for c in exps["arms"].configs()] == ["3", "5", "15", "30", "40"]
    assert [len(c.env["working_embedding"]) for c in exps["dims"].configs()] == [3, 5, 10, 15, 20]
    assert exps["long-horizon"].horizon == 10_000 and exps["long-horizon"].env["n_actions"] == 40
    assert all(e.horizon >= 1000 and e.replications == 250 for e in exps.values())


@pytest.mark.parametrize("name", PAPER_ORDER)
def test_every_named_config_makes_its_environment(name):
    for config in load_experiment(name).configs():
        env = gym.make(ENV_ID, horizon=config.horizon, **config.env)
        env.reset(seed=0)
        if "working_embedding" in config.env:
            assert env.unwrapped.embedding_dim == len(config.env["working_embedding"])


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        ({"horizon": "long"}, "horizon"),
        ({"replicates": 5}, "replicates"),
        ({"agents": {"x": {"type": "NoSuchAgent"}}}, "agents.x.type"),
        ({"agents": {"x": {"n_offline": 3}}}, "agents.x.type"),
        ({"agents": {"x": {"type": "sb3:SAC"}}}, "agents.x.type"),
        ({"sweep": {"agents.nobody.n_offline": [1, 2]}}, "agents.nobody.n_offline"),
        ({"sweep": {"env.n_actions": []}}, "env.n_actions"),
        ({"sweep": {"K": {"set": "env.n_actions", "values": [3, 5], "labels": ["a"]}}}, "sweep.K.labels"),
        ({"sweep": {"K": {"set": "env.n_actions", "values": [3], "step": 1}}}, "sweep.K.step"),
        ({"sweep": {"horizon": [10, 20]}}, "horizon"),
    ],
)
def test_malformed_definition_names_the_bad_key(edit, key):
    with pytest.raises(ExperimentError, match=key.replace(".", r"\.")):
        Experiment.from_dict({**TINY, **edit})


def test_malformed_toml_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nhorizon = 10\nreplications = 2\n[env]\n[agents.a]\ntype = "StandardTS"\n'
                    '[sweep]\n"env.n_actions" = 3\n')
    with pytest.raises(ExperimentError, match=r"bad\.toml.*env\.n_actions"):
        load_experiment(path)
    path.write_text("name = [unclosed")
    with pytest.raises(ExperimentError, match="not valid TOML"):
        load_experiment(path)
    with pytest.raises(ExperimentError, match="neither a named experiment"):
        load_experiment("no-such-experiment")


def test_sweep_long_form_sets_several_keys_with_labels():
    exp = Experiment.from_dict({**TINY, "sweep": {"M": {"set": ["agents.po.n_offline", "agents.ens.n_offline"],
                                                        "values": [10, 30], "labels": ["small", "big"]}}})
    configs = exp.configs()
    assert [c.config_id for c in configs] == ["M=small", "M=big"]
    assert configs[1].agents["po"]["n_offline"] == 30 and configs[1].agents["ens"]["n_offline"] == 30


# -- the runner ----------------------------------------------------------------------------------
def test_serial_and_process_backends_give_identical_numbers(tmp_path):
    exp = Experiment.from_dict(TINY)
    run_experiments([exp], tmp_path / "serial", backend="serial", progress=False)
    run_experiments([exp], tmp_path / "process", backend="process", workers=2, progress=False)
    serial = _csv_texts(tmp_path / "serial" / "tiny")
    assert len(serial) == 2 and _csv_texts(tmp_path / "process" / "tiny") == serial


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
    assert _csv_texts(tmp_path / "ray" / "tiny") == _csv_texts(tmp_path / "serial" / "tiny")


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


def _slow_definition(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(textwrap.dedent("""
        name = "resume"
        horizon = 400
        replications = 20
        seed = 11
        [env]
        variant = "synthetic"
        [agents.LinTS]
        type = "LinearTS"
        [agents.StdTS]
        type = "StandardTS"
        [sweep]
        "env.n_actions" = [3, 4, 5, 6, 7, 8]
    """))
    return path


def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
    """Kill a sweep part-way (SIGKILL); the rerun keeps the finished configs and matches an uninterrupted run."""
    definition = _slow_definition(tmp_path)
    args = [sys.executable, "-m", "gambit_gym.cli", "experiment", "run", str(definition), "--backend", "serial",
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
    for text in (t for _, t in done.values()):  # whatever is there is complete
        assert len(text.splitlines()) == 1 + 2 * (2 * 400 + 20 + 1)

    assert cli(["experiment", "run", str(definition), "--backend", "serial", "--quiet", "--out", str(killed_dir)]) == 0
    for name, (mtime, text) in done.items():  # not recomputed
        assert (folder / name).stat().st_mtime_ns == mtime and (folder / name).read_text() == text
    assert not list(folder.glob(".*.tmp"))

    whole = tmp_path / "whole"
    assert cli(["experiment", "run", str(definition), "--backend", "serial", "--quiet", "--out", str(whole)]) == 0
    assert _csv_texts(folder) == _csv_texts(whole / "resume")
    assert len(_csv_texts(folder)) == 6


def test_results_file_is_absent_or_complete(tmp_path, monkeypatch):
    """A write that fails part-way leaves no results file, only a temporary that the next run removes."""
    target = tmp_path / "x.csv"

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "a,b\n1,2\n")
    assert not target.exists() and list(tmp_path.glob(".x.csv.*.tmp"))
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


class ExplodingAgent:
    """Fails on five prompts only: one config of a sweep breaks at run time, after validation."""

    def __init__(self, env):
        self.env = env

    @classmethod
    def from_env(cls, env, seed=None):
        return cls(env)

    def reset(self):
        pass

    def act(self, obs):
        if self.env.single_action_space.n == 5:
            raise RuntimeError("boom")
        return np.zeros(self.env.num_envs, dtype=np.int64)

    def update(self, obs, action, reward, info):
        pass


def test_a_failing_config_is_named_and_the_others_are_saved(tmp_path):
    exp = Experiment.from_dict({**TINY, "agents": {"x": {"type": "tests.test_experiments:ExplodingAgent"}}})
    with pytest.raises(RuntimeError, match="tiny/n_actions=5: RuntimeError: boom"):
        run_experiments([exp], tmp_path, backend="serial", progress=False)
    assert [p.name for p in (tmp_path / "tiny").glob("*.csv")] == ["n_actions=3.csv"]


def test_configs_that_would_share_a_file_are_refused():
    with pytest.raises(ExperimentError, match="same results file"):
        Experiment.from_dict({**TINY, "sweep": {"L": {"set": "env.n_actions", "values": [3, 4],
                                                      "labels": ["a b", "a_b"]}}}).configs()
    with pytest.raises(ExperimentError, match="results column"):
        Experiment.from_dict({**TINY, "sweep": {"agent": {"set": "env.n_actions", "values": [3, 4]}}})


def test_runner_rejects_bad_arguments(tmp_path):
    exp = Experiment.from_dict(TINY)
    with pytest.raises(ValueError, match="backend"):
        run_experiments([exp], tmp_path, backend="slurm")
    with pytest.raises(ValueError, match="workers"):
        run_experiments([exp], tmp_path, workers=0)
    with pytest.raises(ExperimentError, match="replications"):
        exp.with_overrides(replications=0)


# -- the report ----------------------------------------------------------------------------------
def _write_config(root: Path, exp: Experiment, finals: dict[str, dict[str, float]], T: int = 10) -> None:
    """Results with chosen final regrets (to pin down the report's decisions)."""
    folder = root / exp.name
    folder.mkdir(parents=True, exist_ok=True)
    import json

    (folder / "experiment.json").write_text(json.dumps(exp.definition(), default=str))
    for config in exp.configs():
        result = {}
        for agent, level in finals[config.config_id].items():
            final = level + np.linspace(-1, 1, config.replications)
            reg = np.outer(final, np.arange(1, T + 1) / T)
            result[agent] = {"mean": reg.mean(0), "se": reg.std(0, ddof=1) / np.sqrt(len(reg)), "final": final,
                             "seconds": 0.0}
        (folder / config.filename).write_text(config_table(config, result))


def test_findings_are_decided_from_the_numbers(tmp_path):
    noise = load_experiment("noise-linear").with_overrides(horizon=10, replications=5)
    good = {f"noise_level={i}": {"poGAMBITTS": 10 + 20 * i, "StdTS": 100 + 10 * i, "foGAMBITTS": 90,
                                 "ensemble": 50} for i in range(5)}
    _write_config(tmp_path / "good", noise, good)
    findings = {f.claim: f for f in check_findings(load_results(tmp_path / "good"))}
    assert findings["poGAMBITTS has much lower regret than standard TS at low noise"].status == "reproduced"
    assert findings["poGAMBITTS's advantage shrinks as the reward noise sigma_Y grows"].status == "reproduced"
    assert all(f.status == "not run" for c, f in findings.items() if "K" in c or "hedging" in c)

    bad = {k: {**v, "poGAMBITTS": 120} for k, v in good.items()}
    _write_config(tmp_path / "bad", noise, bad)
    findings = {f.claim: f for f in check_findings(load_results(tmp_path / "bad"))}
    assert findings["poGAMBITTS has much lower regret than standard TS at low noise"].status == "not reproduced"


def test_report_reads_partial_and_foreign_results_without_crashing(tmp_path):
    """An 'arms' experiment of a user's own (no K sweep), a missing config and a stray CSV: "not run"."""
    own = Experiment.from_dict({**TINY, "name": "arms", "sweep": {}})
    _write_config(tmp_path, own, {"default": {"po": 10, "StdTS": 20}})
    (tmp_path / "arms" / "notes.csv").write_text("a,b\n1,2\n")
    hedged = load_experiment("hedged").with_overrides(horizon=10, replications=5)
    _write_config(tmp_path, hedged, {f"embedding={e}": {"poGAMBITTS": 10, "poGAMBITTS-hedged": 5, "StdTS": 20}
                                     for e in ("true", "correlated", "unrelated")})
    (tmp_path / "hedged" / "embedding=unrelated.csv").unlink()
    findings = {f.claim: f for f in check_findings(load_results(tmp_path))}
    assert all(f.status == "not run" for f in findings.values())
    assert write_report(tmp_path).exists()


def test_report_writes_plots_and_tables_from_a_real_run(tmp_path):
    exp = Experiment.from_dict(TINY)
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    path = write_report(tmp_path)
    text = path.read_text()
    assert "## tiny" in text and "| n_actions=3 |" in text and "| finding | this run | evidence |" in text
    assert (tmp_path / "regret_tiny.png").stat().st_size > 10_000
    assert (tmp_path / "final_tiny.png").stat().st_size > 10_000


def test_cli_lists_runs_and_reports(tmp_path, capsys):
    assert cli(["experiment", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in PAPER_ORDER)
    definition = _slow_definition(tmp_path)
    assert cli(["experiment", "run", str(definition), "--replications", "2", "--horizon", "20", "--backend",
                "serial", "--quiet", "--out", str(tmp_path / "r")]) == 0
    assert cli(["experiment", "report", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").exists()
    assert cli(["experiment", "run", "nonexistent.toml", "--out", str(tmp_path / "r")]) == 2
    assert "no such experiment file" in capsys.readouterr().err


def test_report_plots_a_two_parameter_sweep(tmp_path):
    exp = Experiment.from_dict({**TINY, "agents": {"StdTS": {"type": "StandardTS"}},
                                "sweep": {"env.n_actions": [3, 5], "env.noise_level": [0, 4]}})
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    write_report(tmp_path)
    assert len(load_results(tmp_path)["tiny"].configs) == 4
    assert (tmp_path / "final_tiny.png").stat().st_size > 10_000


def test_the_example_sweep_file_is_valid():
    exp = load_experiment(ROOT / "examples" / "my_sweep.toml")
    exp.validate()
    assert [c.config_id for c in exp.configs()][:2] == ["n_actions=3,noise_level=0", "n_actions=3,noise_level=2"]
