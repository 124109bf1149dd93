"""Run the configs of one or more experiments, resumably, on a local or a Ray backend.

Each config runs as one job: all its replications are batched through the
vector environment (``run_bandit``), every agent meets the same root seed, and
the finished config is written at once as one tidy CSV file (written to a
temporary name, then renamed, so a results file is either complete or absent).
A second run of the same sweep skips the configs whose files exist, so an
interrupted sweep resumes where it stopped. Jobs run in a single thread of
linear algebra each, so the numbers do not depend on the backend, the number of
workers or the order in which configs finish.

Results layout::

    OUT/<experiment>/experiment.json        the definition (checked on resume)
    OUT/<experiment>/<param=label,...>.csv  one file per config

CSV columns: ``experiment, config, <one column per swept parameter>, agent,
statistic, round, replication, value`` with ``statistic`` one of ``mean`` and
``se`` (cumulative pseudo-regret per round, over replications), ``final`` (the
final cumulative regret of each replication) and ``seconds`` (wall time of the
agent's runs).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agents.experiments.config import (
    FIXED_COLUMNS,
    TAIL_COLUMNS,
    Config,
    Experiment,
    ExperimentError,
    definition_key,
    resolve_agent_type,
)
from agents.results import standard_error
from agents.run import run_bandit
from agents.sb3 import parse_sb3_spec
from gambit_gym import ENV_ID
from gambit_gym.progress import progress_bar
from gambit_gym.validation import check_choice, check_int

BACKENDS = ("serial", "process", "ray")


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


def run_config(config: Config) -> dict[str, Any]:
    """Run one config; returns plain arrays (cheap to send back from a worker)."""
    agents = {}
    for label, spec in config.agents.items():
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        agents[label] = (resolve_agent_type(spec["type"]), kwargs)
    with _one_thread():
        res = run_bandit(ENV_ID, agents, horizon=config.horizon, replications=config.replications, seed=config.seed,
                         env_kwargs=config.env, block_size=config.block_size, progress=False)
    out = {}
    for label, reg in res.cumulative_regret.items():
        out[label] = {"mean": reg.mean(axis=0), "se": standard_error(reg, axis=0), "final": reg[:, -1].copy(),
                      "seconds": res.seconds[label]}
    return out


def config_table(config: Config, result: dict[str, Any]) -> str:
    """The tidy CSV text of one finished config."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    params = list(config.params)
    writer.writerow([*FIXED_COLUMNS, *params, *TAIL_COLUMNS])
    head = [config.experiment, config.config_id, *(config.params[p] for p in params)]
    for agent, r in result.items():
        for stat in ("mean", "se"):
            for t, v in enumerate(r[stat], start=1):
                writer.writerow([*head, agent, stat, t, "", repr(float(v))])
        for i, v in enumerate(r["final"]):
            writer.writerow([*head, agent, "final", config.horizon, i, repr(float(v))])
        writer.writerow([*head, agent, "seconds", "", "", repr(float(r["seconds"]))])
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that ``path`` is either absent or complete."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _prepare(experiment: Experiment, out: Path) -> Path:
    folder = out / experiment.name
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a run killed mid-write; never a results file
        stale.unlink()
    meta = folder / "experiment.json"
    definition = experiment.definition()
    if meta.exists() and any(folder.glob("*.csv")):
        old = json.loads(meta.read_text(encoding="utf-8"))
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


def run_experiments(
    experiments: Sequence[Experiment],
    out: str | Path = "results",
    backend: str = "process",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on_done: Callable[[Config, Path], None] | None = None,
) -> dict[str, list[Path]]:
    """Run every config not yet on disk; returns experiment name -> its config files (grid order).

    Args:
        experiments: the experiments (see :func:`~agents.experiments.config.load_experiment`).
        out: results root; each experiment writes to ``out/<name>/``.
        backend: ``"process"`` (local processes, default), ``"serial"`` (this process) or
            ``"ray"`` (Ray tasks; ``address`` as for ``ray.init``, e.g. ``"auto"``).
        workers: local processes (default: the number of CPUs).

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
    out = Path(out)
    files: dict[str, list[Path]] = {}
    todo: list[tuple[Config, Path]] = []
    for exp in experiments:
        exp.validate()  # a bad option fails here, naming its key, not inside a worker
        folder = _prepare(exp, out)
        files[exp.name] = []
        for config in exp.configs():
            path = folder / config.filename
            files[exp.name].append(path)
            if not path.exists():
                todo.append((config, path))
    todo.sort(key=lambda cp: -_cost(cp[0]))
    bar = _bar(progress, len(todo), sum(len(v) for v in files.values()) - len(todo))

    failures: list[str] = []

    def finish(config: Config, path: Path, result: dict[str, Any] | BaseException) -> None:
        if isinstance(result, BaseException):  # the other configs go on; the failures are raised at the end
            failures.append(f"{config.experiment}/{config.config_id}: {type(result).__name__}: {result}")
            if bar is not None:
                bar.update(1)
            return
        write_atomic(path, config_table(config, result))
        if bar is not None:
            bar.set_postfix_str(f"{config.experiment}/{config.config_id}", refresh=False)
            bar.update(1)
        if on_done is not None:
            on_done(config, path)

    try:
        if backend == "serial" or not todo:
            for config, path in todo:
                finish(config, path, _attempt(config))
        elif backend == "process":
            _run_processes(todo, workers, finish)
        else:
            _run_ray(todo, address, finish)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        raise RuntimeError(f"{len(failures)} config(s) failed (the others are saved; rerun to retry only these):\n"
                           + "\n".join(failures))
    return files


def _attempt(config: Config) -> dict[str, Any] | Exception:
    try:
        return run_config(config)
    except Exception as exc:  # reported with the config's name once the sweep ends
        return exc


def run_experiment(experiment: Experiment, out: str | Path = "results", **kwargs: Any) -> list[Path]:
    """One experiment (see :func:`run_experiments`)."""
    return run_experiments([experiment], out, **kwargs)[experiment.name]


def _run_processes(todo: Iterable[tuple[Config, Path]], workers: int | None, finish) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    todo = list(todo)
    n = min(workers or os.cpu_count() or 1, len(todo))
    # spawn: a clean interpreter per worker (no forked torch or BLAS thread state)
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(run_config, config): (config, path) for config, path in todo}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    config, path = pending.pop(future)
                    exc = future.exception()
                    finish(config, path, exc if exc is not None else future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise


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


def _bar(enabled: bool, total: int, skipped: int):
    desc = f"configs ({skipped} already done)" if skipped else "configs"
    return progress_bar(enabled, total, desc, "config", smoothing=0.0)


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows of one results CSV as dicts (``value`` as float, ``round``/``replication`` as int or None)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            row["value"] = float(row["value"])
            row["round"] = int(row["round"]) if row["round"] else None
            row["replication"] = int(row["replication"]) if row["replication"] else None
            rows.append(row)
    return rows
