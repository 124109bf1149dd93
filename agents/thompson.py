"""Baselines that ignore the treatment: standard Thompson sampling and linear Thompson sampling."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import BatchedAgent
from agents.posteriors import NormalGamma, check_discount
from agents.reward_model import LinearRewardAgent, LinearRewardModel
from agents.state import State, prefixed, unprefixed


class StandardTS(BatchedAgent):
    """Thompson sampling with an independent Normal-Gamma model per arm (the paper's ``StdTS``).

    Args:
        contextual: one table per (discrete context, arm) instead of per arm.
        prior_mean, prior_count: m and nu of the mean's prior (default 0 and 1e-4:
            a weak prior that works at any reward scale; the paper used m = 77, nu = 5
            for rewards around 80).
        prior_shape, prior_rate: alpha and beta of the precision's Gamma prior (1, 1).
        discount: forgetting factor gamma in (0, 1]: every round all arms' statistics are discounted by
            gamma (discounted Thompson sampling for non-stationary rewards, the prior at full weight);
            1 (default) forgets nothing.
        seed: seed of the agent's random stream.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = gym.make("GeneratorMediated-v0")
        >>> agent = StandardTS.from_env(env, seed=0)
        >>> obs, info = env.reset(seed=0)
        >>> action = agent.act(obs)
        >>> obs2, reward, *_ , info = env.step(action)
        >>> agent.update(obs, action, reward, info)
    """

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        contextual: bool = False,
        prior_mean: float = 0.0,
        prior_count: float = 1e-4,
        prior_shape: float = 1.0,
        prior_rate: float = 1.0,
        discount: float = 1.0,
        **base: Any,
    ) -> None:
        self.contextual = bool(contextual)
        self.needs_contexts = self.contextual
        self.prior = dict(m=prior_mean, nu=prior_count, alpha=prior_shape, beta=prior_rate,
                          discount=check_discount(discount))
        super().__init__(n_actions, obs_dim, **base)

    def _init_state(self) -> None:
        n_ctx = self.contexts.n_contexts if self.contextual else 1
        self.posterior = NormalGamma(self.n_rows, n_ctx * self.n_actions, **self.prior)

    def _state(self) -> State:
        return prefixed("posterior", self.posterior.state())

    def _load_state(self, state: State) -> None:
        self.posterior.load_state(unprefixed("posterior", state))

    def _table_context(self, ctx: np.ndarray) -> np.ndarray:
        """The context a row's table is kept under: its own, or context 0 for all when not contextual."""
        return ctx if self.contextual else self._no_context

    def _sample_scores(self, ctx, x, rng):
        """A draw of each arm's mean from its Normal-Gamma posterior (in the row's table)."""
        cells = self._action_cells(self._table_context(ctx))
        return self.posterior.sample(rng, self._rows[:, None], cells)

    def _update(self, ctx, x, a, y, z):
        self.posterior.update(self._rows, self._cell(self._table_context(ctx), a), y)


class LinearTS(LinearRewardAgent):
    """Linear Thompson sampling on [one-hot(a), context, (a x context), 1] (the paper's ``LinTS``).

    Normal-Inverse-Gamma model: the noise variance is learned unless ``noise_var``
    is given. Priors: coefficients ~ N(0, v / prior_precision), intercept ~
    N(0, v / intercept_precision) (nearly flat, so any reward scale works),
    v ~ InvGamma(a0, b0).

    Args:
        interactions: include arm x context interactions (a per-context arm effect).
        use_context, prior_precision, intercept_precision, noise_var, a0, b0: see
            :class:`~agents.reward_model.LinearRewardAgent`.
    """

    needs_contexts = False

    def __init__(self, n_actions: int, obs_dim: int, interactions: bool = False, **kwargs: Any) -> None:
        self.interactions = bool(interactions)
        super().__init__(n_actions, obs_dim, **kwargs)

    def _init_state(self) -> None:
        K, F = self.n_actions, self.obs_dim
        blocks = {"arm": K}
        if self.use_context:
            blocks["context"] = F
        if self.interactions:
            blocks["interaction"] = K * F
        self.model = LinearRewardModel(self.n_rows, blocks, **self.model_kwargs)

    def _features(self, x, a):
        arm = np.zeros((self.n_rows, self.n_actions))
        arm[self._rows, a] = 1.0
        parts = {"arm": arm}
        if self.use_context:
            parts["context"] = x
        if self.interactions:
            parts["interaction"] = (arm[:, :, None] * x[:, None, :]).reshape(self.n_rows, -1)
        return self.model.features(parts)

    def _sample_scores(self, ctx, x, rng):
        """theta ~ posterior; each arm's score is its coefficient (plus its interactions with the context)."""
        theta = self.model.posterior.sample(rng)
        score = self.model.block(theta, "arm").copy()
        if self.interactions:
            inter = self.model.block(theta, "interaction").reshape(self.n_rows, self.n_actions, -1)
            score += np.einsum("rkf,rf->rk", inter, x)
        return score

    def _update(self, ctx, x, a, y, z):
        self.model.posterior.update(self._features(x, a), y)
