"""Outcome models f(Z*, x): the expected reward of a realised treatment in a context.

Both models are batched (``mean(latent (n, p), contexts (n,)) -> (n,)``) and
know their exact expectation under a Gaussian treatment model, so the
environment's oracle mu(a, x) is exact, never a Monte-Carlo estimate:

* linear: E[b0 + beta^T Z* + g_x] = b0 + beta^T m + g_x.
* one-hidden-layer ReLU MLP: each hidden pre-activation u = w^T Z* + c is
  Gaussian, N(s, v), and E[relu(u)] = s Phi(s / sqrt v) + sqrt(v) phi(s / sqrt v).

:class:`OutcomeModel` is the contract both satisfy; the scenarios depend on it only.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from scipy.special import ndtr

from gambit_gym.validation import check_array, check_float


@runtime_checkable
class OutcomeModel(Protocol):
    """The outcome contract: f(z, x) = intercept + g(z) + context_effect[x], batched, with an exact mean."""

    name: str
    intercept: float
    context_effect: np.ndarray  # (n_contexts,) additive reward effect of each context

    @property
    def dim(self) -> int:
        """p, the length of the latent treatment Z* the outcome reads."""
        ...

    def mean(self, latent: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        """f(Z*, x) for each row: latent ``(n, p)``, context indices ``(n,)`` -> ``(n,)``."""
        ...

    def expected_gaussian(self, means: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """Exact E[f(Z*, x)] for Z* ~ N(means[x, a], cov); means ``(C, K, p)`` -> ``(C, K)``."""
        ...


class LinearOutcome:
    """f(z, x) = intercept + coef^T z + context_effect[x]."""

    name = "linear"

    def __init__(self, intercept: float, coef: np.ndarray, context_effect: np.ndarray) -> None:
        self.intercept = check_float("intercept", intercept)
        self.coef = check_array("coefficients", coef, (None,))
        self.context_effect = check_array("context_effect", context_effect, (None,))

    @property
    def dim(self) -> int:
        return self.coef.shape[0]

    def mean(self, latent: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        return self.intercept + latent @ self.coef + self.context_effect[contexts]

    def expected_gaussian(self, means: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """Exact E[f(Z*, x)] for Z* ~ N(means[x, a], cov); means ``(C, K, p)`` -> ``(C, K)``."""
        return self.intercept + means @ self.coef + self.context_effect[:, None]


class MLPOutcome:
    """f(z, x) = intercept + w2^T relu(W1 z + b1) + context_effect[x] (fixed weights)."""

    name = "mlp"

    def __init__(
        self,
        intercept: float,
        w1: np.ndarray,
        b1: np.ndarray,
        w2: np.ndarray,
        context_effect: np.ndarray,
    ) -> None:
        self.intercept = check_float("intercept", intercept)
        self.w1 = check_array("w1", w1, (None, None))  # (hidden, p)
        self.b1 = check_array("b1", b1, (self.w1.shape[0],))
        self.w2 = check_array("w2", w2, (self.w1.shape[0],))
        self.context_effect = check_array("context_effect", context_effect, (None,))
        self._w1_t = self.w1.T.copy()

    @classmethod
    def random(
        cls,
        p: int,
        hidden: int,
        rng: np.random.Generator,
        intercept: float,
        context_effect: np.ndarray,
    ) -> MLPOutcome:
        """He-initialised weights; the caller rescales ``w2`` to the wanted effect size."""
        w1 = rng.standard_normal((hidden, p)) * np.sqrt(2.0 / p)
        b1 = 0.5 * rng.standard_normal(hidden)
        w2 = rng.standard_normal(hidden) * np.sqrt(2.0 / hidden)
        return cls(intercept, w1, b1, w2, context_effect)

    @property
    def dim(self) -> int:
        return self.w1.shape[1]

    def mean(self, latent: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        hidden = np.maximum(latent @ self._w1_t + self.b1, 0.0)
        return self.intercept + hidden @ self.w2 + self.context_effect[contexts]

    def expected_gaussian(self, means: np.ndarray, cov: np.ndarray) -> np.ndarray:
        s = means @ self._w1_t + self.b1  # (C, K, H) pre-activation means
        sd = np.sqrt(np.einsum("hi,ij,hj->h", self.w1, cov, self.w1))  # (H,)
        t = s / sd
        relu_mean = s * ndtr(t) + sd * np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)
        return self.intercept + relu_mean @ self.w2 + self.context_effect[:, None]
