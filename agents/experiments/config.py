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

Every config of the grid runs with the same root seed, so configs share their
random numbers where they can (common random numbers across a sweep).
"""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.sb3 import SB3_ALGORITHMS, SB3_PREFIX, parse_sb3_spec
from gambit_gym import ENV_ID
from gambit_gym.validation import check_int

#: Built-in agent types: name -> "module:attribute".
AGENT_TYPES = {
    "PoGAMBITTS": "agents.gambitts:PoGAMBITTS",
    "FoGAMBITTS": "agents.gambitts:FoGAMBITTS",
    "EnsembleGAMBITTS": "agents.ensemble:EnsembleGAMBITTS",
    "StandardTS": "agents.thompson:StandardTS",
    "LinearTS": "agents.thompson:LinearTS",
}
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
                  "notes"}


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
        if "horizon" in env:
            raise _fail(source, "env.horizon", "set the horizon with the top-level key 'horizon'")
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
        exp = cls(name=name, description=description, horizon=ints["horizon"], replications=ints["replications"],
                  seed=ints["seed"], env=dict(env), agents=checked_agents, block_size=ints["block_size"],
                  notes=str(data.get("notes", "")), source=source)
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
        return cls.from_dict(data, source=str(path))

    def with_overrides(self, horizon: int | None = None, replications: int | None = None,
                       seed: int | None = None) -> Experiment:
        """A copy with the run-size settings replaced (``None`` keeps the file's value)."""
        data = copy.deepcopy(self)
        for key, value, minimum in (("horizon", horizon, 1), ("replications", replications, 1), ("seed", seed, 0)):
            if value is not None:
                setattr(data, key, _check_int(None, key, value, minimum))
        return data

    # -- the grid --------------------------------------------------------------------------
    def configs(self) -> list[Config]:
        """Every point of the grid, in sweep order (first parameter slowest)."""
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
            out.append(Config(self.name, config_id(params), params, env, agents, self.horizon, self.replications,
                              self.seed, self.block_size))
        files: dict[str, str] = {}
        for c in out:  # labels that differ only in characters a file name cannot hold would share a file
            other = files.setdefault(c.filename.casefold(), c.config_id)
            if other != c.config_id:
                raise _fail(self.source, "sweep", f"configs {other!r} and {c.config_id!r} map to the same results "
                                                  f"file {c.filename!r}; give them distinct labels")
        return out

    def validate(self) -> None:
        """Build every config's environment and agents once (on one environment), so a bad option
        fails now, naming the key, instead of inside a worker hours into a sweep."""
        import gymnasium as gym

        for config in self.configs():
            where = f"{self.source}: config {config.config_id}"
            try:
                env = gym.make(ENV_ID, horizon=config.horizon, **config.env)
            except (TypeError, ValueError) as exc:
                raise ExperimentError(f"{where}: env: {exc}") from exc
            for label, spec in config.agents.items():
                if parse_sb3_spec(spec["type"]) is not None:  # SB3 models are built per replication by run_sb3
                    continue
                cls = resolve_agent_type(spec["type"])
                kwargs = {k: v for k, v in spec.items() if k != "type"}
                try:
                    cls.from_env(env, seed=0, **kwargs)
                except (TypeError, ValueError) as exc:
                    raise ExperimentError(f"{where}: agents.{label}: {exc}") from exc
            env.close()

    def definition(self) -> dict[str, Any]:
        """Plain-data form, written beside the results to detect a changed definition on resume.

        Agents are an ordered list of ``[label, spec]``: their seeds follow their order."""
        return {"name": self.name, "description": self.description, "horizon": self.horizon,
                "replications": self.replications, "seed": self.seed, "block_size": self.block_size,
                "env": self.env, "agents": [[label, spec] for label, spec in self.agents.items()],
                "sweep": [{"name": p.name, "set": list(p.paths), "values": list(p.values), "labels": list(p.labels)}
                          for p in self.sweep]}

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


# -- the paper's grid, shipped as TOML files --------------------------------------------------
PAPER_DIR = Path(__file__).with_name("paper")
PAPER_ORDER = ("arms", "noise-linear", "noise-mlp", "dims", "misspecification-1d", "hedged", "simulation-access",
               "long-horizon", "covariates")


def named_experiments() -> dict[str, Experiment]:
    """The paper's study grid of the paper, in the paper's order."""
    return {name: Experiment.from_file(PAPER_DIR / f"{name}.toml") for name in PAPER_ORDER}


def load_experiment(spec: str | Path) -> Experiment:
    """A named experiment (``"arms"``) or a TOML file path."""
    if isinstance(spec, str) and spec in PAPER_ORDER:
        return Experiment.from_file(PAPER_DIR / f"{spec}.toml")
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return Experiment.from_file(path)
    raise ExperimentError(f"experiment: {spec!r} is neither a named experiment {list(PAPER_ORDER)} nor a .toml file")
