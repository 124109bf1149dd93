"""Treatment models P(G | a, x): how a prompt becomes a stochastic treatment.

Every model is batched: ``sample(actions, contexts, rng)`` draws one treatment
for each (action, context) pair in the arrays.
"""

from __future__ import annotations

import numpy as np

from gambit_gym.validation import check_array


class GaussianTreatmentModel:
    """Z* | a, x ~ N(m[x, a], Sigma): the synthetic treatment model.

    Args:
        means: array ``(n_contexts, n_actions, p)`` of treatment means.
        cov: array ``(p, p)``, symmetric positive definite treatment covariance.

    Example:
        >>> import numpy as np
        >>> g = GaussianTreatmentModel(np.zeros((2, 3, 4)), np.eye(4))
        >>> g.sample(np.array([0, 2]), np.array([1, 1]), np.random.default_rng(0)).shape
        (2, 4)
    """

    def __init__(self, means: np.ndarray, cov: np.ndarray) -> None:
        means = np.asarray(means, dtype=np.float64)
        if means.ndim != 3:
            raise ValueError(f"treatment_means: expected shape (n_contexts, n_actions, p), got {means.shape}")
        p = means.shape[2]
        cov = check_array("treatment_cov", cov, (p, p))
        if not np.allclose(cov, cov.T):
            raise ValueError("treatment_cov: must be symmetric")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError("treatment_cov: must be positive definite") from None
        self.means = check_array("treatment_means", means, means.shape)
        self.cov = cov
        self._chol_t = chol.T.copy()
        # Isotropic covariance (the default) is a scalar multiply, not a matrix product.
        iso = np.allclose(cov, cov[0, 0] * np.eye(p))
        self._iso_sd = float(np.sqrt(cov[0, 0])) if iso else None

    @property
    def n_contexts(self) -> int:
        return self.means.shape[0]

    @property
    def n_actions(self) -> int:
        return self.means.shape[1]

    @property
    def dim(self) -> int:
        return self.means.shape[2]

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of N(0, Sigma)."""
        noise = rng.standard_normal((n, self.dim))
        return noise * self._iso_sd if self._iso_sd is not None else noise @ self._chol_t

    def sample(self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.means[contexts, actions] + self._noise(len(actions), rng)

    def sample_cell(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws for one (action, context): the simulation-access path, no gather needed."""
        noise = self._noise(n, rng)
        noise += self.means[context, action]
        return noise

    def marginal_cov(self) -> np.ndarray:
        """Covariance of Z* over uniform contexts and actions (treatment noise + prompt spread)."""
        m = self.means.reshape(-1, self.dim)
        return self.cov + np.cov(m, rowvar=False, bias=True).reshape(self.dim, self.dim)
