"""Experiment definitions: a readable config (TOML) and the grid of configs it sweeps.

An experiment file::

    name = "arms"
    description = "Number of prompts K"
    horizon = 1000            # rounds T
    replications = 250        # Monte-Carlo replications
    seed = 323                # root seed: SeedSequence(seed) seeds every replication

    [env]                     # GeneratorMediated-v0 keyword arguments
    variant = "cached-llm"
    outcome = "linear-3d"

    [agents.poGAMBITTS]       # label used in tables and plots
    type = "PoGAMBITTS"       # a built-in agent, "sb3:PPO", or "package.module:Class"
    n_offline = 500           # everything else goes to the agent's from_env

    [sweep]                   # a grid: every combination of the lists below
    "env.n_actions" = [3, 5, 15, 30, 40]

    [sweep.M_off]             # long form: one parameter setting several keys, with labels
    set = ["agents.poGAMBITTS.n_offline", "agents.ensemble.n_offline"]
    values = [15, 50, 100]
    labels = ["15", "50", "100"]

An optional top-level ``metrics`` (a list of names, or a table of name -> options) records
per-round metrics beside regret: harm and budget violations, fallback and delivery rates,
regret against the best budget-feasible action, the agents' own diagnostics, simulation
queries (see :mod:`agents.experiments.metrics`)::

    metrics = ["harm", "fallback_rate", "delivered_rate", "agent"]

Every config of the grid runs with the same root seed, so configs share their
random numbers where they can (common random numbers across a sweep).

A relative file path in ``[env]`` (``cache_path``, a ``domain`` given as a file)
is relative to the experiment file's folder, so an experiment runs from any
working directory. The results folder records the sha256 of every data file a
config reads (the cache, the bundled one included, and the domain file), so a
file replaced at the same path is refused on resume like any changed definition.

**An experiment file can run code.** A ``type = "package.module:Name"`` agent
imports ``package.module`` (and so runs its top-level code) when the experiment
is validated or run: run experiment files only from sources you trust, as with
the configs of other research tools that name classes to import. Loading a file
(:func:`load_experiment`, :meth:`Experiment.from_file`) only parses it. ``Name``
may be an agent class (with ``from_env``) or a factory function
``(env, seed, **options) -> agent``, as :func:`agents.run_bandit` accepts.

Before any work starts, :func:`agents.experiments.run_experiments` counts the
configs without listing them (the product of the sweep lengths) and refuses a
sweep of more than :data:`MAX_CONFIGS` (10,000) configs unless forced, and
:meth:`Experiment.validate` estimates the memory of each config (offline banks,
posteriors, networks, buffers, the results) and refuses one that needs more than
the memory available (see :func:`estimate_memory`).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import itertools
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import describe_env
from agents.experiments.metrics import METRICS, MetricsRecorder, check_metrics
from agents.run import build_agent, make_vector_env
from agents.safety import HarmRecorder
from agents.sb3 import SB3_ALGORITHMS, SB3_PREFIX, parse_sb3_spec
from gambit_gym import ENV_ID
from gambit_gym.progress import progress_bar
from gambit_gym.scenarios.cached_llm import data_fingerprints, resolve_paths
from gambit_gym.validation import check_int

#: Built-in agent types: name -> "module:attribute".
AGENT_TYPES = {
    "PoGAMBITTS": "agents.gambitts:PoGAMBITTS",
    "FoGAMBITTS": "agents.gambitts:FoGAMBITTS",
    "EnsembleGAMBITTS": "agents.ensemble:EnsembleGAMBITTS",
    "StandardTS": "agents.thompson:StandardTS",
    "LinearTS": "agents.thompson:LinearTS",
    "LearnedEmbeddingGAMBITTS": "agents.learned_embedding:LearnedEmbeddingGAMBITTS",
}
#: Sweeps above this many configs are refused unless forced (``force=True``, ``--force``).
MAX_CONFIGS = 10_000
#: Columns of a results file, around one column per swept parameter (which may not reuse these names).
FIXED_COLUMNS = ("experiment", "config")
TAIL_COLUMNS = ("agent", "statistic", "round", "replication", "value")
RESERVED_PARAMS = frozenset(FIXED_COLUMNS + TAIL_COLUMNS)


def config_id(params: Mapping[str, str]) -> str:
    """``{"K": "5", "noise": "0"}`` -> ``"K=5,noise=0"`` (``"default"`` without a sweep)."""
    return ",".join(f"{k}={v}" for k, v in params.items()) or "default"


def definition_key(definition: Mapping[str, Any], key: str | None = None) -> str:
    """Canonical text of what fixes the numbers: a definition without its description (or one key of it)."""
    data = definition.get(key) if key is not None else {k: v for k, v in definition.items() if k != "description"}
    return json.dumps(data, sort_keys=True, default=str)


TOP_LEVEL_KEYS = {"name", "description", "horizon", "replications", "seed", "block_size", "env", "agents", "sweep",
                  "notes", "metrics"}


class ExperimentError(ValueError):
    """A malformed experiment definition; the message names the offending key."""


def _fail(source: str, key: str, message: str) -> ExperimentError:
    return ExperimentError(f"{source}: {key}: {message}")


def _check_int(source: str | None, key: str, value: Any, minimum: int) -> int:
    """``check_int``, its error an ``ExperimentError`` naming the file (when there is one) and the key."""
    try:
        return check_int(key, value, minimum=minimum)
    except (TypeError, ValueError) as exc:
        raise ExperimentError(str(exc) if source is None else f"{source}: {exc}") from exc


@dataclass(frozen=True)
class SweepParameter:
    """One axis of the grid: ``values[i]`` is written to every path in ``paths``."""

    name: str
    paths: tuple[str, ...]
    values: tuple[Any, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """One point of the grid: everything a worker needs to run it (plain data, picklable)."""

    experiment: str
    config_id: str
    params: dict[str, str]  # parameter name -> label, in sweep order
    env: dict[str, Any]
    agents: dict[str, dict[str, Any]]  # label -> {"type": ..., **kwargs}
    horizon: int
    replications: int
    seed: int
    block_size: int | None
    #: metric name -> options (:mod:`agents.experiments.metrics`); empty: regret only
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def metrics_recorder(self) -> MetricsRecorder | None:
        """A fresh recorder of this config's metrics (each agent's own ``harm_budget`` as its budget), or None."""
        if not self.metrics:
            return None
        budgets = {label: spec.get("harm_budget") for label, spec in self.agents.items()}
        return MetricsRecorder(self.metrics, self.horizon, self.replications, budgets)

    @property
    def filename(self) -> str:
        return re.sub(r"[^A-Za-z0-9._=,+-]", "_", self.config_id) + ".csv"


@dataclass
class Experiment:
    """A named experiment: a base config and the grid it sweeps (see the module docstring)."""

    name: str
    description: str
    horizon: int
    replications: int
    seed: int
    env: dict[str, Any]
    agents: dict[str, dict[str, Any]]
    sweep: list[SweepParameter] = field(default_factory=list)
    block_size: int | None = None
    notes: str = ""
    source: str = "<dict>"
    #: metric name -> options recorded beside regret (:mod:`agents.experiments.metrics`)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The folder of the experiment file (``from_file``): relative file paths in ``env`` (a ``cache_path``, a
    #: ``domain`` given as a file) are relative to it. ``None`` (``from_dict``): relative to the working directory.
    folder: Path | None = None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Experiment:
        """Validate a parsed definition; every error names the bad key."""
        if not isinstance(data, Mapping):
            raise ExperimentError(f"{source}: expected a table of keys, got {type(data).__name__}")
        unknown = sorted(set(data) - TOP_LEVEL_KEYS)
        if unknown:
            raise _fail(source, unknown[0], f"unknown key; allowed keys: {sorted(TOP_LEVEL_KEYS)}")
        for key in ("name", "horizon", "replications", "env", "agents"):
            if key not in data:
                raise _fail(source, key, "missing (required keys: name, horizon, replications, env, agents)")
        name = data["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise _fail(source, "name", f"expected letters, digits, '_', '.' or '-', got {name!r}")
        ints = {}
        for key, minimum in (("horizon", 1), ("replications", 1), ("seed", 0), ("block_size", 1)):
            value = data.get(key, 0 if key == "seed" else None)
            ints[key] = None if value is None else _check_int(source, key, value, minimum)
        env = data["env"]
        if not isinstance(env, Mapping):
            raise _fail(source, "env", f"expected a table of environment options, got {env!r}")
        for key in ("horizon", "max_episode_steps"):
            if key in env:
                raise _fail(source, f"env.{key}", "set the episode length with the top-level key 'horizon'")
        agents = data["agents"]
        if not isinstance(agents, Mapping) or not agents:
            raise _fail(source, "agents", "expected a non-empty table of [agents.<label>] tables")
        checked_agents = {}
        for label, spec in agents.items():
            if not isinstance(spec, Mapping):
                raise _fail(source, f"agents.{label}", f"expected a table with a 'type' key, got {spec!r}")
            if "type" not in spec:
                raise _fail(source, f"agents.{label}.type",
                            f"missing; expected one of {sorted(AGENT_TYPES)}, 'sb3:<Algorithm>' or 'module:Class'")
            _check_agent_type(spec["type"], source, f"agents.{label}.type")
            if "seed" in spec:
                raise _fail(source, f"agents.{label}.seed", "agents are seeded from the top-level 'seed'")
            checked_agents[str(label)] = dict(spec)
        description = data.get("description", "")
        if not isinstance(description, str):
            raise _fail(source, "description", f"expected a string, got {description!r}")
        try:
            metrics = check_metrics(data.get("metrics", []))
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"{source}: {exc}") from exc
        exp = cls(name=name, description=description, horizon=ints["horizon"], replications=ints["replications"],
                  seed=ints["seed"], env=dict(env), agents=checked_agents, block_size=ints["block_size"],
                  notes=str(data.get("notes", "")), source=source, metrics=metrics)
        exp.sweep = _parse_sweep(data.get("sweep", {}), exp, source)
        return exp

    @classmethod
    def from_file(cls, path: str | Path) -> Experiment:
        """Read a TOML experiment file."""
        path = Path(path)
        if not path.is_file():
            raise ExperimentError(f"{path}: no such experiment file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ExperimentError(f"{path}: not valid TOML: {exc}") from exc
        exp = cls.from_dict(data, source=str(path))
        exp.folder = path.resolve().parent
        return exp

    def with_overrides(self, horizon: int | None = None, replications: int | None = None,
                       seed: int | None = None) -> Experiment:
        """A copy with the run-size settings replaced (``None`` keeps the file's value); it keeps the file's
        folder, so relative paths still resolve against it."""
        data = copy.deepcopy(self)
        for key, value, minimum in (("horizon", horizon, 1), ("replications", replications, 1), ("seed", seed, 0)):
            if value is not None:
                setattr(data, key, _check_int(None, key, value, minimum))
        return data

    # -- the grid --------------------------------------------------------------------------
    @property
    def n_configs(self) -> int:
        """How many configs the grid has: the product of the sweep lengths (nothing is listed)."""
        return math.prod(len(p.values) for p in self.sweep)

    def check_size(self, force: bool = False) -> int:
        """The number of configs; a grid of more than :data:`MAX_CONFIGS` is refused unless ``force``."""
        n = self.n_configs
        if n > MAX_CONFIGS and not force:
            lengths = " x ".join(f"{len(p.values)} ({p.name})" for p in self.sweep)
            raise ExperimentError(f"{self.source}: sweep: {n:,} configs ({lengths}) is more than {MAX_CONFIGS:,}; "
                                  "shorten the sweep, or force it (--force, force=True)")
        return n

    def configs(self) -> list[Config]:
        """Every point of the grid, in sweep order (first parameter slowest).

        This lists them all: count with :attr:`n_configs` (check with :meth:`check_size`) first."""
        out = []
        axes = [range(len(p.values)) for p in self.sweep]
        for choice in itertools.product(*axes):
            env = copy.deepcopy(self.env)
            agents = copy.deepcopy(self.agents)
            params = {}
            for p, i in zip(self.sweep, choice):
                params[p.name] = p.labels[i]
                for path in p.paths:
                    _assign(env, agents, path, copy.deepcopy(p.values[i]))
            if self.folder is not None:  # relative file paths are the experiment file's, wherever it runs from
                env = resolve_paths(env, self.folder)
            out.append(Config(self.name, config_id(params), params, env, agents, self.horizon, self.replications,
                              self.seed, self.block_size, copy.deepcopy(self.metrics)))
        files: dict[str, str] = {}
        for c in out:  # labels that differ only in characters a file name cannot hold would share a file
            other = files.setdefault(c.filename.casefold(), c.config_id)
            if other != c.config_id:
                raise _fail(self.source, "sweep", f"configs {other!r} and {c.config_id!r} map to the same results "
                                                  f"file {c.filename!r}; give them distinct labels")
        return out

    def validate(self, check_memory: bool = True, memory_limit: int | None = None, progress: bool = False,
                 configs: list[Config] | None = None) -> None:
        """Build every config's environment and agents once (on a one-row vector environment), so a bad
        option fails now, naming the key, instead of inside a worker hours into a sweep.

        With ``check_memory`` each config's memory is estimated first (:func:`estimate_memory`) and a
        config that needs more than ``memory_limit`` bytes (default: :func:`available_memory`, the
        memory this machine has available; no check where that is unknown) is refused, naming the
        config, the agent, the parameter and the estimate. This imports the modules of
        ``"module:Name"`` agent types (see the module docstring). ``progress``: a progress bar (a sweep of
        thousands of configs takes a minute or more to check). ``configs``: ``self.configs()`` if already built."""
        if memory_limit is not None:
            memory_limit = _check_int(None, "memory_limit", memory_limit, 1)
        elif check_memory:
            memory_limit = available_memory()
        configs = self.configs() if configs is None else configs
        bar = progress_bar(progress, len(configs), f"checking {self.name}", "config")
        try:
            for config in configs:
                self._validate_config(config, check_memory, memory_limit)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    def _validate_config(self, config: Config, check_memory: bool, memory_limit: int | None) -> None:
        where = f"{self.source}: config {config.config_id}"
        try:
            env = make_vector_env(ENV_ID, 1, config.horizon, config.env)  # as run_bandit makes it
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"{where}: env: {exc}") from exc
        except Exception as exc:  # e.g. MemoryError: named like the others
            raise ExperimentError(f"{where}: env: {type(exc).__name__}: {exc}") from exc
        try:
            if check_memory and memory_limit is not None:
                _check_memory(config, env, memory_limit, where)
            try:  # a metric the environment cannot give, or a budget missing
                recorder = config.metrics_recorder()
                if recorder is not None:
                    recorder.check_env(env)
            except (TypeError, ValueError) as exc:
                raise ExperimentError(f"{where}: {exc}") from exc
            for label, spec in config.agents.items():
                if parse_sb3_spec(spec["type"]) is not None:  # SB3 models are built per replication by run_sb3
                    continue
                try:
                    kind = resolve_agent_type(spec["type"])
                except ExperimentError as exc:
                    raise ExperimentError(f"{where}: agents.{label}.type: {exc}") from exc
                kwargs = {k: v for k, v in spec.items() if k != "type"}
                try:  # as run_bandit builds it: a class's from_env, or a factory (env, seed, **options)
                    build_agent(label, (kind, kwargs), env, np.random.SeedSequence(0))
                except (TypeError, ValueError) as exc:
                    raise ExperimentError(f"{where}: agents.{label}: {exc}") from exc
                except Exception as exc:  # a user's agent or factory may fail any way; name it all the same
                    raise ExperimentError(f"{where}: agents.{label}: {type(exc).__name__}: {exc}") from exc
        finally:
            env.close()

    def definition(self, configs: list[Config] | None = None) -> dict[str, Any]:
        """Plain-data form, written beside the results to detect a changed definition on resume.

        Agents are an ordered list of ``[label, spec]``: their seeds follow their order. File paths are kept
        as written (relative to the experiment file's folder, so moving the folder keeps its results valid);
        ``data`` holds, per config that reads data files, the sha256 of each (the treatment cache, the bundled
        one included, and the domain file whose presets it uses; see
        :func:`gambit_gym.scenarios.cached_llm.data_fingerprints`), so a file replaced at the same path is
        a changed definition. Each file is hashed once per version (path, modification time, size).
        ``configs``: ``self.configs()`` if already built. ``metrics`` is there only when some are recorded (so
        the results of a definition from before metrics existed still resume)."""
        metrics = {"metrics": self.metrics} if self.metrics else {}
        return {"name": self.name, "description": self.description, "horizon": self.horizon,
                "replications": self.replications, "seed": self.seed, "block_size": self.block_size,
                "env": self.env, "agents": [[label, spec] for label, spec in self.agents.items()],
                "sweep": [{"name": p.name, "set": list(p.paths), "values": list(p.values), "labels": list(p.labels)}
                          for p in self.sweep],
                "data": {c.config_id: fp for c in (self.configs() if configs is None else configs)
                         if (fp := data_fingerprints(c.env))}, **metrics}

    def fingerprint(self) -> str:
        """What fixes the numbers: the definition without its description."""
        return definition_key(self.definition())


def _check_agent_type(kind: Any, source: str, key: str) -> None:
    if not isinstance(kind, str) or not kind:
        raise _fail(source, key, f"expected a string, got {kind!r}")
    if kind in AGENT_TYPES:
        return
    sb3 = parse_sb3_spec(kind)
    if sb3 is not None:
        algo = sb3[0]
        if algo not in SB3_ALGORITHMS:
            raise _fail(source, key, f"unknown Stable-Baselines3 algorithm {algo!r}; expected one of "
                                     f"{[SB3_PREFIX + a for a in SB3_ALGORITHMS]}")
        return
    if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", kind):
        return
    raise _fail(source, key, f"unknown agent type {kind!r}; expected one of {sorted(AGENT_TYPES)}, "
                             "'sb3:<Algorithm>' or 'module:Class'")


def resolve_agent_type(kind: str) -> Any:
    """The class for an agent ``type`` string (``"sb3:..."`` stays a string: ``run_bandit`` runs those)."""
    if parse_sb3_spec(kind) is not None:
        return kind
    target = AGENT_TYPES.get(kind, kind)
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ExperimentError(f"agent type {kind!r}: cannot import {target}: {exc}") from exc


# -- memory: estimated before any work starts ---------------------------------------------------
@dataclass(frozen=True)
class MemoryNeed:
    """One sizeable allocation of a config: who needs it, the parameter that drives it, and its size.

    ``agent`` is the agent's label, or ``""`` for the results of the whole config."""

    agent: str
    parameter: str
    detail: str
    nbytes: int


def available_memory() -> int | None:
    """Bytes this machine can still give a new job: ``MemAvailable`` of ``/proc/meminfo``, capped by the
    cgroup (v2) limit of this process where there is one; ``None`` where neither can be read (not Linux)."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            room = max(int(limit) - int(used), 0)
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _option(kind: Any, spec: Mapping[str, Any], name: str, fallback: Any = None) -> Any:
    """An agent option as it will run: the config's value, else the default of the class's constructor."""
    if name in spec:
        return spec[name]
    for klass in getattr(kind, "__mro__", ()):
        init = klass.__dict__.get("__init__")
        if init is not None:
            param = inspect.signature(init).parameters.get(name)
            if param is not None and param.default is not inspect.Parameter.empty:
                return param.default
    return fallback


def _count(value: Any) -> int | None:
    """A size option as an int, or None when it is not one (the agent's own check will name it)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _linear_model(label: str, rows: int, p: int, parameter: str) -> MemoryNeed:
    # the Cholesky factor (rows, p, p) and about two temporaries of its size in an update or a draw
    return MemoryNeed(label, parameter, f"linear posterior on p = {p:,} features: {rows:,} rows x p^2 x 8 B x 3",
                      rows * p * p * 8 * 3)


def _niw(label: str, rows: int, cells: int, d: int) -> MemoryNeed:
    return MemoryNeed(label, f"the embedding dimension d = {d} (env)",
                      f"Normal-Inverse-Wishart posteriors: {rows:,} rows x {cells:,} cells x d^2 = {d * d:,} x 8 B "
                      "x 1.5", int(rows * cells * (d * d + d + 2) * 8 * 1.5))


def _bank_draws(label: str, rows: int, n: int, d: int, name: str = "n_offline") -> MemoryNeed:
    # one cell's simulated treatments (rows x n, d) in float64, and about three arrays of that size while drawing
    return MemoryNeed(label, f"{name} = {n:,}", f"simulated treatments of one cell: {rows:,} rows x {n:,} draws x "
                                                f"{d} dims x 8 B x 4", rows * n * d * 8 * 4)


def _agent_memory(label: str, type_name: str, kind: Any, spec: Mapping[str, Any], rows: int,
                  dims: Mapping[str, Any]) -> list[MemoryNeed]:
    """The large allocations of one built-in agent (none for other agents: their sizes are unknown)."""
    K, F, d = dims["n_actions"], dims["obs_dim"], dims["embedding_dim"] or 0
    C = dims["contexts"].n_contexts if dims["contexts"] is not None else 1
    opt = lambda name, fallback=None: _option(kind, spec, name, fallback)  # noqa: E731
    needs: list[MemoryNeed] = []
    use_context = bool(opt("use_context", True))
    if type_name == "StandardTS":
        cells = (C if opt("contextual", False) else 1) * K
        needs.append(MemoryNeed(label, f"env.n_actions = {K}", f"Normal-Gamma posteriors: {rows:,} rows x "
                                f"{cells:,} cells x 3 x 8 B", rows * cells * 3 * 8))
    elif type_name == "LinearTS":
        p = K + (F if use_context else 0) + (K * F if opt("interactions", False) else 0) + 1
        needs.append(_linear_model(label, rows, p, f"env.n_actions = {K}"))
    elif type_name in ("PoGAMBITTS", "FoGAMBITTS"):
        p = d + (F if use_context else 0) + (K - 1 if opt("hedged", False) else 0) + 1
        needs.append(_linear_model(label, rows, p, f"the embedding dimension d = {d} (env)"))
        if type_name == "FoGAMBITTS":
            needs.append(_niw(label, rows, C * K, d))
        elif (n := _count(opt("n_offline"))) is not None and opt("treatment_means") is None:
            needs.append(_bank_draws(label, rows, n, d))
    elif type_name == "EnsembleGAMBITTS":
        M, H, B = _count(opt("n_members")), _count(opt("hidden")), _count(opt("buffer_size"))
        batch = _count(opt("batch_size"))
        D = d + (F if use_context else 0)
        # on the CPU (the compiled kernels): weights and two Adam moments, float32, and one row's minibatches
        # at a time; on a GPU (torch) also every net's gradients and a temporary, and the whole grid's minibatch
        on_cpu = opt("device") in (None, "cpu")
        copies = 3 if on_cpu else 5
        if M is not None and H is not None:
            needs.append(MemoryNeed(label, f"n_members x hidden = {M:,} x {H:,}", f"networks: {rows:,} rows x "
                                    f"{M:,} members x {D * H + 2 * H + 1:,} weights x 4 B x {copies}",
                                    rows * M * (D * H + 2 * H + 1) * 4 * copies))
        if M is not None and B is not None:
            needs.append(MemoryNeed(label, f"buffer_size = {B:,}", f"replay buffer: {rows:,} rows x {B:,} x "
                                    f"({D} inputs x 4 B + 8 B + {M:,} members x 8 B)", rows * B * (D * 4 + 8 + M * 8)))
        if M is not None and batch is not None and not on_cpu:
            needs.append(MemoryNeed(label, f"batch_size = {batch:,}", f"minibatch: {rows:,} rows x {M:,} members x "
                                    f"{batch:,} x ({D} x 4 B + 16 B)", rows * M * batch * (D * 4 + 16)))
        needs.append(_linear_model(label, rows, D + 1, f"the embedding dimension d = {d} (env)"))
        simulation = opt("simulation")
        if simulation is None:
            simulation = dims["simulator"] is not None
        if simulation and (n := _count(opt("n_offline"))) is not None:
            bank = rows * C * K * n * d * 4
            n_act = min(n, _count(opt("n_score")) or n)
            acting = rows * K * n_act * (d * 8 + D * 12)  # the draws scored each round, as float64 and inputs
            draws = _bank_draws(label, rows, n, d)
            needs.append(MemoryNeed(label, f"n_offline = {n:,}", f"offline bank: {rows:,} rows x {C * K:,} cells "
                                    f"x {n:,} draws x {d} dims x 4 B, + {format_bytes(draws.nbytes)} drawing a cell "
                                    f"+ {format_bytes(acting)} scoring a round", bank + draws.nbytes + acting))
        elif not simulation:
            needs.append(_niw(label, rows, C * K, d))
            if (n_mc := _count(opt("n_mc"))) is not None:
                needs.append(MemoryNeed(label, f"n_mc = {n_mc:,}", f"Monte-Carlo draws scored each round: {rows:,} "
                                        f"rows x {K} actions x {n_mc:,} x ({d} x 8 B + {D} x 12 B)",
                                        rows * K * n_mc * (d * 8 + D * 12)))
    return needs


def estimate_memory(config: Config, env: Any) -> tuple[int, list[MemoryNeed]]:
    """Peak memory of running ``config``, estimated before it runs, and its large allocations.

    ``env``: the config's environment (any number of rows), for its sizes. Counted: the results
    (``replications x horizon`` regrets per agent, and their CSV text), and for the built-in
    agents their offline banks (replications x draws x cells x dimension), linear posteriors
    (p^2 per replication), Normal-Inverse-Wishart posteriors (d^2 per cell and replication),
    ensemble networks (members x hidden x inputs, with Adam moments), replay buffers and
    minibatches; "replications" means one block (``block_size``) of them. Agents run one after
    another, so the peak is the results plus the largest agent. Other agents (Stable-Baselines3,
    your own) count as zero: their sizes are unknown here. Estimates are within a small factor:
    they are meant to catch a config that cannot fit, not to budget tightly.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> from agents.experiments import Experiment
        >>> from agents.experiments.config import estimate_memory, format_bytes
        >>> exp = Experiment.from_dict({"name": "big", "horizon": 100, "replications": 250,
        ...     "env": {}, "agents": {"po": {"type": "PoGAMBITTS", "n_offline": 10_000_000}}})
        >>> total, needs = estimate_memory(exp.configs()[0], gym.make("GeneratorMediated-v0"))
        >>> biggest = max(needs, key=lambda n: n.nbytes)
        >>> biggest.agent, biggest.parameter, format_bytes(biggest.nbytes)
        ('po', 'n_offline = 10,000,000', '223.5 GB')
    """
    dims = describe_env(env)
    rows = min(config.block_size or config.replications, config.replications)
    n_agents = len(config.agents)
    results = n_agents * (config.replications * config.horizon * 8 * 2 + 2 * config.horizon * 80)
    needs = [MemoryNeed("", f"horizon x replications = {config.horizon:,} x {config.replications:,}",
                        f"results: {n_agents} agents x {config.replications:,} replications x {config.horizon:,} "
                        "rounds x 8 B x 2, and their CSV text", results)]
    if any(METRICS[name].uses_harm_recorder for name in config.metrics):  # every round of every agent, kept
        harm = n_agents * config.replications * config.horizon * 8 * len(HarmRecorder.KEYS)
        needs.append(MemoryNeed("", f"metrics = {sorted(config.metrics)}", f"the harm recorder: {n_agents} agents x "
                                f"{config.replications:,} replications x {config.horizon:,} rounds x "
                                f"{len(HarmRecorder.KEYS)} x 8 B", harm))
        results += harm
    largest = 0
    for label, spec in config.agents.items():
        type_name = spec["type"]
        if type_name not in AGENT_TYPES:
            continue
        agent = _agent_memory(label, type_name, resolve_agent_type(type_name), spec, rows, dims)
        needs += agent
        largest = max(largest, sum(n.nbytes for n in agent))
    return results + largest, needs


def _check_memory(config: Config, env: Any, limit: int, where: str) -> None:
    total, needs = estimate_memory(config, env)
    if total <= limit:
        return
    by_agent: dict[str, int] = {}
    for n in needs:
        by_agent[n.agent] = by_agent.get(n.agent, 0) + n.nbytes
    culprit = max(by_agent, key=by_agent.__getitem__)
    worst = max((n for n in needs if n.agent == culprit), key=lambda n: n.nbytes)
    who = f"agents.{culprit}" if culprit else "results"
    raise ExperimentError(
        f"{where}: {who}: {worst.parameter} needs about {format_bytes(worst.nbytes)} ({worst.detail}); the config "
        f"needs about {format_bytes(total)} in all, more than the {format_bytes(limit)} of memory available. "
        "Make it smaller (fewer replications per block with block_size, or a smaller parameter), or skip this "
        "check (--no-memory-check, check_memory=False)"
    )


def _parse_sweep(sweep: Any, exp: Experiment, source: str) -> list[SweepParameter]:
    if not isinstance(sweep, Mapping):
        raise _fail(source, "sweep", f"expected a table, got {sweep!r}")
    params = []
    for key, spec in sweep.items():
        where = f"sweep.{key}" if "." not in key else f'sweep."{key}"'
        if isinstance(spec, list):
            name, paths, values, labels = key.rsplit(".", 1)[-1], [key], spec, None
        elif isinstance(spec, Mapping):
            extra = sorted(set(spec) - {"set", "values", "labels"})
            if extra:
                raise _fail(source, f"{where}.{extra[0]}", "unknown key; allowed keys: ['labels', 'set', 'values']")
            if "set" not in spec or "values" not in spec:
                raise _fail(source, where, "expected 'set' (a key or list of keys) and 'values' (a list)")
            name, paths, values, labels = key, spec["set"], spec["values"], spec.get("labels")
            paths = [paths] if isinstance(paths, str) else paths
            if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
                raise _fail(source, f"{where}.set", f"expected a key or a list of keys, got {paths!r}")
        else:
            raise _fail(source, where, f"expected a list of values or a table with 'set' and 'values', got {spec!r}")
        if not isinstance(values, list) or not values:
            raise _fail(source, where, f"expected a non-empty list of values, got {values!r}")
        if labels is None:
            labels = [_label(v) for v in values]
        if not isinstance(labels, list) or len(labels) != len(values) or len(set(map(str, labels))) != len(labels):
            raise _fail(source, f"{where}.labels", f"expected {len(values)} distinct labels, got {labels!r}")
        for path in paths:
            _check_path(path, exp, source, where)
        if name in RESERVED_PARAMS:
            raise _fail(source, where, f"parameter name {name!r} is a results column; use the long form with "
                                       "another name")
        if any(p.name == name for p in params):
            raise _fail(source, where, f"parameter name {name!r} used twice; use the long form with its own name")
        params.append(SweepParameter(name, tuple(paths), tuple(values), tuple(str(lb) for lb in labels)))
    return params


def _label(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(map(str, value))
    return str(value)


def _check_path(path: str, exp: Experiment, source: str, where: str) -> None:
    parts = path.split(".")
    if parts[0] == "env" and len(parts) == 2:
        if parts[1] == "horizon":
            raise _fail(source, where, "'env.horizon' cannot be swept: it fixes the run size; write one experiment "
                                       "per value")
        return
    if parts[0] == "agents" and len(parts) == 3:
        if parts[2] == "seed":
            raise _fail(source, where, "agents are seeded from the top-level 'seed'")
        if parts[1] not in exp.agents:
            raise _fail(source, where, f"{path!r} names agent {parts[1]!r}; the agents are {sorted(exp.agents)}")
        if parts[2] == "type":
            raise _fail(source, where, "sweeping an agent's type is not supported; define one agent per type")
        return
    if parts[0] in ("horizon", "replications", "seed") and len(parts) == 1:
        raise _fail(source, where, f"{path!r} cannot be swept: it fixes the run size; write one experiment per value")
    raise _fail(source, where, f"{path!r}: expected 'env.<option>' or 'agents.<label>.<option>'")


def _assign(env: dict, agents: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    if parts[0] == "env":
        env[parts[1]] = value
    else:
        agents[parts[1]][parts[2]] = value


# -- the shipped experiments: the paper's grid, then the experiments beyond it, as TOML files ----
PAPER_DIR = Path(__file__).with_name("paper")
PAPER_ORDER = ("arms", "noise-linear", "noise-mlp", "dims", "misspecification-1d", "hedged", "simulation-access",
               "long-horizon", "covariates")
BEYOND_DIR = Path(__file__).with_name("beyond")


def _named_files() -> dict[str, Path]:
    """Name -> TOML file of every shipped experiment: ``paper/`` in the paper's order, then ``beyond/`` by name."""
    files = {name: PAPER_DIR / f"{name}.toml" for name in PAPER_ORDER}
    for path in sorted(BEYOND_DIR.glob("*.toml"), key=lambda p: p.stem):  # by name: "a" before "a-b"
        if path.stem in files:
            raise ExperimentError(f"experiment {path.stem!r}: {path} has the name of the paper's "
                                  f"{files[path.stem]}; rename one")
        files[path.stem] = path
    return files


def named_experiments() -> dict[str, Experiment]:
    """Every shipped experiment: the paper's grid (``paper/``, in the paper's order), then the experiments
    beyond the paper (``beyond/``, alphabetical)."""
    return {name: Experiment.from_file(path) for name, path in _named_files().items()}


def load_experiment(spec: str | Path) -> Experiment:
    """A named experiment (``"arms"``, see :func:`named_experiments`) or a TOML file path."""
    files = _named_files()
    if isinstance(spec, str) and spec in files:
        return Experiment.from_file(files[spec])
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return Experiment.from_file(path)
    raise ExperimentError(f"experiment: {spec!r} is neither a named experiment {list(files)} nor a .toml file")
