"""Working embeddings h: what the agent sees of a treatment, Z = h(G).

A view maps the reward-relevant latent Z* (batch ``(n, p)``) to the working
embedding Z (``(n, d)``): ``Z = Z* W^T + noise``. The identity view is the
well-specified case; a subset or projection with or without noise is the
misspecified one.
"""

from __future__ import annotations

import numpy as np

from gambit_gym.validation import check_array, check_float


class LinearView:
    """Z = W Z* + e, e ~ N(0, noise_sd^2 I).

    Example:
        >>> import numpy as np
        >>> v = LinearView.subset(3, [0, 2])
        >>> v(np.array([[1.0, 2.0, 3.0]]), np.random.default_rng(0))
        array([[1., 3.]])
    """

    def __init__(self, matrix: np.ndarray, noise_sd: float = 0.0, name: str = "linear") -> None:
        matrix = np.asarray(matrix, dtype=np.float64)
        self.matrix = check_array("embedding matrix", matrix, (None, None))
        self.noise_sd = check_float("embedding_noise_sd", noise_sd, minimum=0.0)
        self.name = name
        self._matrix_t = self.matrix.T.copy()
        square = self.matrix.shape[0] == self.matrix.shape[1]
        # The well-specified case skips the matrix product on the hot path.
        self.is_identity = bool(
            self.noise_sd == 0.0 and square and np.array_equal(self.matrix, np.eye(self.matrix.shape[0]))
        )

    @classmethod
    def identity(cls, p: int) -> LinearView:
        return cls(np.eye(p), 0.0, name="identity")

    @classmethod
    def subset(cls, p: int, dims: list[int], noise_sd: float = 0.0) -> LinearView:
        return cls(np.eye(p)[list(dims)], noise_sd, name=f"subset{list(dims)}")

    @property
    def dim(self) -> int:
        return self.matrix.shape[0]

    def __call__(self, latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.is_identity:
            return latent
        z = latent @ self._matrix_t
        if self.noise_sd > 0:
            z = z + self.noise_sd * rng.standard_normal(z.shape)
        return z

    def mean(self, latent_mean: np.ndarray) -> np.ndarray:
        """E[Z] given E[Z*] (the noise has mean zero)."""
        return latent_mean @ self._matrix_t
