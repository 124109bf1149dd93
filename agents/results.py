"""Results of bandit runs: :class:`BanditResult` and the mean / standard-error helpers every summary uses.

``run_bandit`` and ``run_sb3`` both return a ``BanditResult``; neither imports the other for it.
A result keeps, per agent and replication, every round's cumulative pseudo-regret, reward, action
and whether the action was optimal, with the run's configuration, seeds, timings and package
versions; :meth:`BanditResult.save` / :meth:`BanditResult.load` round-trip all of it through one
``.npz`` file (JSON header, no pickle), and :meth:`BanditResult.to_pandas` gives one tidy row per
(agent, replication, round).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.datafiles import DataFileError, read_npz, write_npz
from gambit_gym.extras import require

RESULT_FORMAT = "gambit-gym-bandit-result"
RESULT_VERSION = 1
#: The per-round arrays of a result, by file prefix: (attribute, dtype kind, NumPy dtype).
_ROUND_ARRAYS = {"regret": ("cumulative_regret", "f", np.float64), "reward": ("rewards", "f", np.float64),
                 "action": ("actions", "iu", np.int64), "optimal": ("optimal", "b", np.bool_)}


def standard_error(values: Any, axis: int = 0) -> Any:
    """Standard error of the mean along ``axis`` (sample sd with ddof=1 over sqrt(n)); NaN when n < 2.

    Example:
        >>> round(float(standard_error([1.0, 2.0, 3.0, 4.0])), 4)
        0.6455
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[axis]
    if n < 2:
        out = np.full(np.delete(x.shape, axis), np.nan) if x.ndim > 1 else np.float64("nan")
        return out
    return x.std(axis=axis, ddof=1) / math.sqrt(n)


@dataclass(eq=False)
class BanditResult:
    """What a run recorded, per agent: arrays of shape ``(replications, horizon)``.

    Attributes:
        cumulative_regret: cumulative pseudo-regret (against the exact expected rewards).
        rewards: the observed rewards.
        actions: the actions played (integers in ``0 .. n_actions - 1``).
        optimal: whether each action was optimal (zero pseudo-regret; ties count as optimal).
        horizon, replications, seed: the run's shape and root seed.
        n_actions: the number of actions (``None`` if unknown).
        config: the environment, its options, each agent's type and keyword arguments, and the
            seeds of the environment streams (JSON values).
        seconds: wall-clock seconds per agent.
        versions: package versions of the run (Python, gambit-gym, NumPy, Gymnasium, torch and
            Stable-Baselines3 when used).

    ``rewards``, ``actions`` and ``optimal`` may be empty (a result built from regret alone); an
    agent that has one of them has it with the regret's shape.

    Example:
        >>> from agents import StandardTS, run_bandit
        >>> res = run_bandit("GeneratorMediated-v0", {"StdTS": StandardTS}, horizon=20,
        ...                  replications=4, seed=0, progress=False)
        >>> res.cumulative_regret["StdTS"].shape, res.actions["StdTS"].dtype, res.arm_counts("StdTS").sum()
        ((4, 20), dtype('int64'), np.int64(80))
    """

    cumulative_regret: dict[str, np.ndarray]
    horizon: int
    replications: int
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rewards: dict[str, np.ndarray] = field(default_factory=dict)
    actions: dict[str, np.ndarray] = field(default_factory=dict)
    optimal: dict[str, np.ndarray] = field(default_factory=dict)
    n_actions: int | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (self.replications, self.horizon)
        for attr, _, _ in _ROUND_ARRAYS.values():
            arrays = getattr(self, attr)
            extra = sorted(set(arrays) - set(self.cumulative_regret))
            if extra:
                raise ValueError(f"{attr}: agents {extra} have no cumulative_regret")
            for name, values in arrays.items():
                if np.shape(values) != shape:
                    raise ValueError(f"{attr}[{name!r}]: expected shape {shape} (replications, horizon), "
                                     f"got {np.shape(values)}")

    @property
    def agents(self) -> list[str]:
        """The agents' names, in the order they ran."""
        return list(self.cumulative_regret)

    def _check_agent(self, name: str, attr: str = "cumulative_regret") -> None:
        if name not in self.cumulative_regret:
            raise KeyError(f"agent: {name!r} is not in this result; expected one of {self.agents}")
        if name not in getattr(self, attr):
            raise ValueError(f"{attr}: not recorded for agent {name!r} (a result built from regret alone, or "
                             "an agent run outside run_bandit / run_sb3)")

    def summary(self) -> dict[str, dict[str, float]]:
        """Per agent: mean and standard error of the final cumulative regret, seconds, and where
        recorded the fraction of optimal actions (``optimal_rate``) and the mean reward per round."""
        out = {}
        for name, reg in self.cumulative_regret.items():
            final = reg[:, -1]
            se = standard_error(final)
            out[name] = {"mean": float(final.mean()), "se": float(se), "seconds": self.seconds.get(name, 0.0)}
            if name in self.optimal:
                out[name]["optimal_rate"] = float(self.optimal[name].mean())
            if name in self.rewards:
                out[name]["mean_reward"] = float(self.rewards[name].mean())
        return out

    def arm_counts(self, agent: str) -> np.ndarray:
        """How often each action was played in each replication: ``(replications, n_actions)``."""
        self._check_agent(agent, "actions")
        acts = self.actions[agent]
        k = self.n_actions if self.n_actions is not None else int(acts.max()) + 1
        counts = np.zeros((self.replications, k), dtype=np.int64)
        np.add.at(counts, (np.arange(self.replications)[:, None], acts), 1)
        return counts

    def optimal_action_rate(self, agent: str) -> np.ndarray:
        """Fraction of replications that played an optimal action, per round: ``(horizon,)``."""
        self._check_agent(agent, "optimal")
        return self.optimal[agent].mean(axis=0)

    def paired_difference(self, agent: str, baseline: str) -> dict[str, Any]:
        """Mean and standard error of ``agent``'s final cumulative regret minus ``baseline``'s.

        The difference is taken replication by replication and its standard error is that of the
        ``replications`` differences (sd with ddof=1 over sqrt(n)), valid whenever the replications
        are independent of each other. Pairing is exact (``common_random_numbers`` is True) when both
        agents ran in the same ``run_bandit`` loop: replication i of every such agent met the same
        environment seed, hence the same contexts and the same noise draws, so the noise they share
        cancels and the standard error is usually far smaller than an unpaired one. An SB3 agent seeds
        its environments differently (see :func:`agents.sb3.run_sb3`): a pair with one is independent,
        and the same formula then gives the unpaired standard error.

        Returns:
            ``{"mean", "se", "n", "common_random_numbers"}``.

        Example:
            >>> from agents import LinearTS, StandardTS, run_bandit
            >>> res = run_bandit("GeneratorMediated-v0", {"StdTS": StandardTS, "LinTS": LinearTS},
            ...                  horizon=50, replications=6, seed=0, progress=False)
            >>> d = res.paired_difference("LinTS", "StdTS")
            >>> sorted(d), d["n"], d["common_random_numbers"]
            (['common_random_numbers', 'mean', 'n', 'se'], 6, True)
        """
        self._check_agent(agent)
        self._check_agent(baseline)
        diff = self.cumulative_regret[agent][:, -1] - self.cumulative_regret[baseline][:, -1]
        streams = [self.config.get("agents", {}).get(n, {}).get("env_streams") for n in (agent, baseline)]
        return {"mean": float(diff.mean()), "se": float(standard_error(diff)), "n": int(diff.size),
                "common_random_numbers": streams[0] is not None and streams[0] == streams[1] == "run_bandit"}

    def to_pandas(self) -> Any:
        """One row per (agent, replication, round): a tidy ``pandas.DataFrame`` (needs the ``pandas`` extra).

        Columns: ``agent``, ``replication`` (0-based), ``round`` (1-based), ``cumulative_regret``,
        ``regret`` (that round's pseudo-regret, from the differences of the cumulative sums) and, where
        recorded, ``reward``, ``action`` and ``optimal``. An agent without a recorded column gets
        missing values in it.

        Example:
            >>> from agents import StandardTS, run_bandit
            >>> res = run_bandit("GeneratorMediated-v0", {"StdTS": StandardTS}, horizon=3, replications=2,
            ...                  seed=0, progress=False)
            >>> df = res.to_pandas()
            >>> list(df.columns)
            ['agent', 'replication', 'round', 'cumulative_regret', 'regret', 'reward', 'action', 'optimal']
        """
        pd = require("pandas", "pandas", "BanditResult.to_pandas")
        R, T = self.replications, self.horizon
        frames = []
        for name, reg in self.cumulative_regret.items():
            cols: dict[str, Any] = {
                "agent": np.full(R * T, name, dtype=object),
                "replication": np.repeat(np.arange(R), T),
                "round": np.tile(np.arange(1, T + 1), R),
                "cumulative_regret": reg.reshape(-1),
                "regret": np.diff(reg, axis=1, prepend=0.0).reshape(-1),
            }
            if name in self.rewards:
                cols["reward"] = self.rewards[name].reshape(-1)
            if name in self.actions:
                cols["action"] = pd.array(self.actions[name].reshape(-1), dtype="Int64")
            if name in self.optimal:
                cols["optimal"] = pd.array(self.optimal[name].reshape(-1), dtype="boolean")
            frames.append(pd.DataFrame(cols))
        df = pd.concat(frames, ignore_index=True)
        for col, dtype in (("reward", "float64"), ("action", "Int64"), ("optimal", "boolean")):
            if col in df:
                df[col] = df[col].astype(dtype)
        df["agent"] = df["agent"].astype(pd.CategoricalDtype(self.agents))
        return df

    def table(self) -> str:
        """The summary as a Markdown table."""
        rows = [f"| agent | final cumulative regret (mean +- SE, {self.replications} reps, T = {self.horizon}) |",
                "|---|---|"]
        for name, s in sorted(self.summary().items(), key=lambda kv: kv[1]["mean"]):
            rows.append(f"| {name} | {s['mean']:.2f} +- {s['se']:.2f} |")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None, ax: Any = None, title: str | None = None):
        """Mean cumulative regret against round with 95% bands (mean +- 1.96 SE); returns the axes.

        Each agent has its colour of every figure (:func:`agents.plotting.agent_color`); the legend sits
        right of the axes, its entries in the order of the curves' ends, highest first. ``path``: also save
        the figure there (PNG, PDF, ... by suffix). ``ax``: draw into these axes instead of a new figure.
        """
        from agents.plotting import agent_colors, pyplot

        plt = pyplot(headless=path is not None and ax is None)
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        rounds = np.arange(1, self.horizon + 1)
        colors = agent_colors(self.cumulative_regret)
        # highest final regret first, so the legend reads in the order the curves end
        order = sorted(self.cumulative_regret, key=lambda n: -float(self.cumulative_regret[n][:, -1].mean()))
        for name in order:
            reg = self.cumulative_regret[name]
            mean = reg.mean(axis=0)
            se = standard_error(reg, axis=0) if len(reg) > 1 else np.zeros_like(mean)
            ax.plot(rounds, mean, label=name, color=colors[name])
            ax.fill_between(rounds, mean - 1.96 * se, mean + 1.96 * se, color=colors[name], alpha=0.2, lw=0)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative pseudo-regret")
        ax.set_xlim(1, self.horizon)
        ax.set_title(title or f"{self.replications} replications, 95% bands")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
        if path is not None:
            ax.figure.savefig(path, dpi=120, bbox_inches="tight")
        return ax

    def save(self, path: str | Path) -> Path:
        """Write everything to ``path``: one compressed ``.npz`` (no pickle), written atomically.

        Arrays ``regret/<i>``, ``reward/<i>``, ``action/<i>``, ``optimal/<i>`` for the i-th agent, and a
        JSON header with the agents' names, horizon, replications, seed, ``n_actions``, ``config``,
        ``seconds`` and ``versions``. :meth:`load` gives back an equal result. Returns the path.

        Example:
            >>> import tempfile, pathlib, numpy as np
            >>> res = BanditResult({"a": np.array([[1.0, 3.0]])}, horizon=2, replications=1, seed=7)
            >>> path = res.save(pathlib.Path(tempfile.mkdtemp()) / "res.npz")
            >>> BanditResult.load(path).cumulative_regret["a"].tolist()
            [[1.0, 3.0]]
        """
        header = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "agents": self.agents,
                  "horizon": int(self.horizon), "replications": int(self.replications), "seed": int(self.seed),
                  "n_actions": None if self.n_actions is None else int(self.n_actions),
                  "config": self.config, "seconds": {k: float(v) for k, v in self.seconds.items()},
                  "versions": self.versions}
        arrays = {}
        for prefix, (attr, _, dtype) in _ROUND_ARRAYS.items():
            for i, name in enumerate(self.agents):
                if name in getattr(self, attr):
                    arrays[f"{prefix}/{i}"] = np.asarray(getattr(self, attr)[name], dtype=dtype)
        return write_npz(path, header, arrays)

    @classmethod
    def load(cls, path: str | Path, max_bytes: int | None = None) -> BanditResult:
        """Read a file written by :meth:`save`, checking every array; never executes code from it.

        Raises:
            agents.datafiles.DataFileError: naming the file and what was wrong (missing, truncated,
                foreign, another version, arrays of the wrong shape or type, NaN regret).
        """
        header, arrays = read_npz(path, RESULT_FORMAT, RESULT_VERSION, max_bytes)

        def fail(problem: str) -> DataFileError:
            return DataFileError(f"{path}: {problem}")

        names = header.get("agents")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names) \
                or len(set(names)) != len(names):
            raise fail(f"header 'agents': expected a list of distinct names, got {names!r}")
        sizes = {}
        for key in ("horizon", "replications", "seed"):
            value = header.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
                raise fail(f"header {key!r}: expected a {'non-negative' if key == 'seed' else 'positive'} "
                           f"integer, got {value!r}")
            sizes[key] = value
        n_actions = header.get("n_actions")
        if n_actions is not None and (isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions < 1):
            raise fail(f"header 'n_actions': expected a positive integer or null, got {n_actions!r}")
        for key in ("config", "seconds", "versions"):
            if not isinstance(header.get(key), dict):
                raise fail(f"header {key!r}: expected a JSON object, got {header.get(key)!r}")
        shape = (sizes["replications"], sizes["horizon"])
        expected = {f"{prefix}/{i}" for prefix in _ROUND_ARRAYS for i in range(len(names))}
        unknown = sorted(set(arrays) - expected)
        if unknown:
            raise fail(f"unexpected arrays {unknown}")
        fields: dict[str, dict[str, np.ndarray]] = {}
        for prefix, (attr, kinds, dtype) in _ROUND_ARRAYS.items():
            fields[attr] = {}
            for i, name in enumerate(names):
                values = arrays.get(f"{prefix}/{i}")
                if values is None:
                    if prefix == "regret":
                        raise fail(f"no regret array for agent {name!r} (regret/{i})")
                    continue
                if values.shape != shape or values.dtype.kind not in kinds:
                    raise fail(f"{prefix}/{i} ({name!r}): expected {np.dtype(dtype).name} of shape {shape}, got "
                               f"{values.dtype} of shape {values.shape}")
                if values.dtype.kind == "f" and not np.isfinite(values).all():
                    raise fail(f"{prefix}/{i} ({name!r}): holds NaN or infinite values")
                if prefix == "action" and values.size and (values.min() < 0 or (
                        n_actions is not None and values.max() >= n_actions)):
                    top = "" if n_actions is None else f" .. {n_actions - 1}"
                    raise fail(f"{prefix}/{i} ({name!r}): expected actions in 0{top}, got {values.min()} .. "
                               f"{values.max()}")
                fields[attr][name] = values.astype(dtype, copy=False)
        seconds = header["seconds"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seconds.values()):
            raise fail(f"header 'seconds': expected numbers, got {seconds!r}")
        return cls(fields["cumulative_regret"], sizes["horizon"], sizes["replications"], sizes["seed"],
                   header["config"], {k: float(v) for k, v in seconds.items()}, fields["rewards"],
                   fields["actions"], fields["optimal"], n_actions, header["versions"])

