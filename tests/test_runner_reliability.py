"""Reliability of the experiment runner and of experiment files (issue #12): one runner per folder, workers
that die with the runner, Ctrl-C / SIGTERM / SIGKILL of a real ``gambit-gym experiment run``, factories as agent
types, memory estimated before work starts, huge sweeps counted and refused; per-replication regret rows (#13)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from agents import StandardTS, run_bandit
from agents.cli import main as cli
from agents.experiments import Experiment, ExperimentError, load_experiment, load_results, run_experiments
from agents.experiments import config as config_module
from agents.experiments.config import MAX_CONFIGS, available_memory, estimate_memory
from agents.experiments.runner import (
    ExperimentInterrupted,
    FolderBusyError,
    config_table,
    read_results,
    regret_rounds,
    run_config,
)
from gambit_gym import ENV_ID
from tests._experiments import ROOT, TINY

LINUX = sys.platform.startswith("linux")
#: multiplies every SleepyAgent delay: set to 0 in a rerun so that resuming a sleepy sweep takes no time
DELAY_SCALE = "GAMBIT_TEST_DELAY_SCALE"


# -- a slow agent (and a factory) to interrupt ---------------------------------------------------
class SleepyAgent:
    """Uniformly random actions, ``delay`` seconds per round (times ``$GAMBIT_TEST_DELAY_SCALE``): a config
    that takes as long as the test needs, and sleeps instead of taking the shared CPUs."""

    def __init__(self, env, seed, delay: float) -> None:
        self.n_actions, self.n_rows = env.single_action_space.n, env.num_envs
        self.rng = np.random.default_rng(seed)
        self.delay = float(delay) * float(os.environ.get(DELAY_SCALE, "1"))

    def reset(self) -> None:
        pass

    def act(self, obs):
        time.sleep(self.delay)
        return self.rng.integers(self.n_actions, size=self.n_rows)

    def update(self, obs, action, reward, info) -> None:
        pass


def make_sleepy_agent(env, seed, delay: float = 0.0) -> SleepyAgent:
    """A factory function, not a class: experiment files accept both as agent types."""
    if delay < 0:
        raise ValueError(f"delay: expected >= 0, got {delay}")
    return SleepyAgent(env, seed, delay)


def broken_factory(env, seed):
    return env.no_such_attribute


NOT_AN_AGENT = 42
FACTORY = "tests.test_runner_reliability:make_sleepy_agent"


def sleepy_sweep(tmp_path: Path, delays: str = "[0.0, 0.2, 0.21]", horizon: int = 100) -> Path:
    """Three configs: one instant, two of ``horizon x delay`` seconds (20 s by default)."""
    path = tmp_path / "sleepy.toml"
    path.write_text(textwrap.dedent(f"""
        name = "sleepy"
        horizon = {horizon}
        replications = 2
        seed = 3
        [env]
        variant = "synthetic"
        [agents.s]
        type = "{FACTORY}"
        [sweep]
        "agents.s.delay" = {delays}
    """))
    return path


# -- processes, read from /proc (no psutil) -------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after the command name: state, ppid, ...


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by init, counts as dead)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


#: ``python -m agents.cli`` with Ctrl-C's default handler, as a shell's foreground job has it even where this test
#: process ignores SIGINT (a background job of a non-interactive shell does, and its children inherit that)
FOREGROUND_CLI = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                  "runpy.run_module('agents.cli', run_name='__main__', alter_sys=True)")


def start_run(definition: Path, out: Path, *extra: str, env: dict | None = None,
              quiet: bool = True) -> tuple[subprocess.Popen, list]:
    """``gambit-gym experiment run`` (as ``python -m agents.cli``) in its own process group, as a shell
    starts a foreground job; returns the process and its argv after ``gambit-gym``."""
    argv = ["experiment", "run", str(definition), "--out", str(out), *(["--quiet"] if quiet else []), *extra]
    proc = subprocess.Popen([sys.executable, "-c", FOREGROUND_CLI, *argv], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    return proc, argv


def workers_busy(proc: subprocess.Popen, folder: Path, leftovers: list[int], n_workers: int = 2) -> list[int]:
    """Wait for the instant config's file and ``n_workers`` worker processes; return the workers' pids
    (recorded in ``leftovers`` with the runner's)."""
    leftovers.append(proc.pid)
    wait_until(lambda: (folder / "delay=0.0.csv").exists() or proc.poll() is not None, 120, "the first config")
    assert proc.poll() is None, proc.communicate()
    workers: list[int] = []

    def found() -> bool:
        workers[:] = [p for p in children(proc.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        return len(workers) == n_workers

    wait_until(found, 30, "the worker processes")
    leftovers += workers + children(proc.pid)
    time.sleep(1.0)  # the two slow configs are now running (20 s each)
    return workers


def assert_all_gone(pids: list[int], timeout: float = 5.0) -> None:
    wait_until(lambda: not any(alive(p) for p in pids), timeout, f"processes {pids} to end")


@pytest.fixture
def leftovers():
    """Pids a test started (runners, workers): whatever a failing test leaves running is killed, not leaked."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- Ctrl-C, SIGTERM, SIGKILL of a real run --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_ctrl_c_keeps_finished_configs_stops_running_ones_and_says_how_to_resume(tmp_path, leftovers):
    definition, out = sleepy_sweep(tmp_path), tmp_path / "out"
    proc, argv = start_run(definition, out, "--workers", "2")
    folder = out / "sleepy"
    workers = workers_busy(proc, folder, leftovers)
    helpers = [p for p in children(proc.pid) if p not in workers]  # multiprocessing's resource tracker
    tic = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    stdout, stderr = proc.communicate(timeout=15)
    assert time.monotonic() - tic < 8, "the running configs (20 s each) were waited for"
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert "interrupted (Ctrl-C): 1 config(s) finished in this run and are saved in" in stderr
    assert "2 unfinished config(s) were stopped" in stderr
    command = stderr.strip().splitlines()[-1].strip()
    assert command == "gambit-gym " + " ".join(argv)
    assert_all_gone(workers + helpers)
    assert sorted(p.name for p in folder.glob("*.csv")) == ["delay=0.0.csv"]
    assert not list(folder.glob(".*.tmp"))
    kept = (folder / "delay=0.0.csv").stat().st_mtime_ns

    # the same command resumes: the finished config is kept, the other two run (instantly: no delay now)
    rerun = subprocess.run([sys.executable, "-m", "agents.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT), DELAY_SCALE: "0"}, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(folder.glob("*.csv"))) == 3 and (folder / "delay=0.0.csv").stat().st_mtime_ns == kept


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_ctrl_c_with_the_progress_bar_on_stops_workers_and_their_progress_queue(tmp_path, leftovers):
    """The bar counts steps inside each config, reported by the workers on a queue: Ctrl-C still stops
    everything at once, with no traceback from the queue or the workers."""
    definition, out = sleepy_sweep(tmp_path), tmp_path / "out"
    proc, _ = start_run(definition, out, "--workers", "2", quiet=False)
    workers = workers_busy(proc, out / "sleepy", leftovers)
    helpers = [p for p in children(proc.pid) if p not in workers]
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "configs 1/3" in stderr and "step" in stderr  # the bar: configs done, and its unit
    assert "interrupted (Ctrl-C): 1 config(s) finished" in stderr
    assert_all_gone(workers + helpers)
    assert [p.name for p in (out / "sleepy").glob("*.csv")] == ["delay=0.0.csv"]


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_sigterm_stops_the_run_and_its_workers(tmp_path, leftovers):
    definition, out = sleepy_sweep(tmp_path), tmp_path / "out"
    proc, _ = start_run(definition, out, "--workers", "2")
    workers = workers_busy(proc, out / "sleepy", leftovers)
    proc.send_signal(signal.SIGTERM)  # the runner only, as `kill` or a batch system sends it
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert "interrupted (SIGTERM): 1 config(s) finished" in stderr and "Resume with the same command" in stderr
    assert_all_gone(workers)
    assert [p.name for p in (out / "sleepy").glob("*.csv")] == ["delay=0.0.csv"]


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_workers_die_with_a_runner_killed_by_sigkill(tmp_path, leftovers):
    """SIGKILL gives the runner no chance to clean up: the workers must notice on their own."""
    definition, out = sleepy_sweep(tmp_path), tmp_path / "out"
    proc, argv = start_run(definition, out, "--workers", "2")
    folder = out / "sleepy"
    workers = workers_busy(proc, folder, leftovers)
    proc.kill()
    assert_all_gone(workers)  # before reading its output: orphaned workers would hold the pipes open
    proc.communicate(timeout=15)
    # the kernel released the dead runner's lock: the next run resumes at once
    rerun = subprocess.run([sys.executable, "-m", "agents.cli", *argv, "--backend", "serial"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT), DELAY_SCALE: "0"})
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(folder.glob("*.csv"))) == 3


# -- one runner per folder ------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_runner_on_the_same_folder_is_refused_and_the_first_finishes(tmp_path, capsys):
    definition, out = sleepy_sweep(tmp_path, delays="[0.0, 0.03]"), tmp_path / "out"
    first, _ = start_run(definition, out, "--backend", "serial")
    folder = out / "sleepy"
    lock = folder / ".lock"
    wait_until(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), 60, "the first runner's lock")
    in_flight = folder / ".delay=0.03.csv.999999-abcdef01.tmp"  # as if the first runner were writing it
    in_flight.write_text("half")

    exp = load_experiment(definition)
    with pytest.raises(FolderBusyError, match=rf"{folder}: another runner \(pid {first.pid}\)"):
        run_experiments([exp], out, backend="serial", progress=False)
    assert cli(["experiment", "run", str(definition), "--out", str(out), "--backend", "serial", "--quiet"]) == 2
    assert f"another runner (pid {first.pid})" in capsys.readouterr().err
    assert in_flight.exists()  # another runner's temporary file is not ours to delete

    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert sorted(p.name for p in folder.glob("*.csv")) == ["delay=0.0.csv", "delay=0.03.csv"]
    # the holder is gone: the next runner may clean up what it left
    run_experiments([exp], out, backend="serial", progress=False)
    assert not in_flight.exists()


def test_the_lock_is_released_when_a_run_ends_however_it_ends(tmp_path):
    exp = Experiment.from_dict({**TINY, "agents": {"x": {"type": "tests._experiments:ExplodingAgent"}}})
    with pytest.raises(RuntimeError, match="boom"):
        run_experiments([exp], tmp_path, backend="serial", progress=False)
    assert (tmp_path / "tiny" / ".lock").read_text().strip() == str(os.getpid())
    with pytest.raises(RuntimeError, match="boom"):  # not refused: the lock went with the first run
        run_experiments([exp], tmp_path, backend="serial", progress=False)


def test_ctrl_c_in_the_serial_backend_keeps_finished_configs(tmp_path):
    """KeyboardInterrupt inside a config: an ExperimentInterrupted (a KeyboardInterrupt) with the counts."""
    exp = Experiment.from_dict({**TINY, "agents": {"StdTS": {"type": "StandardTS"}},
                                "sweep": {"env.n_actions": [3, 4, 5]}})

    def interrupt_after_first(config, path):
        raise KeyboardInterrupt

    with pytest.raises(ExperimentInterrupted) as caught:
        run_experiments([exp], tmp_path, backend="serial", progress=False, on_done=interrupt_after_first)
    assert (caught.value.saved, caught.value.unfinished) == (1, 2)
    assert caught.value.folders == [tmp_path / "tiny"] and isinstance(caught.value, KeyboardInterrupt)
    assert [p.name for p in (tmp_path / "tiny").glob("*.csv")] == ["n_actions=5.csv"]  # the costliest runs first


# -- factories as agent types ---------------------------------------------------------------------
def test_a_factory_function_is_an_agent_type_wherever_a_class_is(tmp_path):
    exp = Experiment.from_dict({**TINY, "agents": {"s": {"type": FACTORY, "delay": 0.0}}})
    exp.validate()
    files = run_experiments([exp], tmp_path, backend="serial", progress=False)["tiny"]
    res = run_bandit(ENV_ID, {"s": (make_sleepy_agent, {"delay": 0.0})}, horizon=40, replications=3, seed=5,
                     env_kwargs={"variant": "synthetic", "n_actions": 5}, progress=False)
    finals = [r["value"] for r in read_results(files[1]) if r["statistic"] == "final"]
    assert finals == res.cumulative_regret["s"][:, -1].tolist()


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ({"type": FACTORY, "delay": -1.0}, r"config n_actions=3: agents\.x: delay: expected >= 0"),
        ({"type": FACTORY, "speed": 2}, r"agents\.x: .*unexpected keyword argument 'speed'"),
        ({"type": "tests.test_runner_reliability:broken_factory"}, r"agents\.x: AttributeError: .*no_such_attribute"),
        ({"type": "tests.test_runner_reliability:NOT_AN_AGENT"}, r"agents\.x: .*expected an agent class"),
        ({"type": "tests.no_such_module:Agent"}, r"agents\.x\.type: .*cannot import"),
    ],
)
def test_a_bad_factory_or_type_fails_validation_naming_the_agent(agent, message):
    exp = Experiment.from_dict({**TINY, "agents": {"x": agent}})
    with pytest.raises(ExperimentError, match=message):
        exp.validate()


def test_loading_an_experiment_file_imports_nothing_validating_it_does(tmp_path, monkeypatch):
    """The documented trust boundary: `module:Name` runs the module's code at validation, never at load."""
    marker = tmp_path / "imported"
    (tmp_path / "untrusted_agents_mod.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from tests.test_runner_reliability import make_sleepy_agent as make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "exp.toml"
    path.write_text('name = "u"\nhorizon = 5\nreplications = 1\n[env]\n'
                    '[agents.a]\ntype = "untrusted_agents_mod:make"\n')
    exp = load_experiment(path)
    assert cli(["experiment", "list"]) == 0
    assert not marker.exists() and "untrusted_agents_mod" not in sys.modules
    exp.validate()
    assert marker.read_text() == "ran"
    assert "can run code" in config_module.__doc__ and "trust" in config_module.__doc__


# -- memory estimated before work starts ------------------------------------------------------------
def test_a_config_too_big_for_this_machine_is_refused_before_anything_is_built(tmp_path, capsys):
    if available_memory() is None:
        pytest.skip("no /proc/meminfo")
    exp = Experiment.from_dict({**TINY, "agents": {"po": {"type": "PoGAMBITTS", "n_offline": 2_000_000_000}}})
    tic = time.perf_counter()
    with pytest.raises(ExperimentError, match=r"config n_actions=3: agents\.po: n_offline = 2,000,000,000 needs "
                                              r"about \d+\.\d [GT]B .*more than the .* of memory available"):
        run_experiments([exp], tmp_path, backend="serial", progress=False)
    assert time.perf_counter() - tic < 10 and not (tmp_path / "tiny").exists()

    definition = tmp_path / "big.toml"
    definition.write_text('name = "big"\nhorizon = 10\nreplications = 250\n[env]\n[agents.po]\n'
                          'type = "PoGAMBITTS"\nn_offline = 2000000000\n')
    assert cli(["experiment", "run", str(definition), "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "agents.po: n_offline = 2,000,000,000" in err and "--no-memory-check" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("agent", "env", "parameter"),
    [
        ({"type": "PoGAMBITTS", "n_offline": 200_000}, {}, "n_offline = 200,000"),
        ({"type": "FoGAMBITTS"}, {"n_actions": 40, "embedding_dim": 40}, r"the embedding dimension d = 40 \(env\)"),
        ({"type": "LinearTS", "interactions": True}, {"n_actions": 40}, "env.n_actions = 40"),
        ({"type": "EnsembleGAMBITTS", "n_members": 200, "hidden": 500}, {}, "n_members x hidden = 200 x 500"),
        ({"type": "EnsembleGAMBITTS", "buffer_size": 100_000}, {}, "buffer_size = 100,000"),
        ({"type": "EnsembleGAMBITTS", "n_offline": 20_000}, {}, "n_offline = 20,000"),
    ],
)
def test_the_memory_estimate_names_the_parameter_that_drives_it(agent, env, parameter):
    exp = Experiment.from_dict({**TINY, "replications": 250, "env": {"variant": "synthetic", **env},
                                "agents": {"a": agent}, "sweep": {}})
    with pytest.raises(ExperimentError, match=rf"config default: agents\.a: {parameter} needs about"):
        exp.validate(memory_limit=500 * 2**20)


def test_memory_estimates_scale_with_their_sizes_and_the_block():
    import gymnasium as gym

    env = gym.make(ENV_ID)

    def total(**edits):
        exp = Experiment.from_dict({**TINY, "sweep": {}, **edits})
        return estimate_memory(exp.configs()[0], env)[0]

    po = {"po": {"type": "PoGAMBITTS", "n_offline": 100_000}}
    small, big = total(agents=po), total(agents={"po": {"type": "PoGAMBITTS", "n_offline": 1_000_000}})
    assert 9 < big / small <= 10
    assert total(agents=po, replications=300) / total(agents=po, replications=30) > 9
    assert total(agents=po, replications=300, block_size=30) < total(agents=po, replications=300) / 9
    assert total(agents={"own": {"type": FACTORY}}) == total(agents={"own": {"type": FACTORY}}, horizon=40)
    memory = available_memory()
    if LINUX:
        meminfo = Path("/proc/meminfo").read_text()
        mem_total = int(next(line for line in meminfo.splitlines() if line.startswith("MemTotal:")).split()[1])
        assert 0 < memory <= mem_total * 1024


def test_the_memory_check_can_be_overridden(tmp_path, capsys):
    exp = Experiment.from_dict({**TINY, "agents": {"po": {"type": "PoGAMBITTS", "n_offline": 50_000}},
                                "sweep": {}})
    with pytest.raises(ExperimentError, match="n_offline = 50,000"):
        run_experiments([exp], tmp_path, backend="serial", progress=False, memory_limit=2**20)
    run_experiments([exp], tmp_path, backend="serial", progress=False, memory_limit=2**20, check_memory=False)
    assert (tmp_path / "tiny" / "default.csv").exists()
    definition = tmp_path / "po.toml"
    definition.write_text('name = "po"\nhorizon = 10\nreplications = 2\n[env]\n[agents.po]\n'
                          'type = "PoGAMBITTS"\nn_offline = 50000\n')
    args = ["experiment", "run", str(definition), "--out", str(tmp_path), "--backend", "serial", "--quiet"]
    assert cli([*args, "--memory-limit", "1M"]) == 2
    assert "n_offline = 50,000 needs about" in capsys.readouterr().err
    assert cli([*args, "--memory-limit", "1M", "--no-memory-check"]) == 0
    with pytest.raises(SystemExit):
        cli([*args, "--memory-limit", "lots"])
    assert "expected a size such as 16G" in capsys.readouterr().err


# -- sweeps counted, not listed -------------------------------------------------------------------
HUGE = {**TINY, "agents": {"StdTS": {"type": "StandardTS"}},
        "sweep": {f"env.option{i}": list(range(10)) for i in range(8)}}


def test_a_huge_sweep_is_counted_instantly_and_refused_with_its_size(tmp_path, capsys):
    tic = time.perf_counter()
    exp = Experiment.from_dict(HUGE)
    assert exp.n_configs == 10**8
    with pytest.raises(ExperimentError, match=r"sweep: 100,000,000 configs \(10 \(option0\) x .*more than 10,000"):
        run_experiments([exp], tmp_path, progress=False)
    definition = tmp_path / "huge.toml"
    definition.write_text('name = "huge"\nhorizon = 10\nreplications = 2\n[env]\n[agents.a]\ntype = "StandardTS"\n'
                          "[sweep]\n" + "".join(f'"env.option{i}" = [0,1,2,3,4,5,6,7,8,9]\n' for i in range(8)))
    assert cli(["experiment", "run", str(definition), "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "100,000,000 configs" in err and "--force" in err
    assert time.perf_counter() - tic < 5 and not list(tmp_path.rglob("*.csv"))


def test_force_runs_a_sweep_above_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "MAX_CONFIGS", 1)
    exp = Experiment.from_dict({**TINY, "agents": {"StdTS": {"type": "StandardTS"}}})
    with pytest.raises(ExperimentError, match="2 configs"):
        run_experiments([exp], tmp_path, backend="serial", progress=False)
    assert len(run_experiments([exp], tmp_path, backend="serial", progress=False, force=True)["tiny"]) == 2
    assert MAX_CONFIGS == 10_000


def test_experiment_list_counts_without_listing(monkeypatch, capsys):
    def no_listing(self):
        raise AssertionError("configs() was called")

    monkeypatch.setattr(Experiment, "configs", no_listing)
    assert cli(["experiment", "list"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^arms +5 configs  ", listing, flags=re.MULTILINE), listing


# -- per-replication regret rows (#13) ---------------------------------------------------------------
@pytest.mark.parametrize("horizon", [1, 7, 100, 101, 1000, 10_000, 123_457])
def test_regret_rounds_are_a_log_grid_ending_at_the_horizon(horizon):
    rounds = regret_rounds(horizon)
    assert rounds[-1] == horizon and rounds[0] == 1 and np.all(np.diff(rounds) > 0)
    if horizon <= 100:
        assert rounds.tolist() == list(range(1, horizon + 1))
    else:
        assert 70 <= len(rounds) <= 100 and rounds[:10].tolist() == list(range(1, 11))
        ratios = rounds[10:] / rounds[9:-1]
        assert ratios.max() < 1.2 * (horizon / 10) ** (1 / 80)  # log-spaced: no gap much wider than the rest


def test_regret_rows_hold_each_replications_curve_and_leave_the_other_rows_unchanged(tmp_path):
    exp = Experiment.from_dict({**TINY, "horizon": 150, "agents": {"StdTS": {"type": "StandardTS"}}})
    files = run_experiments([exp], tmp_path, backend="serial", progress=False)["tiny"]
    res = run_bandit(ENV_ID, {"StdTS": StandardTS}, horizon=150,
                     replications=3, seed=5, env_kwargs={"variant": "synthetic", "n_actions": 3}, progress=False)
    reg = res.cumulative_regret["StdTS"]
    rounds = regret_rounds(150)
    rows = read_results(files[0])
    regret = [r for r in rows if r["statistic"] == "regret"]
    assert len(regret) == 3 * len(rounds)
    assert [(r["replication"], r["round"], r["value"]) for r in regret] == [
        (i, int(t), float(reg[i, t - 1])) for i in range(3) for t in rounds]
    config = exp.configs()[0]
    result = run_config(config)
    without = {a: {k: v for k, v in r.items() if k != "regret"} for a, r in result.items()}
    text = files[0].read_text()
    old_format = config_table(config, without)  # what the runner wrote before regret rows existed
    strip = lambda t: [ln for ln in t.splitlines() if ",seconds," not in ln and ",regret," not in ln]  # noqa: E731
    assert strip(text) == strip(old_format) == [ln for ln in old_format.splitlines() if ",seconds," not in ln]

    curves = load_results(tmp_path)["tiny"].configs[0].agents["StdTS"]
    assert curves.regret.shape == (3, len(rounds)) and curves.regret_rounds.tolist() == rounds.tolist()
    assert curves.regret[:, -1].tolist() == curves.final.tolist()


def test_results_written_before_regret_rows_still_load_and_resume(tmp_path):
    exp = Experiment.from_dict({**TINY, "agents": {"StdTS": {"type": "StandardTS"}}})
    files = run_experiments([exp], tmp_path, backend="serial", progress=False)["tiny"]
    config = exp.configs()[0]
    old = config_table(config, {a: {k: v for k, v in r.items() if k != "regret"}
                                for a, r in run_config(config).items()})
    files[0].write_text(old)  # a results file of the earlier format
    mtime = files[0].stat().st_mtime_ns
    assert run_experiments([exp], tmp_path, backend="serial", progress=False)["tiny"] == files
    assert files[0].stat().st_mtime_ns == mtime  # same definition: kept, not recomputed
    configs = load_results(tmp_path)["tiny"].configs
    assert configs[0].agents["StdTS"].regret is None and configs[0].agents["StdTS"].final.shape == (3,)
    assert configs[1].agents["StdTS"].regret.shape == (3, 40)
    assert cli(["experiment", "report", str(tmp_path), "--no-plots"]) == 0


@pytest.mark.slow
def test_run_paper_runs_the_papers_grid_alone(tmp_path, capsys):
    """``run paper``: the nine experiments of the paper, none of those beyond it (``run all`` has both)."""
    assert cli(["experiment", "run", "paper", "--horizon", "1", "--replications", "1", "--out", str(tmp_path),
                "--backend", "serial", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("9 experiment(s), 33 config(s)")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(config_module.PAPER_ORDER)
