"""The linear reward model shared by LinearTS and the GAMBITTS agents.

A feature vector is a concatenation of named blocks followed by an intercept;
the prior gives every block coefficient precision ``prior_precision`` and the
intercept ``intercept_precision`` (both times 1/v), all centred at 0 (the prior
mean term B0 mu0 is kept in the posterior, unlike the paper's code).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import BatchedAgent
from agents.posteriors import LinearGaussian, check_discount
from agents.state import State, prefixed, unprefixed
from gambit_gym.validation import check_float


class LinearRewardModel:
    def __init__(
        self,
        n_rows: int,
        blocks: dict[str, int],
        prior_precision: float = 0.1,
        intercept_precision: float = 1e-6,
        noise_var: float | None = None,
        a0: float = 2.0,
        b0: float = 1.0,
        prior_mean: np.ndarray | None = None,
        discount: float = 1.0,
    ) -> None:
        lam = check_float("prior_precision", prior_precision, minimum=0.0, strict=True)
        lam0 = check_float("intercept_precision", intercept_precision, minimum=0.0, strict=True)
        self.slices: dict[str, slice] = {}
        start = 0
        for name, width in blocks.items():
            self.slices[name] = slice(start, start + width)
            start += width
        self.dim = start + 1
        precision = np.full(self.dim, lam)
        precision[-1] = lam0
        mu0 = np.zeros(self.dim) if prior_mean is None else np.asarray(prior_mean, dtype=np.float64)
        self.posterior = LinearGaussian(n_rows, mu0, precision, noise_var=noise_var, a0=a0, b0=b0, discount=discount)

    def features(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        n = next(iter(parts.values())).shape[0]
        phi = np.empty((n, self.dim))
        for name, sl in self.slices.items():
            phi[:, sl] = parts[name]
        phi[:, -1] = 1.0
        return phi

    def block(self, theta: np.ndarray, name: str) -> np.ndarray:
        return theta[:, self.slices[name]]


class LinearRewardAgent(BatchedAgent):
    """Base of the agents with a linear reward model (LinearTS, poGAMBITTS, foGAMBITTS).

    Args:
        use_context: include the context one-hots in the features.
        prior_precision, intercept_precision: prior precisions (times 1/v) of the
            coefficients and of the intercept (nearly flat, so any reward scale works).
        noise_var: fix the noise variance; ``None`` (default) learns it, v ~ InvGamma(a0, b0).
        discount: forgetting factor gamma in (0, 1] of the reward posterior: a round s rounds ago weighs
            gamma^s, the prior keeps full weight (see :class:`~agents.posteriors.LinearGaussian`); 1 (default)
            forgets nothing.
    """

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        use_context: bool = True,
        prior_precision: float = 0.1,
        intercept_precision: float = 1e-6,
        noise_var: float | None = None,
        a0: float = 2.0,
        b0: float = 1.0,
        discount: float = 1.0,
        **base: Any,
    ) -> None:
        self.use_context = bool(use_context)
        self.model_kwargs = dict(prior_precision=prior_precision, intercept_precision=intercept_precision,
                                 noise_var=noise_var, a0=a0, b0=b0, discount=check_discount(discount))
        super().__init__(n_actions, obs_dim, **base)

    # ``_init_state`` sets ``self.model``, a LinearRewardModel; subclasses add their own state to these two.
    def _state(self) -> State:
        return prefixed("model", self.model.posterior.state())

    def _load_state(self, state: State) -> None:
        self.model.posterior.load_state(unprefixed("model", state))
