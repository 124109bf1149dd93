"""Run the configs of one or more experiments, resumably, on a local or a Ray backend.

Each config runs as one job: all its replications are batched through the
vector environment (``run_bandit``), every agent meets the same root seed, and
the finished config is written at once as one tidy CSV file (written to a
temporary name, then renamed, so a results file is either complete or absent).
A second run of the same sweep skips the configs whose files exist, so an
interrupted sweep resumes where it stopped. Jobs run in a single thread of
linear algebra each, so the numbers do not depend on the backend, the number of
workers or the order in which configs finish.

Progress: the bar counts steps (agents x replications x rounds of each config,
:func:`config_steps`) and advances inside a config every :data:`TICK_ROUNDS`
rounds: ``run_config(config, tick)`` passes ``run_bandit`` a callback that only
counts (no number changes). Worker processes send their counts on a
``multiprocessing`` queue given to each worker at its start, which the runner
reads between its waits; on Ray a config counts as a whole when it ends.

Results layout::

    OUT/<experiment>/experiment.json        the definition (checked on resume)
    OUT/<experiment>/<param=label,...>.csv  one file per config
    OUT/<experiment>/.lock                  held (flock) by the runner writing this folder

CSV columns: ``experiment, config, <one column per swept parameter>, agent,
statistic, round, replication, value`` with ``statistic`` one of ``mean`` and
``se`` (cumulative pseudo-regret per round, over replications), ``final`` (the
final cumulative regret of each replication), ``seconds`` (wall time of the
agent's runs) and ``regret`` (the cumulative pseudo-regret of each replication
at the rounds of :func:`regret_rounds`: every round up to 100, else rounds 1-10
and 90 log-spaced rounds up to the horizon, the last round always included).
Files written before ``regret`` rows existed hold the other four statistics.
An experiment with ``metrics`` (:mod:`agents.experiments.metrics`) adds one row per
replication and round of :func:`regret_rounds` for each of its series, the series'
name as the ``statistic`` (``harm.mean``, ``fallback_rate``, ``agent.<key>``, ...),
and one row with empty round and replication for a series that is one number
(``harm.budget``); every statistic other than the five above is a metric
(:data:`STATISTICS`), so readers that look for those five read these files as before.

Reliability:

* One runner per experiment folder: a runner holds an advisory lock
  (``fcntl.flock`` on ``OUT/<experiment>/.lock``, which records its pid) while it
  runs, and a second runner on the same folder is refused at once with an error
  naming the folder and the holder's pid (it does not wait). Temporary files carry
  their writer's pid and a random token and are removed by their writer; leftovers
  of a killed runner are removed only by a runner holding the lock.
* Worker processes (``backend="process"``) die with the runner, whatever ends it
  (Ctrl-C, SIGTERM, SIGKILL): on Linux the kernel kills them when the runner dies
  (``PR_SET_PDEATHSIG``), and elsewhere each checks every half second that its
  parent still lives.
* Ctrl-C (``KeyboardInterrupt``) stops the running configs at once, without waiting
  for them, keeps every finished config, and raises :class:`ExperimentInterrupted`
  (a ``KeyboardInterrupt``) saying how many were saved; rerunning the same command
  resumes. The command line treats SIGTERM the same way.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from agents.experiments.config import (
    FIXED_COLUMNS,
    TAIL_COLUMNS,
    Config,
    Experiment,
    ExperimentError,
    definition_key,
    resolve_agent_type,
)
from agents.experiments.metrics import REGRET_ROUNDS, metric_rounds, regret_rounds  # noqa: F401  (re-exported)
from agents.results import standard_error
from agents.run import run_bandit
from agents.sb3 import parse_sb3_spec
from gambit_gym import ENV_ID
from gambit_gym.datafiles import atomic_file
from gambit_gym.progress import progress_bar
from gambit_gym.validation import check_choice, check_int

BACKENDS = ("serial", "process", "ray")
#: The runner's own statistics; any other ``statistic`` in a results file is a metric's series.
STATISTICS = ("mean", "se", "final", "seconds", "regret")


@contextmanager
def _one_thread():
    """One thread for BLAS and torch during a job: the numbers then never depend on thread scheduling,
    whatever the backend (Ray workers, say, start with one BLAS thread; a plain process with all)."""
    from threadpoolctl import threadpool_limits

    try:
        import torch
    except ImportError:  # only the ensemble (and SB3) need torch
        torch = None
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)




#: Progress inside a config is reported every this many rounds (and at the last round).
TICK_ROUNDS = 50


def config_steps(config: Config) -> int:
    """The steps of one config, the runner's progress unit: agents x replications x rounds.

    Example:
        >>> from agents.experiments import Experiment
        >>> exp = Experiment.from_dict({"name": "x", "horizon": 20, "replications": 3, "env": {},
        ...     "agents": {"a": {"type": "StandardTS"}, "b": {"type": "LinearTS"}}})
        >>> config_steps(exp.configs()[0])
        120
    """
    return len(config.agents) * config.replications * config.horizon


def _each(*callbacks: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
    """One ``run_bandit`` callback calling each given one in turn (None when none is given)."""
    given = [c for c in callbacks if c is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def call(round_: Any) -> None:
        for callback in given:
            callback(round_)

    return call


class _StepTicker:
    """A ``run_bandit`` callback that only counts: the rows of each round, passed to ``tick(n)`` every
    :data:`TICK_ROUNDS` rounds and at the last one (it never touches the run, so no number changes)."""

    def __init__(self, tick: Callable[[int], None], horizon: int) -> None:
        self.tick, self.horizon, self.pending = tick, horizon, 0

    def __call__(self, round_: Any) -> None:
        self.pending += len(round_.replications)  # a block's rows, or one replication of an SB3 agent
        if (round_.t + 1) % TICK_ROUNDS == 0 or round_.t + 1 == self.horizon:
            self.tick(self.pending)
            self.pending = 0


def run_config(config: Config, tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run one config; returns plain arrays (cheap to send back from a worker).

    ``tick(n)``, if given, hears of the config's progress as it runs: ``n`` more steps (rows x rounds,
    see :func:`config_steps`) every :data:`TICK_ROUNDS` rounds of each agent. It only observes; so do the
    config's metrics (each agent's ``"metrics"``: series name -> ``(replications, rounds)`` array or number)."""
    agents = {}
    for label, spec in config.agents.items():
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        agents[label] = (resolve_agent_type(spec["type"]), kwargs)
    metrics = config.metrics_recorder()
    callback = _each(_StepTicker(tick, config.horizon) if tick is not None else None, metrics)
    with _one_thread():
        res = run_bandit(ENV_ID, agents, horizon=config.horizon, replications=config.replications, seed=config.seed,
                         env_kwargs=config.env, block_size=config.block_size, progress=False, callback=callback)
    rounds = regret_rounds(config.horizon) - 1
    out = {}
    for label, reg in res.cumulative_regret.items():
        out[label] = {"mean": reg.mean(axis=0), "se": standard_error(reg, axis=0), "final": reg[:, -1].copy(),
                      "seconds": res.seconds[label], "regret": reg[:, rounds]}
        if metrics is not None:
            out[label]["metrics"] = metrics.results(label)
    return out


def config_table(config: Config, result: dict[str, Any]) -> str:
    """The tidy CSV text of one finished config (``regret`` and metric rows where ``result`` has them)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    params = list(config.params)
    writer.writerow([*FIXED_COLUMNS, *params, *TAIL_COLUMNS])
    head = [config.experiment, config.config_id, *(config.params[p] for p in params)]
    rounds = regret_rounds(config.horizon).tolist()
    metric_at = metric_rounds(config.horizon).tolist()
    for agent, r in result.items():
        for stat in ("mean", "se"):
            for t, v in enumerate(r[stat], start=1):
                writer.writerow([*head, agent, stat, t, "", repr(float(v))])
        for i, v in enumerate(r["final"]):
            writer.writerow([*head, agent, "final", config.horizon, i, repr(float(v))])
        writer.writerow([*head, agent, "seconds", "", "", repr(float(r["seconds"]))])
        series = {"regret": r["regret"]} if "regret" in r else {}
        for name, values in {**series, **r.get("metrics", {})}.items():
            if np.ndim(values) == 0:  # one number for the config (a budget)
                writer.writerow([*head, agent, name, "", "", repr(float(values))])
                continue
            at = rounds if name == "regret" else metric_at
            for i, curve in enumerate(np.asarray(values, dtype=np.float64)):
                for t, v in zip(at, curve.tolist(), strict=True):
                    writer.writerow([*head, agent, name, t, i, repr(v)])
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that ``path`` is either absent or complete.

    The temporary file (``.<name>.<pid>-<token>.tmp`` beside ``path``) is this writer's alone, and
    it removes it if the write fails."""
    with atomic_file(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


LOCK_NAME = ".lock"


class FolderBusyError(ExperimentError):
    """Another live runner holds the experiment folder's lock."""


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` (an exclusive ``flock``) for one runner; refuse at once if another holds it.

    The lock file keeps the holder's pid, for the error message; the kernel releases the lock
    when its holder exits, however it exits. Without ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise FolderBusyError(
                f"{folder}: another runner (pid {holder}) is running this experiment into this folder; "
                "wait for it to finish (then rerun to pick up anything left) or use another --out folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _prepare(experiment: Experiment, configs: list[Config], out: Path, locks: ExitStack) -> Path:
    folder = out / experiment.name
    folder.mkdir(parents=True, exist_ok=True)
    locks.enter_context(folder_lock(folder))
    for stale in folder.glob(".*.tmp"):  # we hold the lock: left by a runner that was killed mid-write
        stale.unlink(missing_ok=True)
    meta = folder / "experiment.json"
    definition = experiment.definition(configs)
    if meta.exists() and any(folder.glob("*.csv")):
        old = json.loads(meta.read_text(encoding="utf-8"))
        if "data" not in old:  # written before data files were fingerprinted: accepted, then recorded below
            if definition["data"]:
                warnings.warn(f"{folder}: its results predate the record of the data files they read; resuming "
                              "assumes these are the files its results were made from, and records them now",
                              stacklevel=3)
            old = {**old, "data": definition["data"]}
        if definition_key(old) != definition_key(definition):
            changed = sorted(k for k in set(old) | set(definition)
                             if k != "description" and definition_key(old, k) != definition_key(definition, k))
            raise ExperimentError(
                f"{folder}: holds results of a different definition of experiment {experiment.name!r} "
                f"(changed: {', '.join(changed)}); use another --out folder or delete this one"
            )
    # (re)written when nothing has run yet or only the description changed
    write_atomic(meta, json.dumps(definition, indent=2, sort_keys=True, default=str))
    return folder


def _cost(config: Config) -> float:
    """Rough relative cost, to start the longest configs first."""
    k = config.env.get("n_actions") or 5
    weight = 0.0
    for spec in config.agents.values():
        weight += 40.0 if spec["type"] == "EnsembleGAMBITTS" else 8.0 if parse_sb3_spec(spec["type"]) else 1.0
    return config.horizon * config.replications * weight * (1 + k / 20)


class ExperimentInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (or SIGTERM at the command line): the finished configs are saved.

    Attributes: ``saved`` (configs finished and written by this run), ``unfinished`` (configs
    stopped or not started; a rerun of the same command runs them), ``folders`` (the experiments'
    results folders)."""

    def __init__(self, saved: int, unfinished: int, folders: Sequence[Path]) -> None:
        super().__init__(f"interrupted: {saved} config(s) saved, {unfinished} unfinished")
        self.saved, self.unfinished, self.folders = saved, unfinished, list(folders)


def run_experiments(
    experiments: Sequence[Experiment],
    out: str | Path = "results",
    backend: str = "process",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on_done: Callable[[Config, Path], None] | None = None,
    force: bool = False,
    check_memory: bool = True,
    memory_limit: int | None = None,
) -> dict[str, list[Path]]:
    """Run every config not yet on disk; returns experiment name -> its config files (grid order).

    Args:
        experiments: the experiments (see :func:`~agents.experiments.config.load_experiment`).
        out: results root; each experiment writes to ``out/<name>/``, which one runner at a time may
            write (another runner on it is refused with :class:`FolderBusyError`).
        backend: ``"process"`` (local processes, default), ``"serial"`` (this process) or
            ``"ray"`` (Ray tasks; ``address`` as for ``ray.init``, e.g. ``"auto"``).
        workers: local processes (default: the number of CPUs).
        force: run a sweep of more than :data:`~agents.experiments.config.MAX_CONFIGS` configs.
        check_memory, memory_limit: refuse a config whose estimated memory exceeds ``memory_limit``
            bytes (default: the memory this machine has available); see
            :meth:`~agents.experiments.config.Experiment.validate`.

    Raises:
        ExperimentInterrupted: on Ctrl-C; the finished configs are saved, the running ones stopped.

    Example:
        >>> import tempfile
        >>> from agents.experiments import Experiment, run_experiments
        >>> exp = Experiment.from_dict({"name": "tiny", "horizon": 20, "replications": 3, "seed": 1,
        ...     "env": {"variant": "synthetic"}, "agents": {"StdTS": {"type": "StandardTS"}},
        ...     "sweep": {"env.n_actions": [3, 5]}})
        >>> with tempfile.TemporaryDirectory() as d:
        ...     files = run_experiments([exp], d, backend="serial", progress=False)
        ...     print([f.name for f in files["tiny"]])
        ['n_actions=3.csv', 'n_actions=5.csv']
    """
    check_choice("backend", backend, BACKENDS)
    if workers is not None:
        check_int("workers", workers, minimum=1)
    if len({e.name for e in experiments}) != len(experiments):
        raise ValueError("experiments: two experiments share a name; their results would collide")
    for exp in experiments:  # counted, not listed: a huge sweep is refused before anything is built
        exp.check_size(force)
    out = Path(out)
    with ExitStack() as locks:  # each experiment folder is locked until the run ends
        files: dict[str, list[Path]] = {}
        todo: list[tuple[Config, Path]] = []
        for exp in experiments:
            # a bad option or a config too big fails here, naming its key, before anything runs
            configs = exp.configs()  # built once: validated, fingerprinted and run
            exp.validate(check_memory=check_memory, memory_limit=memory_limit,
                         progress=progress and exp.n_configs > 100, configs=configs)
            folder = _prepare(exp, configs, out, locks)
            files[exp.name] = []
            for config in configs:
                path = folder / config.filename
                files[exp.name].append(path)
                if not path.exists():
                    todo.append((config, path))
        todo.sort(key=lambda cp: -_cost(cp[0]))
        bar = _Progress(progress, [c for c, _ in todo], sum(len(v) for v in files.values()) - len(todo))
        index = {path: i for i, (_, path) in enumerate(todo)}

        failures: list[str] = []
        saved = 0

        def finish(config: Config, path: Path, result: dict[str, Any] | BaseException) -> None:
            nonlocal saved
            if isinstance(result, BaseException):  # the other configs go on; the failures are raised at the end
                failures.append(f"{config.experiment}/{config.config_id}: {type(result).__name__}: {result}")
                bar.finish(index[path], f"{config.experiment}/{config.config_id} failed")
                return
            write_atomic(path, config_table(config, result))
            saved += 1
            bar.finish(index[path], f"{config.experiment}/{config.config_id}")
            if on_done is not None:
                on_done(config, path)

        tick = bar.tick if bar.enabled else None
        try:
            if backend == "serial" or not todo:
                for i, (config, path) in enumerate(todo):
                    finish(config, path, _attempt(config, None if tick is None else functools.partial(tick, i)))
            elif backend == "process":
                _run_processes(todo, workers, finish, tick)
            else:  # Ray: progress counts whole configs (as each ends)
                _run_ray(todo, address, finish)
        except KeyboardInterrupt as exc:
            if isinstance(exc, ExperimentInterrupted):
                raise
            folders = [out / e.name for e in experiments]
            raise ExperimentInterrupted(saved, len(todo) - saved - len(failures), folders) from None
        finally:
            bar.close()
    if failures:
        raise RuntimeError(f"{len(failures)} config(s) failed (the others are saved; rerun to retry only these):\n"
                           + "\n".join(failures))
    return files


def _attempt(config: Config, tick: Callable[[int], None] | None = None) -> dict[str, Any] | Exception:
    try:
        return run_config(config, tick)
    except Exception as exc:  # reported with the config's name once the sweep ends
        return exc


def run_experiment(experiment: Experiment, out: str | Path = "results", **kwargs: Any) -> list[Path]:
    """One experiment (see :func:`run_experiments`)."""
    return run_experiments([experiment], out, **kwargs)[experiment.name]


# -- local worker processes ---------------------------------------------------------------------
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


#: In a worker process: the queue its configs report their progress to (``None``: no progress wanted).
_PROGRESS_QUEUE: Any = None


def _worker_init(parent: int, progress_queue: Any = None) -> None:
    """Start of each worker process: Ctrl-C is the runner's to handle, and the worker dies with the runner."""
    global _PROGRESS_QUEUE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if progress_queue is not None:
        progress_queue.cancel_join_thread()  # progress is never worth a worker hanging on exit
    _PROGRESS_QUEUE = progress_queue
    if sys.platform.startswith("linux"):
        import ctypes

        try:  # the kernel sends SIGKILL to this worker when its parent dies, even by SIGKILL
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    # everywhere (and for a parent that died before prctl): re-parented means orphaned
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def _watch_parent(parent: int, every: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while worker processes start: they inherit the ignored SIGINT, so a Ctrl-C during
    their start-up (before ``_worker_init`` runs) cannot print a traceback from each of them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _run_config_reporting(config: Config, index: int) -> dict[str, Any]:
    """``run_config`` in a worker, its progress sent to the runner as ``(index, steps)`` on the queue."""
    queue = _PROGRESS_QUEUE
    return run_config(config, None if queue is None else lambda n: queue.put((index, n)))


def _run_processes(todo: Iterable[tuple[Config, Path]], workers: int | None, finish,
                   tick: Callable[[int, int], None] | None = None) -> None:
    """Run the configs on local worker processes; ``tick(index, steps)`` hears of each config's progress
    (sent by the workers on a queue, read here between waits)."""
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    todo = list(todo)
    n = min(workers or os.cpu_count() or 1, len(todo))
    context = multiprocessing.get_context("spawn")  # a clean interpreter per worker (no forked torch or BLAS state)
    progress_queue = context.Queue() if tick is not None else None

    def drain() -> None:
        while progress_queue is not None:
            try:
                i, steps = progress_queue.get_nowait()
            except queue_module.Empty:
                return
            tick(i, steps)

    pool = ProcessPoolExecutor(n, mp_context=context, initializer=_worker_init,
                               initargs=(os.getpid(), progress_queue))
    try:
        with _sigint_ignored():  # workers start on submit
            pending = {pool.submit(_run_config_reporting, config, i): (config, path)
                       for i, (config, path) in enumerate(todo)}
        while pending:
            done, _ = wait(pending, timeout=None if progress_queue is None else 0.2, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                config, path = pending.pop(future)
                exc = future.exception()
                finish(config, path, exc if exc is not None else future.result())
        pool.shutdown(wait=True)
    except BaseException:
        _stop_workers(pool)
        raise
    finally:  # after the workers ended: none is still writing to it
        if progress_queue is not None:
            progress_queue.close()


def _stop_workers(pool: Any) -> None:
    """Kill the pool's workers now: running configs are abandoned, not waited for."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.kill()
    for proc in processes:
        proc.join(timeout=5)


def _run_ray(todo: Iterable[tuple[Config, Path]], address: str | None, finish) -> None:
    from gambit_gym.extras import require

    ray = require("ray", "ray", "the Ray backend (--backend ray)")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    elif address is not None:
        raise ValueError(f"address: Ray is already initialised in this process; cannot connect to {address!r}")
    task = ray.remote(num_cpus=1)(run_config)
    pending = {task.remote(config): (config, path) for config, path in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                config, path = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    result = exc
                finish(config, path, result)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    finally:
        if started:
            ray.shutdown()


class _Progress:
    """The runner's progress bar, in steps (:func:`config_steps`) of the configs to run: each config's
    steps are counted as it runs (:meth:`tick`) and made whole when it ends (:meth:`finish`); the
    description counts the configs done. Disabled, every method does nothing."""

    def __init__(self, enabled: bool, configs: Sequence[Config], skipped: int) -> None:
        self.steps = [config_steps(c) for c in configs]
        self.counted = [0] * len(configs)
        self.done, self.skipped = 0, skipped
        self.bar = progress_bar(enabled, sum(self.steps), self._description(), "step", smoothing=0.0,
                                unit_scale=True)
        self.enabled = self.bar is not None

    def _description(self) -> str:
        done = f"configs {self.done}/{len(self.steps)}"
        return f"{done} ({self.skipped} already done)" if self.skipped else done

    def tick(self, index: int, steps: int) -> None:
        """``steps`` more of config ``index`` (a late report of a finished config counts nothing)."""
        steps = min(steps, self.steps[index] - self.counted[index])
        if self.bar is not None and steps > 0:
            self.counted[index] += steps
            self.bar.update(steps)

    def finish(self, index: int, label: str) -> None:
        """Config ``index`` ended (saved or failed): all its steps count."""
        if self.bar is None:
            return
        rest = self.steps[index] - self.counted[index]
        self.counted[index] = self.steps[index]
        self.done += 1
        self.bar.set_description_str(self._description(), refresh=False)
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.update(rest)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def read_columns(path: str | Path) -> dict[str, np.ndarray]:
    """One results CSV as columns: ``value`` float64, ``round`` and ``replication`` int64 (-1 where
    empty), every other column text. Fast on the large files of per-replication curves.

    Raises ``KeyError`` (a column missing) or ``ValueError`` (a malformed row or number) for a CSV
    that is not a results file."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = list(reader)
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"{path}: rows of different lengths; not a results file")
    columns = {name: np.asarray(col, dtype=str) for name, col in zip(header, zip(*rows))} if rows \
        else {name: np.asarray([], dtype=str) for name in header}
    columns["value"] = columns["value"].astype(np.float64)
    for name in ("round", "replication"):
        col = columns[name]
        columns[name] = np.where(col == "", "-1", col).astype(np.int64)
    return columns


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows of one results CSV as dicts (``value`` as float, ``round``/``replication`` as int or None)."""
    columns = read_columns(path)
    names = list(columns)
    as_python = {name: col.tolist() for name, col in columns.items()}
    for name in ("round", "replication"):
        as_python[name] = [None if v < 0 else v for v in as_python[name]]
    return [dict(zip(names, row)) for row in zip(*(as_python[name] for name in names))]
