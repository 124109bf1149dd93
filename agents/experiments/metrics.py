"""Per-round metrics of an experiment, recorded beside regret.

An experiment names them with the top-level key ``metrics``: a list of names, or a table of
name -> options (the form that takes options)::

    metrics = ["harm", "fallback_rate", "delivered_rate", "agent"]

    [metrics.harm]                # the same as a table, with options
    budget = 0.2
    [metrics.feasible_regret]
    budget = 0.2
    [metrics.fallback_rate]

Each metric watches every round of every agent through ``run_bandit``'s ``callback``
(:class:`agents.logged.Round`) and yields, per agent, *series*: each replication's value at the
rounds of :func:`metric_rounds` (a coarser log grid than the ``regret`` rows), an array
``(replications, len(metric_rounds))``, or one number for the config (a budget). The runner
writes them into the results file as rows whose ``statistic`` is the series' name (per
replication and round, like ``regret``; a number with empty round and replication, like
``seconds``), and the report summarises each at the last round (mean +- SE over replications).

Built-in metrics (:data:`METRICS`) and their series:

* ``harm`` (an environment with a safety layer whose ``harm`` is defined):
  ``harm.mean``, the realised cumulative mean harm of each replication up to the round;
  ``harm.expected``, the mean over the rounds so far of the exact expected harm of the chosen
  action (``info["expected_harm"]``); with a budget b, ``harm.violation`` (1.0 when ``harm.mean``
  exceeds b, else 0.0: its mean over replications is the violation rate) and ``harm.budget`` (b;
  ``harm.mean - b`` is the violation's size, the report's ``harm.excess``).
* ``fallback_rate``: the share of the rounds so far in which the fallback message went out
  (``info["fallback"]``); ``delivered_rate``: the share in which anything was delivered
  (``info["delivered"]``; below 1 only when the layer withholds). Both need a safety layer.
* ``feasible_regret`` (a safety layer with a harm; a budget b is required): the cumulative regret
  against the best budget-feasible action, ``feasible_best(x) - mu(a, x)`` summed over the rounds,
  where ``feasible_best(x)`` is the largest exact expected reward among the actions whose exact
  expected harm in context x (``scenario.expected_harm``) is at most b; when no action of a
  context fits, the least harmful one (the most rewarding of those that tie) is the benchmark.
  Playing an action over budget can make a round's feasible regret negative. Also writes
  ``feasible_regret.budget``.
* ``agent``: whatever the agent's optional ``diagnostics() -> dict[str, array (n,)]`` returns
  (one value per row of the block), as series ``agent.<key>``; an agent without the method
  records nothing. It is called when the agent has learned from the rounds before the recorded
  one (the callback runs before the agent's update), and must not draw from the agent's random
  stream (or it would change the run).
* ``simulation_queries``: the environment's count of queries to the current generator,
  ``current_queries`` (of the vector environment, else its ``unwrapped``; a number, or one per
  row), at each recorded round; an environment without it records nothing (no rows, rather than
  zeros that would read as "no queries").

The budget of ``harm`` and ``feasible_regret`` for an agent is the agent's own ``harm_budget``
(the budgeted agents', :mod:`agents.safety`) when it has one, else the metric's ``budget``
option; without either, ``harm`` writes no violation series for that agent and
``feasible_regret`` is an error.

Example:
    >>> from agents import StandardTS, run_bandit
    >>> safety = {"checks": [{"type": "threshold", "dimension": "z0", "above_quantile": 0.7}],
    ...           "on_reject": "withhold", "no_message_reward": 79.0, "harm": "z1"}
    >>> rec = MetricsRecorder({"harm": {"budget": 0.5}, "delivered_rate": {}}, horizon=30, replications=4)
    >>> res = run_bandit("GeneratorMediated-v0", {"std": StandardTS}, horizon=30, replications=4, seed=0,
    ...                  env_kwargs={"safety": safety}, progress=False, callback=rec)
    >>> series = rec.results("std")
    >>> sorted(series), series["harm.mean"].shape, series["harm.budget"]
    (['delivered_rate', 'harm.budget', 'harm.expected', 'harm.mean', 'harm.violation'], (4, 15), 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from agents.logged import Round
from agents.safety import HarmRecorder
from gambit_gym.validation import check_float, check_int

#: ``regret`` rows (and metric rows): every round up to this horizon; beyond it, a log grid of as many rounds.
REGRET_ROUNDS = 100


def regret_rounds(horizon: int) -> np.ndarray:
    """The rounds at which each replication's cumulative regret is written (``regret`` rows).

    Every round when ``horizon <= 100``; otherwise rounds 1-10 and 90 log-spaced rounds from 10
    to ``horizon``, rounded to whole rounds (those that round to the same round count once), always
    ending at ``horizon``: at most 100 rounds per replication, dense early where the curves bend.

    Example:
        >>> regret_rounds(5).tolist()
        [1, 2, 3, 4, 5]
        >>> r = regret_rounds(1000)
        >>> len(r) <= 100, r[:12].tolist(), r[-3:].tolist()
        (True, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [903, 950, 1000])
    """
    horizon = check_int("horizon", horizon, 1)
    if horizon <= REGRET_ROUNDS:
        return np.arange(1, horizon + 1)
    dense = 10
    logs = np.rint(np.geomspace(dense, horizon, REGRET_ROUNDS - dense + 1)).astype(np.int64)
    return np.unique(np.concatenate([np.arange(1, dense + 1), logs, [horizon]]))

#: metric rows: every round up to this horizon; beyond it, a log grid of as many rounds (metrics are many series
#: per agent, so they get a coarser grid than regret: a results folder stays a few times the size of regret's).
METRIC_ROUNDS = 20


def metric_rounds(horizon: int) -> np.ndarray:
    """The rounds at which each replication's metric series are written: every round when ``horizon <= 20``,
    otherwise 20 log-spaced rounds from 1 to ``horizon`` (those that round alike count once), ending at ``horizon``.

    Example:
        >>> metric_rounds(5).tolist()
        [1, 2, 3, 4, 5]
        >>> r = metric_rounds(1000)
        >>> len(r) <= 20, r[:4].tolist(), int(r[-1])
        (True, [1, 2, 3, 4], 1000)
    """
    horizon = check_int("horizon", horizon, 1)
    if horizon <= METRIC_ROUNDS:
        return np.arange(1, horizon + 1)
    logs = np.rint(np.geomspace(1, horizon, METRIC_ROUNDS)).astype(np.int64)
    return np.unique(np.concatenate([logs, [horizon]]))


#: A metric's series: per-replication values at the recorded rounds ``(replications, rounds)``, or one number.
Series = dict[str, "np.ndarray | float"]


def _scenario(env: Any) -> Any:
    return getattr(getattr(env, "unwrapped", env), "scenario", None)


def _need_layer(metric: str, env: Any, harm: bool) -> None:
    """A clear error when the environment has no safety layer (or, with ``harm``, no harm definition)."""
    layer = getattr(_scenario(env), "safety", None)
    if layer is None:
        raise ValueError(f"metrics.{metric}: needs an environment with a safety layer (env.safety; see "
                         "gambit_gym.safety)")
    if harm and getattr(layer, "harm", None) is None:
        raise ValueError(f"metrics.{metric}: needs a safety layer whose 'harm' is defined (env.safety.harm)")


class Metric:
    """One named recorder of per-round quantities (see the module docstring); a subclass sets :attr:`name`,
    :attr:`options` and what it records."""

    #: the name an experiment lists it by
    name: ClassVar[str] = ""
    #: option -> what it means (the only options accepted)
    options: ClassVar[dict[str, str]] = {}
    #: whether it reads the shared :class:`~agents.safety.HarmRecorder` of the run
    uses_harm_recorder: ClassVar[bool] = False

    def __init__(self, recorder: MetricsRecorder, options: Mapping[str, Any]) -> None:
        self.recorder, self.settings = recorder, dict(options)

    @classmethod
    def check_options(cls, options: Any) -> dict[str, Any]:
        """The options, checked: a table of known options (each named in the error)."""
        if not isinstance(options, Mapping):
            raise ValueError(f"metrics.{cls.name}: expected a table of options, got {options!r}")
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            raise ValueError(f"metrics.{cls.name}.{unknown[0]}: unknown option; options of {cls.name!r}: "
                             f"{sorted(cls.options)}")
        out = dict(options)
        if "budget" in out:
            out["budget"] = check_float(f"metrics.{cls.name}.budget", out["budget"], minimum=None)
        return out

    def check_env(self, env: Any) -> None:
        """Raise ``ValueError`` when this metric cannot be recorded on ``env``."""

    def observe(self, step: Round, column: int | None) -> None:
        """One round of one agent; ``column``: its index among the recorded rounds, or None."""

    def series(self, agent: str) -> Series:
        """This metric's series for ``agent`` once the run is over."""
        return {}

    def budget(self, agent: str) -> float | None:
        """The agent's own ``harm_budget`` when it has one, else this metric's ``budget`` option, else None."""
        own = self.recorder.budgets.get(agent)
        return own if own is not None else self.settings.get("budget")


class HarmMetric(Metric):
    name = "harm"
    options = {"budget": "the budget on the mean harm, for agents without a harm_budget of their own"}
    uses_harm_recorder = True

    def check_env(self, env: Any) -> None:
        _need_layer(self.name, env, harm=True)

    def series(self, agent: str) -> Series:
        rec, at = self.recorder.harm, self.recorder.columns
        out: Series = {"harm.mean": rec.cumulative_mean(agent, "harm")[:, at],
                       "harm.expected": rec.cumulative_mean(agent, "expected_harm")[:, at]}
        budget = self.budget(agent)
        if budget is not None:
            out["harm.violation"] = (out["harm.mean"] > budget).astype(np.float64)
            out["harm.budget"] = float(budget)
        return out


class _LayerRateMetric(Metric):
    """The cumulative mean of one per-round flag the safety layer records (``column``)."""

    uses_harm_recorder = True
    column = ""

    def check_env(self, env: Any) -> None:
        _need_layer(self.name, env, harm=False)

    def series(self, agent: str) -> Series:
        return {self.name: self.recorder.harm.cumulative_mean(agent, self.column)[:, self.recorder.columns]}


class FallbackRateMetric(_LayerRateMetric):
    name, column = "fallback_rate", "fallback"


class DeliveredRateMetric(_LayerRateMetric):
    name, column = "delivered_rate", "delivered"


def feasible_best(expected_reward: np.ndarray, expected_harm: np.ndarray, budget: float) -> np.ndarray:
    """Per context, the exact expected reward of the best budget-feasible action ``(C,)``.

    Feasible: exact expected harm at most ``budget``. A context where no action fits falls back on
    its least harmful actions (the most rewarding of those that tie).

    Example:
        >>> reward = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
        >>> harm = np.array([[0.9, 0.1, 0.0], [0.9, 0.8, 0.7]])
        >>> feasible_best(reward, harm, 0.5).tolist()
        [2.0, 1.0]
    """
    reward, harm = np.asarray(expected_reward, dtype=np.float64), np.asarray(expected_harm, dtype=np.float64)
    if reward.shape != harm.shape or reward.ndim != 2:
        raise ValueError(f"expected_reward, expected_harm: expected two (contexts, actions) arrays of one shape, "
                         f"got {reward.shape} and {harm.shape}")
    fits = harm <= budget
    least = harm == harm.min(axis=1, keepdims=True)
    allowed = np.where(fits.any(axis=1, keepdims=True), fits, least)
    return np.where(allowed, reward, -np.inf).max(axis=1)


class FeasibleRegretMetric(Metric):
    name = "feasible_regret"
    options = {"budget": "the harm budget, for agents without a harm_budget of their own"}

    def __init__(self, recorder: MetricsRecorder, options: Mapping[str, Any]) -> None:
        super().__init__(recorder, options)
        for agent, own in recorder.budgets.items():
            if own is None and self.settings.get("budget") is None:
                raise ValueError(f"metrics.feasible_regret: agent {agent!r} has no harm_budget; give the metric "
                                 "a budget (metrics.feasible_regret.budget)")
        if not recorder.budgets and self.settings.get("budget") is None:
            raise ValueError("metrics.feasible_regret: needs a budget (metrics.feasible_regret.budget)")
        self._totals: dict[str, np.ndarray] = {}
        self._best: dict[tuple[str, int], tuple[Any, np.ndarray]] = {}

    def check_env(self, env: Any) -> None:
        _need_layer(self.name, env, harm=True)

    def _benchmark(self, agent: str, env: Any) -> np.ndarray:
        scenario = _scenario(env)
        key = (agent, id(scenario))
        found = self._best.get(key)
        if found is None or found[0] is not scenario:  # one per environment (a new one per block)
            found = (scenario, feasible_best(scenario.expected_reward, scenario.expected_harm, self.budget(agent)))
            self._best = {k: v for k, v in self._best.items() if k[0] != agent}  # the agent's old envs are done
            self._best[key] = found
        return found[1]

    def observe(self, step: Round, column: int | None) -> None:
        if self.budget(step.agent_name) is None:
            raise ValueError(f"metrics.feasible_regret: agent {step.agent_name!r} has no harm_budget; give the "
                             "metric a budget (metrics.feasible_regret.budget)")
        best = self._benchmark(step.agent_name, step.env)
        regret = best[np.asarray(step.info["played_context"])] - np.asarray(step.info["expected_reward"])
        total = self._totals.setdefault(step.agent_name, np.zeros(self.recorder.replications))
        rows = np.asarray(step.replications)
        if step.t == 0:
            total[rows] = 0.0
        total[rows] += regret
        if column is not None:
            self.recorder.put(step.agent_name, self.name, rows, column, total[rows])

    def series(self, agent: str) -> Series:
        out = self.recorder.snapshots(agent, self.name)
        budget = self.budget(agent)
        if out and budget is not None:
            out[f"{self.name}.budget"] = float(budget)
        return out


class AgentDiagnosticsMetric(Metric):
    name = "agent"

    def observe(self, step: Round, column: int | None) -> None:
        diagnostics = getattr(step.agent, "diagnostics", None)
        if column is None or not callable(diagnostics):
            return
        values = diagnostics()
        if not isinstance(values, Mapping):
            raise TypeError(f"agent {step.agent_name!r}: diagnostics() must return a dict of name -> array (n,), "
                            f"got {type(values).__name__}")
        rows = np.asarray(step.replications)
        for key, value in values.items():
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape not in ((), (len(rows),)):
                raise ValueError(f"agent {step.agent_name!r}: diagnostics()[{key!r}] has shape {arr.shape}; "
                                 f"expected ({len(rows)},), one value per row")
            self.recorder.put(step.agent_name, f"agent.{key}", rows, column, np.broadcast_to(arr, rows.shape))

    def series(self, agent: str) -> Series:
        return self.recorder.snapshots(agent, "agent.")


class SimulationQueriesMetric(Metric):
    name = "simulation_queries"

    def observe(self, step: Round, column: int | None) -> None:
        if column is None:
            return
        env = step.env
        queries = getattr(env, "current_queries", None)
        if queries is None:
            queries = getattr(getattr(env, "unwrapped", None), "current_queries", None)
        if queries is None:  # an environment without the count: nothing recorded
            return
        rows = np.asarray(step.replications)
        self.recorder.put(step.agent_name, self.name, rows, column,
                          np.broadcast_to(np.asarray(queries, dtype=np.float64), rows.shape))

    def series(self, agent: str) -> Series:
        return self.recorder.snapshots(agent, self.name)


#: The built-in metrics by name.
METRICS: dict[str, type[Metric]] = {m.name: m for m in (HarmMetric, FallbackRateMetric, DeliveredRateMetric,
                                                         FeasibleRegretMetric, AgentDiagnosticsMetric,
                                                         SimulationQueriesMetric)}


def check_metrics(spec: Any) -> dict[str, dict[str, Any]]:
    """An experiment's ``metrics``, checked: name -> options, in the order given.

    ``spec``: a list of names, or a table of name -> options. Errors (``ValueError``) name the
    key and list the allowed names or options.

    Example:
        >>> check_metrics(["harm", "fallback_rate"])
        {'harm': {}, 'fallback_rate': {}}
        >>> check_metrics({"harm": {"budget": 0.2}})
        {'harm': {'budget': 0.2}}
        >>> check_metrics(["harms"])
        Traceback (most recent call last):
        ...
        ValueError: metrics: unknown metric 'harms'; allowed: ['agent', 'delivered_rate', 'fallback_rate', \
'feasible_regret', 'harm', 'simulation_queries']
    """
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        items = [(name, {}) for name in spec]
        names = [name for name, _ in items]
        if len(set(map(repr, names))) != len(names):
            raise ValueError(f"metrics: a metric is listed twice in {names!r}")
    else:
        raise ValueError(f"metrics: expected a list of metric names or a table of name -> options, got {spec!r}")
    out = {}
    for name, options in items:
        if not isinstance(name, str) or name not in METRICS:
            raise ValueError(f"metrics: unknown metric {name!r}; allowed: {sorted(METRICS)}")
        out[name] = METRICS[name].check_options(options)
    return out


class MetricsRecorder:
    """A ``run_bandit`` callback recording the named metrics (see the module docstring) of every agent.

    Args:
        metrics: a list of metric names or a table name -> options (:func:`check_metrics`).
        horizon, replications: the run's size; values are kept at ``metric_rounds(horizon)``.
        budgets: agent label -> its own ``harm_budget`` (or None); the runner passes each agent's.
    """

    def __init__(self, metrics: Mapping[str, Any] | Sequence[str], horizon: int, replications: int,
                 budgets: Mapping[str, float | None] | None = None) -> None:

        spec = check_metrics(metrics)
        self.horizon = check_int("horizon", horizon, 1)
        self.replications = check_int("replications", replications, 1)
        self.budgets = {str(k): (None if v is None else check_float(f"agents.{k}.harm_budget", v, minimum=None))
                        for k, v in (budgets or {}).items()}
        self.rounds = metric_rounds(self.horizon)  # 1-based, as in the results file
        self.columns = self.rounds - 1  # 0-based round of each recorded column
        self._column = np.full(self.horizon, -1, dtype=np.int64)
        self._column[self.columns] = np.arange(len(self.columns))
        uses_harm = any(METRICS[name].uses_harm_recorder for name in spec)
        self.harm = HarmRecorder(self.replications, self.horizon) if uses_harm else None
        self.metrics = [METRICS[name](self, options) for name, options in spec.items()]
        self._values: dict[str, dict[str, np.ndarray]] = {}
        self._agents: dict[str, None] = {}

    def check_env(self, env: Any) -> None:
        """Raise ``ValueError`` naming the first metric that cannot be recorded on ``env``."""
        for metric in self.metrics:
            metric.check_env(env)

    def __call__(self, step: Round) -> None:
        self._agents.setdefault(step.agent_name)
        if self.harm is not None:
            self.harm(step)
        column = int(self._column[step.t])
        for metric in self.metrics:
            metric.observe(step, column if column >= 0 else None)

    def put(self, agent: str, series: str, rows: np.ndarray, column: int, values: np.ndarray) -> None:
        """Keep ``values`` (one per row) of ``series`` at recorded column ``column``."""
        store = self._values.setdefault(agent, {})
        arr = store.get(series)
        if arr is None:
            store[series] = arr = np.full((self.replications, len(self.columns)), np.nan)
        arr[rows, column] = values

    def snapshots(self, agent: str, prefix: str) -> Series:
        """The kept series of ``agent`` named ``prefix`` or starting with it (``"agent."``), copies."""
        return {k: v.copy() for k, v in self._values.get(agent, {}).items()
                if k == prefix or (prefix.endswith(".") and k.startswith(prefix))}

    @property
    def agents(self) -> list[str]:
        """The agents seen so far, in the order they ran."""
        return list(self._agents)

    def results(self, agent: str) -> Series:
        """Every series of ``agent``, metric by metric in the order given: ``(replications, rounds)`` arrays
        at :attr:`rounds`, or numbers."""
        if agent not in self._agents:
            raise KeyError(f"agent: no rounds recorded for {agent!r}; recorded: {self.agents}")
        out: Series = {}
        for metric in self.metrics:
            out.update(metric.series(agent))
        return out
