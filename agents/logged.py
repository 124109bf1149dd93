"""Logged bandit feedback: every round of a run as (context, action, reward, propensity), kept as data.

* :class:`Round` is what ``run_bandit``'s per-round ``callback`` receives (and ``run_sb3``'s, one
  replication at a time).
* :class:`FeedbackLogger` is such a callback: it keeps every round of every agent, with the
  logging policy's propensity of the action it played, as a :class:`LoggedBanditFeedback`.
* :class:`LoggedBanditFeedback` holds one dataset in Open Bandit Pipeline's dictionary layout
  (:meth:`~LoggedBanditFeedback.as_obp_dict`), plus the context index, the treatment embedding
  and where each round came from; it saves to ``.npz`` (always) or Parquet (with ``pyarrow``) and
  loads back with every array checked.

Propensities (``pscore``): a Thompson-sampling agent (one that implements ``_sample_scores``:
StandardTS, LinearTS, PoGAMBITTS, FoGAMBITTS) plays the argmax of one posterior draw, so the
probability of each action is estimated by repeating that draw ``n_draws`` times from a stream of
its own (:meth:`agents.BatchedAgent.action_probabilities`), before the agent learns from the round;
the draw that chose the action counts as one more, so ``pi_b = (n_draws * p_hat + onehot(action)) /
(n_draws + 1)`` and ``pscore = pi_b[action] >= 1 / (n_draws + 1)``. Then ``E[1 / pscore] = (1 - (1 -
p)^(n_draws + 1)) / p`` for a true propensity p: inverse weighting is unbiased up to the factor
``1 - (1 - p)^(n_draws + 1)``, negligible once ``n_draws`` is well above ``1 / p``. An agent of your
own may report exact probabilities through a method ``action_probabilities(obs) -> (R, K)``; any
other agent (Stable-Baselines3, ``EnsembleGAMBITTS``, a custom one) is logged with ``pscore = NaN``,
and the estimators that need a propensity say so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.base import BatchedAgent
from agents.datafiles import (
    DEFAULT_MAX_BYTES,
    DataFileError,
    jsonable,
    package_versions,
    read_npz,
    write_npz,
)
from gambit_gym.datafiles import atomic_path
from gambit_gym.extras import require
from gambit_gym.validation import check_int

LOGGED_FORMAT = "gambit-gym-logged-bandit-feedback"
LOGGED_VERSION = 1
#: The arrays of a dataset: (dtype kind(s), the NumPy dtype kept, number of dimensions).
_ARRAYS = {
    "context": ("f", np.float64, 2),
    "action": ("iu", np.int64, 1),
    "reward": ("f", np.float64, 1),
    "pscore": ("f", np.float64, 1),
    "pi_b": ("f", np.float64, 2),
    "expected_reward": ("f", np.float64, 2),
    "context_index": ("iu", np.int64, 1),
    "treatment_embedding": ("f", np.float64, 2),
    "replication": ("iu", np.int64, 1),
    "round": ("iu", np.int64, 1),
}
#: Propensities may differ from a probability distribution by this much (sums, pscore vs pi_b).
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Round:
    """One round of one agent, as a per-round callback sees it: after ``env.step``, before ``agent.update``
    (so ``agent`` is still in the state it acted in).

    Attributes:
        agent_name: the agent's label in the run.
        agent: the agent object (a Stable-Baselines3 model for ``sb3:`` agents).
        t: the round, 0-based.
        replications: ``(n,)`` the replication of each row.
        obs: ``(n, F)`` the observations the actions were chosen on.
        actions, rewards: ``(n,)`` what was played and observed.
        info: the step's info, batched (``info["regret"]`` is ``(n,)``, ``info["treatment_embedding"]``
            ``(n, d)``, ``info["played_context"]`` the rows' context indices).
        env: the environment stepped (``env.unwrapped.expected_rewards`` gives the exact mu(a, x)).

    Treat the arrays as read-only: the run keeps using them.
    """

    agent_name: str
    agent: Any
    t: int
    replications: np.ndarray
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    info: dict[str, Any]
    env: Any


#: A per-round callback: called with each :class:`Round`; its return value is ignored.
RoundCallback = Callable[[Round], Any]


def batched_info(info: dict[str, Any]) -> dict[str, Any]:
    """A single environment's info in the vector environment's form, one row: ``x -> array([x])``.

    Example:
        >>> batched_info({"regret": 0.5, "context": {"location": "home"}})
        {'regret': array([0.5]), 'context': {'location': array(['home'], dtype='<U4')}}
    """
    return {k: batched_info(v) if isinstance(v, dict) else np.asarray([v]) for k, v in info.items()}


class RoundRecorder(gym.Wrapper):
    """Records the first ``horizon`` steps of a single environment's first episode, whatever drives it.

    Keeps each step's action, reward and whether the action was optimal (zero pseudo-regret), and
    calls ``callback`` with a one-row :class:`Round` per step; ``run_sb3`` wraps each replication's
    environment in one, so SB3's own ``learn()`` loop is recorded like ``run_bandit``'s. Set
    :attr:`agent` once the learner exists. It changes nothing the driver sees.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = RoundRecorder(gym.make("GeneratorMediated-v0"), horizon=3)
        >>> _ = env.reset(seed=0)
        >>> for a in (0, 1, 2, 3):
        ...     _ = env.step(a)
        >>> env.actions.tolist(), env.steps
        ([0, 1, 2], 3)
    """

    def __init__(self, env: gym.Env, horizon: int, agent_name: str = "", replication: int = 0,
                 callback: RoundCallback | None = None) -> None:
        super().__init__(env)
        self.horizon = check_int("horizon", horizon, 1)
        self.agent_name, self.replication, self.callback = agent_name, int(replication), callback
        self.agent: Any = None
        self.actions = np.zeros(self.horizon, dtype=np.int64)
        self.rewards = np.zeros(self.horizon)
        self.optimal = np.zeros(self.horizon, dtype=bool)
        self.steps = 0
        self._obs: Any = None
        self._first_over = False

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._first_over = self._first_over or self.steps > 0
        self._obs = obs
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not self._first_over and self.steps < self.horizon:
            t, a, r = self.steps, int(action), float(reward)
            self.actions[t], self.rewards[t], self.optimal[t] = a, r, float(info["regret"]) <= 0.0
            if self.callback is not None:
                self.callback(Round(self.agent_name, self.agent, t, np.array([self.replication]),
                                    np.asarray(self._obs)[None], np.array([a]), np.array([r]), batched_info(info),
                                    self.env))
            self.steps += 1
        self._first_over = self._first_over or terminated or truncated
        self._obs = obs
        return obs, reward, terminated, truncated, info


@dataclass(eq=False)
class LoggedBanditFeedback:
    """One logged dataset: ``n_rounds`` rounds of one logging policy (agent), in rows.

    Attributes (``n`` rows, ``K`` actions):
        context: ``(n, F)`` the observation each action was chosen on (context one-hots).
        action: ``(n,)`` the action played.
        reward: ``(n,)`` the reward observed.
        pscore: ``(n,)`` the logging policy's probability of that action (NaN: unknown).
        pi_b: ``(n, K)`` the logging policy's probability of every action (NaN rows: unknown).
        expected_reward: ``(n, K)`` the exact expected reward mu(a, x) of every action in the round's context.
        context_index: ``(n,)`` the context's index (``env.unwrapped.contexts``).
        treatment_embedding: ``(n, d)`` the working embedding of the generated treatment.
        replication, round: ``(n,)`` where the row came from (replication 0-based, round 1-based).
        n_actions: ``K``.
        meta: JSON values: the logging agent, how propensities were obtained, ``n_draws``, the
            environment, package versions.

    Rows are sorted by replication, then round. :meth:`as_obp_dict` gives Open Bandit Pipeline's layout.
    """

    context: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    pi_b: np.ndarray
    expected_reward: np.ndarray
    context_index: np.ndarray
    treatment_embedding: np.ndarray
    replication: np.ndarray
    round: np.ndarray
    n_actions: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.n_actions = check_int("n_actions", self.n_actions, 1)
        for name, (kinds, dtype, ndim) in _ARRAYS.items():
            value = np.asarray(getattr(self, name))
            if value.ndim != ndim or value.dtype.kind not in kinds:
                raise ValueError(f"{name}: expected a {ndim}-D array of {np.dtype(dtype).name}, got {value.dtype} "
                                 f"of shape {value.shape}")
            setattr(self, name, value.astype(dtype, copy=False))
        n, K = self.action.shape[0], self.n_actions
        for name in _ARRAYS:
            value = getattr(self, name)
            if value.shape[0] != n:
                raise ValueError(f"{name}: expected {n} rows (one per round, as action), got {value.shape[0]}")
        for name in ("pi_b", "expected_reward"):
            if getattr(self, name).shape[1] != K:
                raise ValueError(f"{name}: expected shape ({n}, {K}) (rounds, n_actions), got "
                                 f"{getattr(self, name).shape}")
        if n and (self.action.min() < 0 or self.action.max() >= K):
            raise ValueError(f"action: expected values in [0, {K - 1}]")
        if n and (self.context_index.min() < 0 or self.replication.min() < 0 or self.round.min() < 1):
            raise ValueError("context_index, replication: expected values >= 0; round: >= 1")
        for name in ("context", "reward", "expected_reward", "treatment_embedding"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name}: holds NaN or infinite values")
        known = np.isfinite(self.pscore)
        if not np.array_equal(known, np.isfinite(self.pi_b).all(axis=1)) or np.isinf(self.pscore).any():
            raise ValueError("pscore, pi_b: a round's propensities must be all known (finite) or all NaN")
        pi, ps = self.pi_b[known], self.pscore[known]
        if (pi < 0).any() or (np.abs(pi.sum(axis=1) - 1.0) > 1e-6).any():
            raise ValueError("pi_b: each known row must be a probability distribution (>= 0, summing to 1)")
        if (ps <= 0).any() or (np.abs(ps - pi[np.arange(len(pi)), self.action[known]]) > _TOLERANCE).any():
            raise ValueError("pscore: must be > 0 and equal pi_b[round, action] where known")
        if not isinstance(self.meta, dict):
            raise TypeError(f"meta: expected a dict of JSON values, got {type(self.meta).__name__}")

    # -- views -----------------------------------------------------------------------------
    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])

    @property
    def has_pscore(self) -> bool:
        """Whether every round's propensity is known (inverse weighting needs them)."""
        return bool(np.isfinite(self.pscore).all()) and self.n_rounds > 0

    def as_obp_dict(self) -> dict[str, Any]:
        """Open Bandit Pipeline's ``bandit_feedback`` dictionary, plus this dataset's extra keys.

        OBP's keys: ``n_rounds``, ``n_actions``, ``context``, ``action_context`` (one-hot actions, OBP's
        default), ``action``, ``position`` (``None``: one slot, as in OBP's synthetic data), ``reward``,
        ``expected_reward`` ``(n, K)``, ``pi_b`` ``(n, K, 1)`` and ``pscore``. Extra keys:
        ``context_index``, ``treatment_embedding``, ``replication``, ``round``. Arrays are copies.
        """
        return {
            "n_rounds": self.n_rounds,
            "n_actions": self.n_actions,
            "context": self.context.copy(),
            "action_context": np.eye(self.n_actions),
            "action": self.action.copy(),
            "position": None,
            "reward": self.reward.copy(),
            "expected_reward": self.expected_reward.copy(),
            "pi_b": self.pi_b[:, :, None].copy(),
            "pscore": self.pscore.copy(),
            "context_index": self.context_index.copy(),
            "treatment_embedding": self.treatment_embedding.copy(),
            "replication": self.replication.copy(),
            "round": self.round.copy(),
        }

    def to_pandas(self) -> Any:
        """One row per round (needs the ``pandas`` extra): the scalar columns, then ``context_0 ..``,
        ``expected_reward_0 ..``, ``pi_b_0 ..``, ``treatment_embedding_0 ..``."""
        pd = require("pandas", "pandas", "LoggedBanditFeedback.to_pandas")
        cols: dict[str, Any] = {k: getattr(self, k) for k in ("replication", "round", "context_index", "action",
                                                                "reward", "pscore")}
        for name in ("context", "expected_reward", "pi_b", "treatment_embedding"):
            for j, column in enumerate(getattr(self, name).T):
                cols[f"{name}_{j}"] = column
        return pd.DataFrame(cols)

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write to ``path``: Parquet if it ends in ``.parquet`` (needs ``pyarrow``), else compressed ``.npz``.

        Both are written atomically and hold every array and the metadata (JSON, no pickle).
        """
        path = Path(path)
        header = {"format": LOGGED_FORMAT, "version": LOGGED_VERSION, "n_actions": self.n_actions,
                  "meta": self.meta}
        if path.suffix == ".parquet":
            return self._save_parquet(path, header)
        return write_npz(path, header, {name: getattr(self, name) for name in _ARRAYS})

    def _save_parquet(self, path: Path, header: dict[str, Any]) -> Path:
        pa = require("pyarrow", "pandas", "saving logged bandit feedback as Parquet")
        pq = require("pyarrow.parquet", "pandas", "saving logged bandit feedback as Parquet")
        columns = {}
        for name, (_, _, ndim) in _ARRAYS.items():
            value = getattr(self, name)
            if ndim == 1:
                columns[name] = pa.array(value)
            else:  # a fixed-size list per row keeps the width even with zero rows
                columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(value.reshape(-1)), value.shape[1])
        table = pa.table(columns).replace_schema_metadata({"gambit_gym": json.dumps(jsonable(header))})
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, max_bytes: int | None = None) -> LoggedBanditFeedback:
        """Read a file written by :meth:`save` (``.parquet`` or ``.npz``), checking every array.

        Raises:
            agents.datafiles.DataFileError: naming the file and what was wrong.
        """
        path = Path(path)
        if path.suffix == ".parquet":
            header, arrays = _read_parquet(path, max_bytes)
        else:
            header, arrays = read_npz(path, LOGGED_FORMAT, LOGGED_VERSION, max_bytes)
        missing = sorted(set(_ARRAYS) - set(arrays))
        extra = sorted(set(arrays) - set(_ARRAYS))
        if missing or extra:
            raise DataFileError(f"{path}: expected the arrays {sorted(_ARRAYS)}; missing {missing}, unexpected {extra}")
        if not isinstance(header.get("meta"), dict):
            raise DataFileError(f"{path}: header 'meta': expected a JSON object")
        try:
            return cls(**arrays, n_actions=header.get("n_actions"), meta=header["meta"])
        except (ValueError, TypeError) as exc:
            raise DataFileError(f"{path}: {exc}") from None


def _read_parquet(path: Path, max_bytes: int | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    pa = require("pyarrow", "pandas", "reading logged bandit feedback from Parquet")
    pq = require("pyarrow.parquet", "pandas", "reading logged bandit feedback from Parquet")
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    limit = DEFAULT_MAX_BYTES if max_bytes is None else check_int("max_bytes", max_bytes, 1)
    try:
        pf = pq.ParquetFile(path)
        md = pf.metadata
        declared = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        if declared > limit:
            raise DataFileError(f"{path}: its columns would take {declared:,} bytes, more than the limit of "
                                f"{limit:,} (max_bytes)")
        raw = (pf.schema_arrow.metadata or {}).get(b"gambit_gym")
        if raw is None:
            raise DataFileError(f"{path}: not a gambit-gym {LOGGED_FORMAT} file (no gambit_gym metadata)")
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict) or header.get("format") != LOGGED_FORMAT:
            raise DataFileError(f"{path}: not a gambit-gym {LOGGED_FORMAT} file")
        if header.get("version") != LOGGED_VERSION:
            raise DataFileError(f"{path}: {LOGGED_FORMAT} version {header.get('version')!r}; this gambit-gym reads "
                                f"version {LOGGED_VERSION}")
        table = pf.read()
    except DataFileError:
        raise
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file: {exc}") from None
    arrays = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if column.null_count:
            raise DataFileError(f"{path}: column {name!r} has missing values")
        if pa.types.is_fixed_size_list(column.type):
            arrays[name] = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            arrays[name] = column.to_numpy(zero_copy_only=False)
        else:
            raise DataFileError(f"{path}: column {name!r} of type {column.type}; expected numbers")
    return header, arrays


class FeedbackLogger:
    """A per-round callback for ``run_bandit`` (or ``run_sb3``) that logs every round as bandit feedback.

    Args:
        n_draws: posterior draws per round for a Thompson-sampling agent's propensities (module
            docstring); each round then costs about ``n_draws`` extra action choices.
        agents: log only these agents (default: all).

    Example:
        >>> from agents import PoGAMBITTS, run_bandit
        >>> logger = FeedbackLogger(n_draws=50)
        >>> _ = run_bandit("GeneratorMediated-v0", {"po": (PoGAMBITTS, {"n_offline": 20})}, horizon=10,
        ...                replications=2, seed=0, callback=logger, progress=False)
        >>> data = logger.dataset("po")
        >>> data.n_rounds, data.has_pscore, data.as_obp_dict()["pi_b"].shape
        (20, True, (20, 5, 1))
    """

    def __init__(self, n_draws: int = 200, agents: Sequence[str] | None = None) -> None:
        self.n_draws = check_int("n_draws", n_draws, 1)
        if agents is not None and (isinstance(agents, str) or not all(isinstance(a, str) for a in agents)):
            raise TypeError(f"agents: expected a list of agent names or None, got {agents!r}")
        self.only = None if agents is None else set(agents)
        self._chunks: dict[str, list[dict[str, np.ndarray]]] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    @property
    def agents(self) -> list[str]:
        """The agents logged so far."""
        return list(self._chunks)

    def __call__(self, rnd: Round) -> None:
        if self.only is not None and rnd.agent_name not in self.only:
            return
        info, n = rnd.info, len(rnd.actions)
        oracle = getattr(getattr(rnd.env, "unwrapped", None), "expected_rewards", None)
        if oracle is None or "treatment_embedding" not in info or "played_context" not in info:
            raise TypeError(f"FeedbackLogger: agent {rnd.agent_name!r}: the environment must give exact expected "
                            "rewards (env.unwrapped.expected_rewards) and info['treatment_embedding'] and "
                            "info['played_context'], as GeneratorMediated-v0 does")
        ctx = np.asarray(info["played_context"], dtype=np.int64).reshape(n)
        actions = np.asarray(rnd.actions, dtype=np.int64).reshape(n)
        expected = np.asarray(oracle(ctx), dtype=np.float64).reshape(n, -1)
        pi_b, how = self._propensities(rnd, actions, expected.shape[1])
        chunk = {
            "context": np.asarray(rnd.obs, dtype=np.float64).reshape(n, -1),
            "action": actions,
            "reward": np.asarray(rnd.rewards, dtype=np.float64).reshape(n),
            "pi_b": pi_b,
            "expected_reward": expected,
            "context_index": ctx,
            "treatment_embedding": np.asarray(info["treatment_embedding"], dtype=np.float64).reshape(n, -1),
            "replication": np.asarray(rnd.replications, dtype=np.int64).reshape(n),
            "round": np.full(n, rnd.t + 1, dtype=np.int64),
        }
        if rnd.agent_name not in self._chunks:
            spec = getattr(rnd.env, "spec", None)
            self._chunks[rnd.agent_name] = []
            self._meta[rnd.agent_name] = {
                "agent": rnd.agent_name, "agent_type": jsonable(type(rnd.agent)), "propensity": how,
                "n_draws": self.n_draws if how == "monte-carlo" else None,
                "env": None if spec is None else {"id": spec.id, "kwargs": jsonable(spec.kwargs)},
                "versions": package_versions("torch", "stable_baselines3"),
            }
        self._chunks[rnd.agent_name].append(chunk)

    def _propensities(self, rnd: Round, actions: np.ndarray, K: int) -> tuple[np.ndarray, str]:
        """``pi_b (n, K)`` for this round and how it was obtained."""
        agent, n = rnd.agent, len(actions)
        if isinstance(agent, BatchedAgent):
            if not agent.reports_propensities:
                return np.full((n, K), np.nan), "unknown"
            obs = rnd.obs if agent.batched else rnd.obs[0]
            p_hat = np.asarray(agent.action_probabilities(obs, n_draws=self.n_draws)).reshape(n, K)
            played = np.zeros((n, K))
            played[np.arange(n), actions] = 1.0
            return (self.n_draws * p_hat + played) / (self.n_draws + 1), "monte-carlo"
        report = getattr(agent, "action_probabilities", None)
        if callable(report):
            pi = np.asarray(report(rnd.obs), dtype=np.float64)
            if pi.shape != (n, K) or (pi < 0).any() or (np.abs(pi.sum(axis=1) - 1) > 1e-6).any():
                raise ValueError(f"{rnd.agent_name}.action_probabilities(obs): expected probabilities of shape "
                                 f"({n}, {K}) summing to 1 per row, got shape {pi.shape}")
            return pi, "reported"
        return np.full((n, K), np.nan), "unknown"

    def dataset(self, agent: str | None = None) -> LoggedBanditFeedback:
        """The logged rounds of ``agent`` (optional when one agent was logged), sorted by replication and round."""
        if agent is None:
            if len(self._chunks) != 1:
                raise ValueError(f"agent: name one of the logged agents {self.agents}")
            agent = self.agents[0]
        if agent not in self._chunks:
            raise KeyError(f"agent: {agent!r} was not logged; logged: {self.agents}")
        chunks = self._chunks[agent]
        arrays = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        order = np.lexsort((arrays["round"], arrays["replication"]))
        arrays = {k: v[order] for k, v in arrays.items()}
        pi_b = arrays["pi_b"]
        pscore = pi_b[np.arange(len(pi_b)), arrays["action"]]
        return LoggedBanditFeedback(**arrays, pscore=pscore, n_actions=pi_b.shape[1], meta=dict(self._meta[agent]))
