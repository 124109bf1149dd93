"""Off-policy evaluation on logged bandit feedback, checked against the environment's exact policy values.

A *policy* here maps a context index to action probabilities: a ``(n_contexts, n_actions)`` table
(each row sums to 1) or a callable ``context_index -> (n_actions,)``. The environment knows the
exact expected reward of every (action, context) and draws contexts uniformly, so
:func:`policy_value` gives any policy's exact value, V(pi) = mean over contexts x of
sum_a pi(a | x) mu(a, x), against which the estimators can be checked:

* :func:`ipw`: inverse propensity weighting, mean of pi(a_i | x_i) / pscore_i * r_i (needs pscore);
* :func:`snipw`: its self-normalised form (needs pscore);
* :func:`direct_method`: the mean over the logged contexts of sum_a pi(a | x_i) q(x_i, a), with q the
  mean logged reward per (context, action) cell unless a reward model is given;
* :func:`doubly_robust`: the direct method plus the weighted residuals r_i - q(x_i, a_i) (needs pscore).

Each returns an :class:`Estimate`: the value and the standard error of the mean of its per-round
terms (for the direct method and doubly robust, conditional on the reward model). Inverse weighting
is unbiased round by round even when the logging policy learns (as Thompson sampling does), since
each round's propensity is the one it acted with.

Example:
    >>> from agents import StandardTS
    >>> data = log_bandit_feedback("GeneratorMediated-v0", StandardTS, horizon=20, replications=10,
    ...                            seed=0, n_draws=100)
    >>> env = make_env("GeneratorMediated-v0")
    >>> uniform = np.full((12, 5), 0.2)
    >>> est = ipw(data, uniform)
    >>> abs(est.value - policy_value(env, uniform)) < 4 * est.se
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from agents.logged import FeedbackLogger, LoggedBanditFeedback
from agents.results import standard_error
from agents.run import AgentSpec, run_bandit
from gambit_gym.validation import check_int

#: A policy: a table ``(n_contexts, n_actions)`` of action probabilities, or ``context_index -> (n_actions,)``.
Policy = np.ndarray | Callable[[int], Any]


class MissingPropensityError(ValueError):
    """An estimator needs the logging policy's propensities and the dataset does not have them."""


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value: ``value``, its standard error ``se``, from ``n`` logged rounds.

    ``mean_weight`` (estimators that weight by propensities): the mean of pi(a_i | x_i) / pscore_i,
    whose expectation is 1. Well below 1, the logger rarely played what the target plays: most of
    the weight sits on rounds that did not happen, and the estimate and its SE are unreliable.
    """

    value: float
    se: float
    n: int
    estimator: str
    mean_weight: float | None = None

    def __str__(self) -> str:
        weight = "" if self.mean_weight is None else f", mean weight {self.mean_weight:.3f}"
        return f"{self.estimator}: {self.value:.3f} +- {self.se:.3f} (n = {self.n}{weight})"


def make_env(env_id: str = "GeneratorMediated-v0", **env_kwargs: Any) -> gym.Env:
    """The single environment an id and options describe (for :func:`policy_value`)."""
    return gym.make(env_id, **env_kwargs)


def context_probabilities(env: Any) -> np.ndarray:
    """How often each context comes up: ``(n_contexts,)``. GeneratorMediated-v0 draws contexts
    uniformly and independently each round (``ContextSpace.sample``)."""
    contexts = getattr(env.unwrapped, "contexts", None)
    if contexts is None or not hasattr(contexts, "n_contexts"):
        raise TypeError("env: expected an environment with discrete contexts (env.unwrapped.contexts), such as "
                        "GeneratorMediated-v0")
    return np.full(contexts.n_contexts, 1.0 / contexts.n_contexts)


def expected_reward_table(env: Any) -> np.ndarray:
    """The exact mu(a, x) of every context and action: ``(n_contexts, n_actions)``."""
    oracle = getattr(env.unwrapped, "expected_rewards", None)
    if oracle is None:
        raise TypeError("env: expected an environment with exact expected rewards (env.unwrapped.expected_rewards), "
                        "such as GeneratorMediated-v0")
    return np.asarray(oracle(np.arange(len(context_probabilities(env)))), dtype=np.float64)


def policy_table(policy: Policy, n_contexts: int, n_actions: int) -> np.ndarray:
    """``policy`` as a checked table ``(n_contexts, n_actions)`` of probabilities (rows summing to 1).

    Example:
        >>> policy_table(lambda x: [1.0, 0.0] if x == 0 else [0.5, 0.5], 2, 2).tolist()
        [[1.0, 0.0], [0.5, 0.5]]
    """
    if callable(policy):
        rows = [np.asarray(policy(c), dtype=np.float64) for c in range(n_contexts)]
        if any(r.shape != (n_actions,) for r in rows):
            raise ValueError(f"policy: a callable policy must return {n_actions} probabilities per context index")
        table = np.stack(rows)
    else:
        table = np.asarray(policy, dtype=np.float64)
        if table.shape != (n_contexts, n_actions):
            raise ValueError(f"policy: expected a table of shape ({n_contexts}, {n_actions}) (contexts, actions) "
                             f"or a callable context_index -> probabilities, got shape {table.shape}")
    if not np.isfinite(table).all() or (table < 0).any() or (np.abs(table.sum(axis=1) - 1.0) > 1e-9).any():
        raise ValueError("policy: every context's action probabilities must be >= 0 and sum to 1")
    return table


def policy_value(env: Any, policy: Policy) -> float:
    """The exact value of ``policy`` on ``env``: sum_x P(x) sum_a pi(a | x) mu(a, x).

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = gym.make("GeneratorMediated-v0")
        >>> mu = expected_reward_table(env)
        >>> best = np.eye(5)[mu.argmax(axis=1)]                    # the oracle policy
        >>> bool(np.isclose(policy_value(env, best), mu.max(axis=1).mean()))
        True
    """
    mu = expected_reward_table(env)
    table = policy_table(policy, *mu.shape)
    return float(context_probabilities(env) @ (table * mu).sum(axis=1))


def _target(data: LoggedBanditFeedback, policy: Policy) -> np.ndarray:
    """pi(. | x_i) at every logged round: ``(n, K)``."""
    if not isinstance(data, LoggedBanditFeedback):
        raise TypeError(f"data: expected a LoggedBanditFeedback, got {type(data).__name__}")
    if data.n_rounds == 0:
        raise ValueError("data: no logged rounds")
    n_contexts = _n_contexts(policy, data)
    if n_contexts <= data.context_index.max():
        raise ValueError(f"policy: covers {n_contexts} contexts, but the data has context index "
                         f"{int(data.context_index.max())}")
    return policy_table(policy, n_contexts, data.n_actions)[data.context_index]


def _n_contexts(policy: Policy, data: LoggedBanditFeedback) -> int:
    """How many contexts ``policy`` covers: a table's rows, or (a callable) those the data reaches."""
    return len(policy) if not callable(policy) else int(data.context_index.max()) + 1


def _weights(data: LoggedBanditFeedback, target: np.ndarray, estimator: str) -> np.ndarray:
    """pi(a_i | x_i) / pscore_i, or a clear error when the data has no propensities."""
    if not data.has_pscore:
        who = data.meta.get("agent", "the logging agent")
        kind = data.meta.get("agent_type", "unknown type")
        raise MissingPropensityError(
            f"{estimator} needs the logging policy's propensities (pscore), and {np.isnan(data.pscore).sum()} of "
            f"{data.n_rounds} rounds have none: {who!r} ({kind}) reports no action probabilities (Stable-Baselines3 "
            "agents, EnsembleGAMBITTS and custom agents without action_probabilities(obs) do not). Log a "
            "Thompson-sampling agent (StandardTS, LinearTS, PoGAMBITTS, FoGAMBITTS), or use direct_method"
        )
    return target[np.arange(data.n_rounds), data.action] / data.pscore


def _estimate(terms: np.ndarray, estimator: str, value: float | None = None, weights: np.ndarray | None = None
              ) -> Estimate:
    se = float(standard_error(terms)) if len(terms) > 1 else math.nan
    return Estimate(float(terms.mean()) if value is None else value, se, int(len(terms)), estimator,
                    None if weights is None else float(weights.mean()))


def ipw(data: LoggedBanditFeedback, policy: Policy) -> Estimate:
    """Inverse propensity weighting: the mean of pi(a_i | x_i) / pscore_i * r_i (unbiased given exact pscore)."""
    w = _weights(data, _target(data, policy), "ipw")
    return _estimate(w * data.reward, "ipw", weights=w)


def snipw(data: LoggedBanditFeedback, policy: Policy) -> Estimate:
    """Self-normalised inverse propensity weighting: sum w_i r_i / sum w_i, its SE by the delta method."""
    w = _weights(data, _target(data, policy), "snipw")
    if w.sum() <= 0:
        raise ValueError("snipw: the target policy gives zero weight to every logged action")
    value = float((w * data.reward).sum() / w.sum())
    return _estimate(w * (data.reward - value) / w.mean(), "snipw", value, w)


def cell_means(data: LoggedBanditFeedback, n_contexts: int | None = None) -> np.ndarray:
    """The mean logged reward per (context, action): ``(n_contexts, K)``. A cell never played takes its
    action's mean over all contexts, and an action never played the mean of all rewards.

    Example:
        >>> from agents import StandardTS
        >>> data = log_bandit_feedback("GeneratorMediated-v0", StandardTS, horizon=5, replications=2, n_draws=10)
        >>> cell_means(data, n_contexts=12).shape
        (12, 5)
    """
    return _cell_model(data, _check_n_contexts(data, n_contexts))[0]


def _check_n_contexts(data: LoggedBanditFeedback, n_contexts: int | None) -> int:
    reached = int(data.context_index.max()) + 1
    if n_contexts is None:
        return reached
    n_contexts = check_int("n_contexts", n_contexts, 1)
    if n_contexts < reached:
        raise ValueError(f"n_contexts: the data has context index {reached - 1}; expected at least {reached}")
    return n_contexts


def _cell_model(data: LoggedBanditFeedback, n_contexts: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell means ``q (C, K)``, the number of rewards behind each ``(C, K)``, and the pooled residual variance."""
    C, K, n = n_contexts, data.n_actions, data.n_rounds
    total, count = np.zeros((C, K)), np.zeros((C, K))
    np.add.at(total, (data.context_index, data.action), data.reward)
    np.add.at(count, (data.context_index, data.action), 1.0)
    per_action = np.divide(total.sum(axis=0), count.sum(axis=0), out=np.full(K, data.reward.mean()),
                           where=count.sum(axis=0) > 0)
    q = np.divide(total, count, out=np.broadcast_to(per_action, (C, K)).copy(), where=count > 0)
    behind = np.where(count > 0, count, np.where(count.sum(axis=0) > 0, count.sum(axis=0), n))
    residual = data.reward - q[data.context_index, data.action]
    pooled = float(residual @ residual) / max(n - int((count > 0).sum()), 1)
    return q, behind, pooled


def _reward_model(data: LoggedBanditFeedback, reward_model: np.ndarray | None, n_contexts: int) -> np.ndarray:
    if reward_model is None:
        return _cell_model(data, n_contexts)[0]
    q = np.asarray(reward_model, dtype=np.float64)
    if q.shape != (n_contexts, data.n_actions) or not np.isfinite(q).all():
        raise ValueError(f"reward_model: expected finite predictions of shape ({n_contexts}, {data.n_actions}) "
                         f"(contexts, actions), got shape {q.shape}")
    return q


def direct_method(data: LoggedBanditFeedback, policy: Policy, reward_model: np.ndarray | None = None) -> Estimate:
    """The direct method: the mean over logged contexts of sum_a pi(a | x_i) q(x_i, a). Needs no propensities.

    ``reward_model``: predictions q ``(n_contexts, K)``; default :func:`cell_means` of the data. The
    standard error covers the contexts' sampling and, for the default cell means, their own sampling
    error (each cell's pooled residual variance over the rewards behind it; approximate, as the cells
    a learning logger samples depend on earlier rewards); a given ``reward_model`` is taken as exact.
    """
    target = _target(data, policy)
    C = _n_contexts(policy, data)
    if reward_model is not None:
        q = _reward_model(data, reward_model, C)
        return _estimate((target * q[data.context_index]).sum(axis=1), "direct method")
    q, behind, pooled = _cell_model(data, C)
    terms = (target * q[data.context_index]).sum(axis=1)
    share = np.bincount(data.context_index, minlength=C) / data.n_rounds  # n_x / n
    table = policy_table(policy, C, data.n_actions)
    model_var = pooled * float(((share[:, None] * table) ** 2 / behind).sum())
    contexts_var = float(standard_error(terms)) ** 2 if data.n_rounds > 1 else math.nan
    return Estimate(float(terms.mean()), math.sqrt(contexts_var + model_var), data.n_rounds, "direct method")


def doubly_robust(data: LoggedBanditFeedback, policy: Policy, reward_model: np.ndarray | None = None) -> Estimate:
    """Doubly robust: the direct method plus w_i (r_i - q(x_i, a_i)); unbiased if pscore or q is right."""
    target = _target(data, policy)
    q = _reward_model(data, reward_model, _n_contexts(policy, data))[data.context_index]
    w = _weights(data, target, "doubly_robust")
    rows = np.arange(data.n_rounds)
    return _estimate((target * q).sum(axis=1) + w * (data.reward - q[rows, data.action]), "doubly robust",
                     weights=w)


def log_bandit_feedback(
    env: str,
    agent: AgentSpec,
    horizon: int,
    replications: int = 1,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    n_draws: int = 200,
    progress: bool = False,
) -> LoggedBanditFeedback:
    """Run one logging agent with :func:`agents.run_bandit` and return its rounds as logged bandit feedback.

    ``agent`` is anything ``run_bandit`` takes (a class, ``(class, kwargs)``, ``"sb3:PPO"``, ...); its
    propensities come as described in :mod:`agents.logged` (``n_draws`` posterior draws per round for a
    Thompson-sampling agent, NaN for an agent that cannot report them). The dataset's ``meta`` records
    the run (environment, horizon, replications, seed).
    """
    logger = FeedbackLogger(n_draws=n_draws)
    run_bandit(env, {"logging": agent}, horizon=horizon, replications=replications, seed=seed,
               env_kwargs=env_kwargs, progress=progress, callback=logger)
    data = logger.dataset("logging")
    data.meta["run"] = {"env": env, "env_kwargs": dict(env_kwargs or {}), "horizon": horizon,
                        "replications": replications, "seed": seed}
    return data
