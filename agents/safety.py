"""Agents and metrics for environments with a safety layer (``safety=`` option, :mod:`gambit_gym.safety`).

* :class:`NaivePoGAMBITTS`: poGAMBITTS whose offline bank is drawn from the raw generator,
  before the layer (``env.unwrapped.raw_sample_treatments``): it models treatments that are
  never delivered, so its bank means are biased. The filter-aware form is plain
  :class:`~agents.PoGAMBITTS`, whose bank goes through the layer by default.
* :class:`BudgetedPoGAMBITTS`, :class:`BudgetedStandardTS`: Thompson sampling restricted to the
  actions whose *sampled* mean harm is within a harm budget. Each (context, action) cell's delivered
  harm (``info["harm"]``) has a Normal-Gamma posterior; every round draws one mean harm per action,
  and the reward model's argmax is taken over the actions whose draw is at most ``harm_budget``.
  When no action's draw fits, the agent plays the one with the least sampled harm (so it still
  explores which actions are harmless). Batched like every built-in agent.
* :class:`HarmRecorder`: a ``run_bandit`` callback that records each round's delivered harm,
  the exact expected harm of the chosen action, whether the fallback went out and whether anything
  was delivered; its :meth:`~HarmRecorder.violation_rate` is the budget-violation metric: the share
  of replications whose realised cumulative mean harm up to round t exceeds the budget, for every t.
  The experiments' ``harm``, ``fallback_rate`` and ``delivered_rate`` metrics
  (:mod:`agents.experiments.metrics`) read one.

Example:
    >>> from agents import run_bandit
    >>> safety = {"checks": [{"type": "threshold", "dimension": "z0", "above_quantile": 0.7}],
    ...           "on_reject": "withhold", "no_message_reward": 79.0, "harm": "z1"}
    >>> rec = HarmRecorder()
    >>> res = run_bandit("GeneratorMediated-v0", {"budgeted": (BudgetedStandardTS, {"harm_budget": 0.0})},
    ...                  horizon=30, replications=4, seed=0, env_kwargs={"safety": safety}, progress=False,
    ...                  callback=rec)
    >>> rec.violation_rate("budgeted", 0.0).shape, rec.cumulative_mean_harm("budgeted").shape
    ((30,), (4, 30))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import BatchedAgent, IncompatibleEnvError
from agents.gambitts import PoGAMBITTS
from agents.logged import Round
from agents.posteriors import NormalGamma
from agents.state import State, prefixed, unprefixed
from agents.thompson import StandardTS
from gambit_gym.validation import check_choice, check_float, check_int


def raw_simulator(env: Any) -> Any:
    """The environment's simulation access before its safety layer (``raw_sample_treatments``)."""
    raw = getattr(getattr(env, "unwrapped", env), "raw_sample_treatments", None)
    if raw is None:
        raise IncompatibleEnvError("env: NaivePoGAMBITTS needs env.unwrapped.raw_sample_treatments "
                                   "(a GeneratorMediated-v0 environment)")
    return raw


class NaivePoGAMBITTS(PoGAMBITTS):
    """poGAMBITTS with a filter-unaware bank: drawn from the raw generator, before the safety layer.

    Everything else is :class:`~agents.PoGAMBITTS`; ``from_env`` passes the raw simulator. Without a
    layer the two are the same agent.
    """

    @classmethod
    def from_env(cls, env: Any, seed: int | np.random.SeedSequence | None = None, **kwargs: Any) -> BatchedAgent:
        kwargs.setdefault("simulator", raw_simulator(env))
        return super().from_env(env, seed=seed, **kwargs)


class _HarmBudget:
    """Mixin: restrict a Thompson-sampling agent to actions whose sampled mean harm is within the budget.

    Args (keyword, on top of the agent's own):
        harm_budget: the budget on the deployment's mean harm (required).
        harm_prior_mean, harm_prior_count, harm_prior_shape, harm_prior_rate: the Normal-Gamma prior of
            each (context, action) cell's harm (mean 0, count 1e-4, shape 1, rate 1: weak).
    """

    def __init__(self, n_actions: int, obs_dim: int, harm_budget: float | None = None,
                 harm_prior_mean: float = 0.0, harm_prior_count: float = 1e-4, harm_prior_shape: float = 1.0,
                 harm_prior_rate: float = 1.0, **kwargs: Any) -> None:
        if harm_budget is None:
            raise TypeError(f"{type(self).__name__}: harm_budget is required (the budget on the mean harm)")
        self.harm_budget = check_float("harm_budget", harm_budget, minimum=None)
        self.harm_prior = dict(m=check_float("harm_prior_mean", harm_prior_mean, minimum=None),
                               nu=check_float("harm_prior_count", harm_prior_count, strict=True),
                               alpha=check_float("harm_prior_shape", harm_prior_shape, strict=True),
                               beta=check_float("harm_prior_rate", harm_prior_rate, strict=True))
        super().__init__(n_actions, obs_dim, **kwargs)

    def _init_state(self) -> None:
        super()._init_state()
        n_ctx = self.contexts.n_contexts if self.contexts is not None else 1
        self.harm_posterior = NormalGamma(self.n_rows, n_ctx * self.n_actions, **self.harm_prior)

    def _state(self) -> State:
        return {**super()._state(), **prefixed("harm", self.harm_posterior.state())}

    def _load_state(self, state: State) -> None:
        super()._load_state({k: v for k, v in state.items() if not k.startswith("harm.")})
        self.harm_posterior.load_state(unprefixed("harm", state))

    def _sample_scores(self, ctx: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        scores = super()._sample_scores(ctx, x, rng)
        harm = self.harm_posterior.sample(rng, self._rows[:, None], self._action_cells(ctx))
        fits = harm <= self.harm_budget
        # No action fits: the least harmful sampled one gets the only finite score.
        least = np.zeros_like(fits)
        least[self._rows, harm.argmin(axis=1)] = True
        allowed = np.where(fits.any(axis=1, keepdims=True), fits, least)
        return np.where(allowed, scores, -np.inf)

    def update(self, obs: np.ndarray, action: Any, reward: Any, info: dict[str, Any]) -> None:
        if "harm" not in info:
            raise KeyError(f"{type(self).__name__}: needs info['harm'] (an environment with a safety layer whose "
                           "'harm' is defined)")
        self._harm = np.asarray(info["harm"], dtype=np.float64).reshape(self.n_rows)
        super().update(obs, action, reward, info)

    def _update(self, ctx: np.ndarray, x: np.ndarray, a: np.ndarray, y: np.ndarray, z: np.ndarray | None) -> None:
        # the agent's own update first, then the harm of the played cell (update() stored it)
        super()._update(ctx, x, a, y, z)
        self.harm_posterior.update(self._rows, self._cell(ctx, a), self._harm)


class BudgetedPoGAMBITTS(_HarmBudget, PoGAMBITTS):
    """poGAMBITTS (bank through the layer) restricted to actions whose sampled mean harm fits ``harm_budget``."""


class BudgetedStandardTS(_HarmBudget, StandardTS):
    """Standard TS restricted to actions whose sampled mean harm (per context) fits ``harm_budget``."""


class HarmRecorder:
    """A ``run_bandit`` callback recording harm, expected harm, fallbacks and deliveries per agent,
    ``(replications, T)``.

    Arrays grow as rounds come in (any number of replications and blocks); ``replications`` and
    ``horizon``, when known, size them once (nothing is copied as the run goes on).

    Recorded keys (:data:`KEYS`): ``harm`` (``info["harm"]``), ``expected_harm``
    (``info["expected_harm"]``), ``fallback`` and ``delivered`` (1.0 or 0.0) and
    ``not_delivered_as_generated`` (the fallback or nothing went out).
    """

    #: What is recorded each round, per agent.
    KEYS = ("harm", "expected_harm", "fallback", "delivered", "not_delivered_as_generated")

    def __init__(self, replications: int | None = None, horizon: int | None = None) -> None:
        self._arrays: dict[str, dict[str, np.ndarray]] = {}
        self._extent: dict[str, tuple[int, int]] = {}  # (replications, rounds) recorded per agent
        self._capacity = (0 if replications is None else check_int("replications", replications, 1),
                          0 if horizon is None else check_int("horizon", horizon, 1))

    def __call__(self, step: Round) -> None:
        info = step.info
        if "harm" not in info:
            raise KeyError("HarmRecorder: the environment reports no info['harm'] (give it a safety layer)")
        name = step.agent_name
        store = self._arrays.setdefault(name, {})
        rows, t = np.asarray(step.replications), step.t
        extent = self._extent.get(name, (0, 0))
        need = (max(extent[0], int(rows.max()) + 1), max(extent[1], t + 1))
        self._extent[name] = need
        fallback, delivered = np.asarray(info["fallback"]), np.asarray(info["delivered"])
        values = {"harm": info["harm"], "expected_harm": info["expected_harm"], "fallback": fallback,
                  "delivered": delivered, "not_delivered_as_generated": fallback | ~delivered}
        for key, value in values.items():
            arr = store.get(key)
            if arr is None or arr.shape[0] < need[0] or arr.shape[1] < need[1]:
                if arr is None:
                    shape = (max(need[0], self._capacity[0]), max(need[1], self._capacity[1]))
                else:  # grow geometrically: one round at a time would copy everything every round
                    shape = tuple(n if n >= k else max(k, 2 * n) for n, k in zip(arr.shape, need))
                grown = np.full(shape, np.nan)
                if arr is not None:
                    grown[: arr.shape[0], : arr.shape[1]] = arr
                store[key] = arr = grown
            arr[rows, t] = np.asarray(value, dtype=np.float64)

    def _get(self, name: str, key: str) -> np.ndarray:
        if name not in self._arrays:
            raise KeyError(f"agent: no rounds recorded for {name!r}; recorded: {sorted(self._arrays)}")
        n_rows, n_rounds = self._extent[name]
        return self._arrays[name][key][:n_rows, :n_rounds]

    def cumulative_mean(self, name: str, key: str) -> np.ndarray:
        """Mean of a recorded key (:data:`KEYS`) over each replication's rounds up to each round,
        ``(replications, T)``: for ``fallback`` the share of rounds so far in which the fallback went out."""
        values = self._get(name, check_choice("key", key, self.KEYS))
        return np.cumsum(values, axis=1) / np.arange(1, values.shape[1] + 1)

    def cumulative_mean_harm(self, name: str) -> np.ndarray:
        """Realised mean harm of each replication up to each round, ``(replications, T)``."""
        return self.cumulative_mean(name, "harm")

    def violation_rate(self, name: str, budget: float) -> np.ndarray:
        """Share of replications whose realised cumulative mean harm exceeds ``budget``, per round ``(T,)``."""
        return (self.cumulative_mean_harm(name) > budget).mean(axis=0)

    def expected_harm(self, name: str) -> np.ndarray:
        """Exact expected harm of each chosen action, ``(replications, T)``."""
        return self._get(name, "expected_harm")

    def fallback_rate(self, name: str) -> float:
        """Share of rounds where the fallback (or nothing) went out instead of a generated treatment."""
        return float(np.nanmean(self._get(name, "not_delivered_as_generated")))
