"""GAMBITTS: Thompson sampling that models the treatment.

Both agents share one linear reward model, Y = theta^T [z, context, (prompt
dummies), 1] + eps, and differ in where E[Z | a, x] comes from:

* :class:`PoGAMBITTS` (partially online): an offline bank of ``n_offline``
  simulated treatments per (action, context) drawn once through the
  environment's simulation access; each round scores every action by
  theta^T phi(bank mean of Z for (a, x), x).
* :class:`FoGAMBITTS` (fully online): a Normal-Inverse-Wishart model of Z per
  (context, action) learned from the realised treatments; each round draws one
  treatment mean per action from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from agents.base import IncompatibleEnvError
from agents.posteriors import NormalInverseWishart, check_discount, einsum
from agents.reward_model import LinearRewardAgent, LinearRewardModel
from agents.state import State, prefixed, unprefixed
from gambit_gym.validation import check_int


def offline_treatment_draws(
    simulator: Callable[..., np.ndarray],
    n_rows: int,
    n_contexts: int,
    n_actions: int,
    n_draws: int,
    dim: int,
    rng: np.random.Generator,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """The offline bank's simulated treatments, cell by cell: ``(context, action, draws (R, n, d))``.

    One ``simulator(action, context, R * n, rng)`` call per cell, contexts outer and actions
    inner: this order fixes which draws of ``rng`` each cell (and each replication) gets, so
    every agent with an offline bank draws it through here.
    """
    for c in range(n_contexts):
        for a in range(n_actions):
            yield c, a, np.asarray(simulator(a, c, n_rows * n_draws, rng)).reshape(n_rows, n_draws, dim)


class _GambittsBase(LinearRewardAgent):
    uses_embedding = True

    def __init__(self, n_actions: int, obs_dim: int, hedged: bool = False, **kwargs: Any) -> None:
        self.hedged = bool(hedged)
        super().__init__(n_actions, obs_dim, **kwargs)

    def _init_reward_model(self) -> None:
        blocks = {"z": self.embedding_dim}
        if self.use_context:
            blocks["context"] = self.obs_dim
        if self.hedged:
            blocks["prompt"] = self.n_actions - 1
        self.model = LinearRewardModel(self.n_rows, blocks, **self.model_kwargs)

    def _score(self, theta: np.ndarray, z_mean: np.ndarray) -> np.ndarray:
        """theta^T phi(E[Z | a, x], x) up to terms equal for every action: ``(R, K)``."""
        score = einsum("rkd,rd->rk", z_mean, self.model.block(theta, "z"))
        if self.hedged:
            score[:, 1:] += self.model.block(theta, "prompt")
        return score

    def _update_reward(self, x, a, y, z) -> None:
        parts = {"z": z}
        if self.use_context:
            parts["context"] = x
        if self.hedged:
            dummies = np.zeros((self.n_rows, self.n_actions))
            dummies[self._rows, a] = 1.0
            parts["prompt"] = dummies[:, 1:]
        self.model.posterior.update(self.model.features(parts), y)


class PoGAMBITTS(_GambittsBase):
    """Partially online GAMBITTS: offline treatment bank + online linear reward model.

    Args:
        n_offline: simulated treatments per (action, context) in the bank (M_off, 500).
        use_context: context one-hots in the reward model (default True).
        hedged: add K - 1 prompt dummies to the reward model (the paper's hedged
            form, robust to a misspecified embedding).
        noise_var: fix the outcome-noise variance; ``None`` (default) learns it
            (Normal-Inverse-Gamma, prior v ~ InvGamma(a0, b0)).
        prior_precision, intercept_precision: prior precisions (times 1/v) of the
            coefficients and of the intercept (nearly flat: any reward scale).
        simulator: ``sample_treatments(action, context, n, rng)``; ``from_env`` passes
            the environment's. Alternatively give ``treatment_means`` ``(C, K, d)``.

    Each replication draws its own bank with the agent's random stream.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = gym.make("GeneratorMediated-v0")
        >>> agent = PoGAMBITTS.from_env(env, n_offline=100, seed=0)
        >>> obs, info = env.reset(seed=0)
        >>> action = agent.act(obs)
        >>> next_obs, reward, terminated, truncated, info = env.step(action)
        >>> agent.update(obs, action, reward, info)
    """

    wants_simulator = True

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        n_offline: int = 500,
        simulator: Callable[..., np.ndarray] | None = None,
        treatment_means: np.ndarray | None = None,
        **kwargs: Any,
    ) -> None:
        self.n_offline = check_int("n_offline", n_offline, 1)
        if simulator is None and treatment_means is None:
            raise IncompatibleEnvError(
                "env: PoGAMBITTS needs simulation access (env.unwrapped.sample_treatments) "
                "or explicit treatment_means; use FoGAMBITTS when the generator cannot be queried offline"
            )
        self._simulator = simulator
        self._given_means = treatment_means
        super().__init__(n_actions, obs_dim, **kwargs)
        self.treatment_means = self._offline_bank()

    def _offline_bank(self) -> np.ndarray:
        """Bank means of Z per (replication, context, action): ``(R, C, K, d)``."""
        C, K, d, R = self.contexts.n_contexts, self.n_actions, self.embedding_dim, self.n_rows
        if self._given_means is not None:
            means = np.asarray(self._given_means, dtype=np.float64)
            if means.shape != (C, K, d):
                raise ValueError(f"treatment_means: expected shape {(C, K, d)}, got {means.shape}")
            return np.broadcast_to(means, (R, C, K, d)).copy()
        bank = np.empty((R, C, K, d))
        for c, a, draws in offline_treatment_draws(self._simulator, R, C, K, self.n_offline, d, self.rng):
            bank[:, c, a] = draws.mean(axis=1)
        return bank

    def _init_state(self) -> None:
        self._init_reward_model()

    def _state(self) -> State:
        # the offline bank is state too: drawn from the agent's stream, it differs with the seed
        return {**super()._state(), "treatment_means": self.treatment_means.copy()}

    def _load_state(self, state: State) -> None:
        super()._load_state(state)
        self.treatment_means = state["treatment_means"]

    def _sample_scores(self, ctx, x, rng):
        """theta ~ posterior, scored on the bank means of Z for every action in the row's context."""
        theta = self.model.posterior.sample(rng)
        return self._score(theta, self.treatment_means[self._rows, ctx])

    def _update(self, ctx, x, a, y, z):
        self._update_reward(x, a, y, z)


class FoGAMBITTS(_GambittsBase):
    """Fully online GAMBITTS: Normal-Inverse-Wishart treatment model per (context, action).

    Args:
        niw_mu0, niw_psi0, niw_kappa0, niw_nu0: the treatment prior (paper: 0, I, 1, d).
        discount: forgetting factor gamma in (0, 1] of both the reward posterior and the treatment
            models (a round s rounds ago weighs gamma^s; cells not played decay towards the prior);
            1 (default) forgets nothing.
        Other arguments as :class:`PoGAMBITTS` (without the bank).

    Each round draws the reward coefficients once and, for every action, one
    treatment mean from its posterior (the exact multivariate-t marginal of
    the paper's draw Sigma ~ IW, mean ~ N(m, Sigma / kappa)).
    """

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        niw_mu0: float | np.ndarray = 0.0,
        niw_psi0: float | np.ndarray = 1.0,
        niw_kappa0: float = 1.0,
        niw_nu0: float | None = None,
        discount: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.niw_prior = dict(mu0=niw_mu0, psi0=niw_psi0, kappa0=niw_kappa0, nu0=niw_nu0,
                              discount=check_discount(discount))
        super().__init__(n_actions, obs_dim, discount=discount, **kwargs)

    def _init_state(self) -> None:
        self._init_reward_model()
        cells = self.contexts.n_contexts * self.n_actions
        self.treatment = NormalInverseWishart(self.n_rows, cells, self.embedding_dim, **self.niw_prior)

    def _state(self) -> State:
        return {**super()._state(), **prefixed("treatment", self.treatment.state())}

    def _load_state(self, state: State) -> None:
        super()._load_state(state)
        self.treatment.load_state(unprefixed("treatment", state))

    def _sample_scores(self, ctx, x, rng):
        """theta ~ posterior, then one treatment mean per action from its NIW posterior (in that order)."""
        theta = self.model.posterior.sample(rng)
        means = self.treatment.sample_mean(rng, self._rows[:, None], self._action_cells(ctx))
        return self._score(theta, means)

    def _update(self, ctx, x, a, y, z):
        self._update_reward(x, a, y, z)
        self.treatment.update(self._rows, self._cell(ctx, a), z)
