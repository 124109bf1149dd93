"""GAMBITTS that learns its embedding online: a low-dimensional reward-relevant projection of a large one.

GAMBITTS wins when its working embedding carries the reward-relevant part of the
treatment. :class:`LearnedEmbeddingGAMBITTS` receives a high-dimensional embedding
(the cached-LLM variant's ``working_embedding="full"`` or ``"pca:k"``, a synthetic
``embedding_dim=50``) and, as outcomes arrive, estimates a ``rank``-dimensional
projection ``P`` (D x k, orthonormal columns) of it, then runs poGAMBITTS on the
projected treatments ``P^T z``.

Per replication it keeps:

* the sufficient statistics of the full-space regression of y on
  phi = [z (D), context one-hots, 1]: the Gram matrix ``sum phi phi^T``, ``sum y phi``,
  ``sum y^2`` and the count (O(D^2): 1.2 MB per replication at D = 384); never the
  raw treatment history, never a full-space covariance per cell (with a fixed
  projection, none of it: only the projected regression below);
* the offline bank's per-cell means in D dimensions (C x K x D) and each
  coordinate's spread over the bank's draws (the prior's scale);
* the projection ``P`` and the Bayesian linear regression on [P^T z, context, 1].

**The prior.** A ridge (Normal) prior on the full coefficient with precision
``prior_precision`` on *standardised* coordinates (coordinate j's precision is
``prior_precision * s_j^2``, s_j its spread in the bank), ``context_precision``
on the context one-hots, a nearly flat intercept; noise variance learned
(Normal-Inverse-Gamma) unless ``noise_var`` is given.

**The projection** is refitted on a schedule (after ``first_refit``, then at
each doubling, then every ``refit_every`` rounds). Its columns span, by
Gram-Schmidt in this order:

1. the posterior mean of the full coefficient on z (for a reward linear in z
   the whole reward-relevant subspace is this one direction);
2. the ``rank - 1`` bank-mean contrasts along which the posterior is most
   uncertain about the *decision*: the top right singular vectors of
   ``L^{-1} [Dm, 0]^T``, where ``Dm`` stacks every cell's bank mean minus its
   context's average over prompts and ``L L^T`` is the full posterior precision,
   mapped back to z-space through ``Dm^T``.

How uncertainty about the projection feeds exploration (the stated
approximation): the projection itself is not sampled; instead its later
columns are the directions of largest decision-relevant posterior
uncertainty, and the reward coefficients on all ``rank`` columns are
Thompson-sampled each round. With ``rank=1`` the agent is plug-in on the
direction. At a refit the low-dimensional posterior is rebuilt exactly from
the full statistics (``T^T (G + Lambda) T`` with ``T = diag(P, I)``), so it is
the exact posterior of the projected model with the projected prior.

``rank=None`` skips the reduction: GAMBITTS on the whole embedding with the same
standardised ridge prior (the full-space baseline, one implementation).

Example:
    >>> import gymnasium as gym, gambit_gym
    >>> env = gym.make("GeneratorMediated-v0", embedding_dim=20, active_dims=2)
    >>> agent = LearnedEmbeddingGAMBITTS.from_env(env, rank=2, n_offline=50, seed=0)
    >>> obs, info = env.reset(seed=0)
    >>> action = agent.act(obs)
    >>> next_obs, reward, terminated, truncated, info = env.step(action)
    >>> agent.update(obs, action, reward, info)
    >>> agent.basis.shape
    (1, 20, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

from agents.base import BatchedAgent, IncompatibleEnvError
from agents.gambitts import offline_treatment_draws
from agents.posteriors import LinearGaussian
from agents.state import State, prefixed, unprefixed
from gambit_gym.validation import check_float, check_int


def principal_angles(basis: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between ``span(basis[r])`` and ``span(truth)`` for every row.

    ``basis`` ``(R, D, k)`` or ``(D, k)``; ``truth`` ``(D, m)`` or ``(D,)``. Returns ``(R, min(k, m))``
    (or ``(min(k, m),)``). The largest angle says how far the worse-aligned direction is; 0 when the
    truth lies in the learned subspace.

    Example:
        >>> import numpy as np
        >>> principal_angles(np.eye(3)[:, :2], np.array([1.0, 1.0, 0.0])).round(6)
        array([0.])
    """
    b = np.asarray(basis, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    t = t[:, None] if t.ndim == 1 else t
    single = b.ndim == 2
    b = b[None] if single else b
    if b.shape[1] != t.shape[0]:
        raise ValueError(f"truth: expected {b.shape[1]} rows (the embedding dimension), got {t.shape[0]}")
    qt, _ = np.linalg.qr(t)
    out = []
    for row in b:
        qb, _ = np.linalg.qr(row)
        s = np.linalg.svd(qb.T @ qt, compute_uv=False)
        out.append(np.sort(np.arccos(np.clip(s, -1.0, 1.0))))
    angles = np.array(out)
    return angles[0] if single else angles


class LearnedEmbeddingGAMBITTS(BatchedAgent):
    """poGAMBITTS on a ``rank``-dimensional projection of a high-dimensional embedding, learned online.

    Args:
        rank: k, the dimension of the learned projection (1 <= k < the embedding's dimension), or ``None``
            (or ``"full"``) for no reduction (GAMBITTS on the whole embedding with the standardised ridge prior).
        basis: a fixed projection ``(D, k)`` instead of a learned one (a baseline; ``rank`` is then ignored);
            ``from_env(..., fixed_projection="style:optimism" | "pca:5" | "coordinates:0,1")`` builds one by name.
        n_offline: simulated treatments per (action, context) in the bank (M_off).
        refit_every: rounds between refits of the projection once past the doubling phase.
        first_refit: the first refit's round; refits follow at each doubling until ``refit_every``.
        prior_precision: ridge precision (times 1/v) of the full coefficient on standardised coordinates.
        context_precision, intercept_precision: prior precisions (times 1/v) of the context and intercept terms.
        use_context: context one-hots in the reward model (default True).
        noise_var: fix the noise variance; ``None`` (default) learns it, v ~ InvGamma(a0, b0).
        simulator, treatment_means: the bank's source, as for :class:`~agents.gambitts.PoGAMBITTS`.

    Raises:
        IncompatibleEnvError: no simulation access (and no ``treatment_means``), or no embedding.
        ValueError: ``rank`` not below the embedding's dimension (the message says how to get a larger one).
    """

    uses_embedding = True
    wants_simulator = True

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        rank: int | str | None = 3,
        n_offline: int = 500,
        refit_every: int = 50,
        first_refit: int = 10,
        prior_precision: float = 1.0,
        context_precision: float = 0.1,
        intercept_precision: float = 1e-6,
        use_context: bool = True,
        noise_var: float | None = None,
        a0: float = 2.0,
        b0: float = 1.0,
        simulator: Callable[..., np.ndarray] | None = None,
        treatment_means: np.ndarray | None = None,
        basis: np.ndarray | None = None,
        embedding_dim: int | None = None,
        **base: Any,
    ) -> None:
        if embedding_dim is None:
            raise IncompatibleEnvError(
                "env: LearnedEmbeddingGAMBITTS needs info['treatment_embedding']; this environment declares no "
                "embedding_dim (use a GeneratorMediated-v0 environment)")
        if rank == "full":  # the spelling a TOML file can write for None
            rank = None
        if rank is not None:
            rank = check_int("rank", rank, 1)
            if rank >= embedding_dim:
                raise ValueError(
                    f"rank: expected 1 <= rank < the embedding's dimension {embedding_dim}, got {rank}; learning a "
                    "projection needs a larger embedding than the projection: use working_embedding='full' or "
                    "'pca:k' (variant='cached-llm') or a larger embedding_dim (synthetic), or rank=None for none")
        self.fixed_basis = None
        if basis is not None:  # a fixed projection: a baseline that never refits
            b = np.asarray(basis, dtype=np.float64)
            if b.ndim != 2 or b.shape[0] != embedding_dim or not 1 <= b.shape[1] < embedding_dim \
                    or not np.isfinite(b).all():
                raise ValueError(f"basis: expected a finite ({embedding_dim}, k) array with 1 <= k < {embedding_dim}, "
                                 f"got shape {b.shape}")
            q, r = np.linalg.qr(b)
            if np.abs(np.diag(r)).min() <= 1e-12 * np.abs(np.diag(r)).max():
                raise ValueError("basis: its columns must be linearly independent")
            self.fixed_basis, rank = q, b.shape[1]
        self.rank = rank
        self.n_offline = check_int("n_offline", n_offline, 1)
        self.refit_every = check_int("refit_every", refit_every, 1)
        self.first_refit = check_int("first_refit", first_refit, 1)
        self.prior_precision = check_float("prior_precision", prior_precision, minimum=0.0, strict=True)
        self.context_precision = check_float("context_precision", context_precision, minimum=0.0, strict=True)
        self.intercept_precision = check_float("intercept_precision", intercept_precision, minimum=0.0, strict=True)
        self.use_context = bool(use_context)
        self.noise_kwargs = dict(noise_var=noise_var, a0=a0, b0=b0)
        if simulator is None and treatment_means is None:
            raise IncompatibleEnvError(
                "env: LearnedEmbeddingGAMBITTS needs simulation access (env.unwrapped.sample_treatments) or "
                "explicit treatment_means")
        self._simulator = simulator
        self._given_means = treatment_means
        super().__init__(n_actions, obs_dim, embedding_dim=embedding_dim, **base)
        self.bank_means, self.bank_scale = self._offline_bank()
        self._refit()

    @classmethod
    def from_env(cls, env: Any, seed: int | np.random.SeedSequence | None = None,
                 fixed_projection: str | None = None, **kwargs: Any) -> LearnedEmbeddingGAMBITTS:
        """Build for ``env``; ``fixed_projection`` (a string, see :func:`fixed_projection_basis`) makes the
        baseline that projects on a fixed subspace instead of learning one."""
        if fixed_projection is not None:
            if "basis" in kwargs:
                raise ValueError("fixed_projection: give it or basis, not both")
            kwargs["basis"] = fixed_projection_basis(env, fixed_projection)
        return super().from_env(env, seed=seed, **kwargs)

    # -- sizes ---------------------------------------------------------------------------
    @property
    def k(self) -> int:
        """The projection's dimension (the embedding's when ``rank=None``)."""
        return self.embedding_dim if self.rank is None else self.rank

    @property
    def _n_other(self) -> int:
        return (self.obs_dim if self.use_context else 0) + 1

    # -- the bank ------------------------------------------------------------------------
    def _offline_bank(self) -> tuple[np.ndarray, np.ndarray]:
        """Bank means ``(R, C, K, D)`` and each coordinate's sd over all the bank's draws ``(R, D)``."""
        C, K, D, R = self.contexts.n_contexts, self.n_actions, self.embedding_dim, self.n_rows
        if self._given_means is not None:
            means = np.asarray(self._given_means, dtype=np.float64)
            if means.shape != (C, K, D):
                raise ValueError(f"treatment_means: expected shape {(C, K, D)}, got {means.shape}")
            means = np.broadcast_to(means, (R, C, K, D)).copy()
            scale = means.reshape(R, C * K, D).std(axis=1)
        else:
            means = np.empty((R, C, K, D))
            sq = np.zeros((R, D))
            for c, a, draws in offline_treatment_draws(self._simulator, R, C, K, self.n_offline, D, self.rng):
                means[:, c, a] = draws.mean(axis=1)
                sq += (draws**2).mean(axis=1)
            scale = np.sqrt(np.maximum(sq / (C * K) - means.reshape(R, C * K, D).mean(axis=1) ** 2, 0.0))
        floor = max(float(np.median(scale)) * 1e-6, 1e-12)  # a constant coordinate must not make the prior flat
        return means, np.maximum(scale, floor)

    def _prior_diagonal(self) -> np.ndarray:
        """The full-space prior precision's diagonal per row, ``(R, p)`` (times 1/v)."""
        other = np.full(self._n_other, self.context_precision)
        other[-1] = self.intercept_precision
        # isotropic in z's own units, scaled by the mean variance: a priori the embedding explains reward
        # variance v / prior_precision in total, spread over directions in proportion to their variance
        mean_var = (self.bank_scale**2).mean(axis=1, keepdims=True)
        return np.concatenate([np.broadcast_to(self.prior_precision * mean_var, self.bank_scale.shape),
                               np.broadcast_to(other, (self.n_rows, self._n_other))], axis=1)

    # -- state ---------------------------------------------------------------------------
    @property
    def learns_projection(self) -> bool:
        """Whether the projection is learned (else fixed: ``rank=None`` or ``basis``)."""
        return self.rank is not None and self.fixed_basis is None

    def _init_state(self) -> None:
        # the full-space statistics only serve refits: a fixed projection keeps none (O(D^2) per row saved)
        p = self.embedding_dim + self._n_other if self.learns_projection else 0
        self.gram = np.zeros((self.n_rows, p, p))
        self._pending: list[np.ndarray] = []
        self.xty = np.zeros((self.n_rows, p))
        self.yy = np.zeros(self.n_rows)
        self.count = np.zeros(self.n_rows)
        self.rounds = 0
        q = self.k + self._n_other
        self.model = LinearGaussian(self.n_rows, np.zeros(q), np.ones(q), **self.noise_kwargs)
        self.basis = np.zeros((self.n_rows, self.embedding_dim, self.k))
        if hasattr(self, "bank_means"):  # reset(): the bank stays, the projection goes back to the prior's
            self._refit()

    def _flush(self) -> None:
        """Add the rounds since the last flush to the Gram matrix: one (R, n, p) product instead of n outer ones."""
        if self._pending:
            phi = np.stack(self._pending, axis=1)
            self.gram += np.swapaxes(phi, 1, 2) @ phi
            self._pending = []

    def _state(self) -> State:
        self._flush()
        return {"gram": self.gram.copy(), "xty": self.xty.copy(), "yy": self.yy.copy(), "count": self.count.copy(),
                "rounds": int(self.rounds), "basis": self.basis.copy(), "bank_means": self.bank_means.copy(),
                "bank_scale": self.bank_scale.copy(), **prefixed("low", self.model.state())}

    def _load_state(self, state: State) -> None:
        self.gram, self.xty, self.yy, self.count = state["gram"], state["xty"], state["yy"], state["count"]
        self.rounds = int(state["rounds"])
        self._pending = []
        self.basis, self.bank_means, self.bank_scale = state["basis"], state["bank_means"], state["bank_scale"]
        self.model.load_state(unprefixed("low", state))

    # -- the projection ------------------------------------------------------------------
    def _due(self) -> bool:
        n = self.rounds
        if n < self.refit_every:
            m = self.first_refit
            while m < n:
                m *= 2
            return m == n
        return n % self.refit_every == 0

    def _refit(self) -> None:
        """Re-estimate the projection from the full statistics and rebuild the projected posterior exactly."""
        R, D, k = self.n_rows, self.embedding_dim, self.k
        prior = self._prior_diagonal()
        precision = prior[:, :, None] * np.eye(prior.shape[1])
        if self.learns_projection:
            self._flush()
            precision += self.gram
        if self.rank is None:
            self.basis = np.broadcast_to(np.eye(D), (R, D, D)).copy()
        elif self.fixed_basis is not None:
            self.basis = np.broadcast_to(self.fixed_basis, (R, D, k)).copy()
        else:
            C, K = self.contexts.n_contexts, self.n_actions
            contrasts = (self.bank_means - self.bank_means.mean(axis=2, keepdims=True)).reshape(R, C * K, D)
            padded = np.zeros((R, precision.shape[1], C * K + 1))
            padded[:, :D, :-1] = np.swapaxes(contrasts, 1, 2)
            padded[:, :, -1] = self.xty
            chol = np.linalg.cholesky(precision)
            # one triangular solve per row: L^{-1} [Dm, 0]^T (its Gram is Dm Sigma Dm^T, times v: the
            # decision-relevant uncertainty) and L^{-1} X^T y, from which the posterior mean is L^{-T} L^{-1} X^T y
            solved = np.stack([solve_triangular(chol[r], padded[r], lower=True) for r in range(R)])
            whitened = solved[:, :, :-1]
            mean = np.stack([solve_triangular(chol[r], solved[r, :, -1], lower=True, trans="T") for r in range(R)])
            _, _, vt = np.linalg.svd(whitened, full_matrices=False)
            directions = np.einsum("rcd,rjc->rdj", contrasts, vt[:, : k])  # Dm^T e_j
            candidates = np.concatenate([mean[:, :D, None], directions], axis=2)
            self.basis = np.stack([_first_independent(c, k) for c in candidates])
        T = np.zeros((R, precision.shape[1], k + self._n_other))
        T[:, :D, :k] = self.basis
        T[:, D:, k:] = np.eye(self._n_other)
        low = np.swapaxes(T, 1, 2) @ precision @ T
        self.model.chol = np.linalg.cholesky(low)
        self.model.b = np.einsum("rpq,rp->rq", T, self.xty) if self.learns_projection else np.zeros(low.shape[:2])
        self.model.yy = self.yy.copy()
        self.model.n = self.count.copy()

    # -- acting and learning -------------------------------------------------------------
    def _features(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        parts = [z] + ([x] if self.use_context else []) + [np.ones((self.n_rows, 1))]
        return np.concatenate(parts, axis=1)

    def _sample_scores(self, ctx, x, rng):
        """gamma ~ projected posterior; score = gamma^T P^T (bank mean of Z for every action in the row's context)."""
        theta = self.model.sample(rng)
        projected = np.einsum("rkd,rdj->rkj", self.bank_means[self._rows, ctx], self.basis)
        return np.einsum("rkj,rj->rk", projected, theta[:, : self.k])

    def _update(self, ctx, x, a, y, z):
        if self.learns_projection:
            phi = self._features(x, z)
            self._pending.append(phi)  # added to the Gram matrix as one batched product (see _flush)
            self.xty += y[:, None] * phi
        self.yy += y * y
        self.count += 1.0
        self.rounds += 1
        if self.learns_projection and self._due():
            self._refit()
        else:
            projected = np.einsum("rd,rdj->rj", z, self.basis)
            self.model.update(self._features(x, projected), y)

    def subspace(self) -> np.ndarray:
        """The current projection ``P``, ``(R, D, k)`` with orthonormal columns (one row on a single env)."""
        return self.basis.copy() if self.batched else self.basis[0].copy()


def fixed_projection_basis(env: Any, spec: str) -> np.ndarray:
    """A fixed projection ``(D, k)`` of ``env``'s working embedding, by name.

    * ``"coordinates:i,j,..."``: those coordinates of the embedding (any environment).
    * ``"style:name,..."``: the cached-LLM variant with ``working_embedding="full"``: the directions of the
      named style scores in the sentence embedding (their axes in the cache), so a projection on
      ``"style:optimism,formality,severity"`` carries exactly what the paper's 3-D outcome reads.
    * ``"pca:k"``: the same env: the first k principal directions of the cache's sentence embeddings.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> fixed_projection_basis(gym.make("GeneratorMediated-v0", embedding_dim=6), "coordinates:0,2").shape
        (6, 2)
    """
    D = getattr(env.unwrapped, "embedding_dim", None)
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"fixed_projection: expected 'coordinates:i,j', 'style:name,...' or 'pca:k', got {spec!r}")
    kind, _, rest = spec.partition(":")
    if kind == "coordinates":
        try:
            idx = [int(v) for v in rest.split(",")]
        except ValueError:
            raise ValueError(f"fixed_projection: 'coordinates:' needs integers, got {spec!r}") from None
        if not idx or len(set(idx)) != len(idx) or min(idx) < 0 or max(idx) >= (D or 0):
            raise ValueError(f"fixed_projection: expected distinct coordinates in [0, {(D or 0) - 1}], got {spec!r}")
        return np.eye(D)[:, idx]
    scenario = getattr(env.unwrapped, "scenario", None)
    cache = getattr(scenario, "cache", None)
    if kind not in ("style", "pca"):
        raise ValueError(f"fixed_projection: unknown kind {kind!r}; expected 'coordinates', 'style' or 'pca'")
    if cache is None or scenario.options.get("working_embedding") != "full":
        raise ValueError(f"fixed_projection: {kind!r} needs variant='cached-llm' with working_embedding='full' "
                         "(the projection is a subspace of the full sentence embedding)")
    if kind == "style":
        names = [v.strip() for v in rest.split(",")]
        unknown = [n for n in names if n not in cache.style_dimensions]
        if unknown or not names:
            raise ValueError(f"fixed_projection: unknown style dimension(s) {unknown}; the cache has "
                             f"{list(cache.style_dimensions)}")
        axes = np.asarray(cache.style_axes, dtype=np.float64)
        return axes[[cache.style_dimensions.index(n) for n in names]].T
    if not rest.isdigit() or not 1 <= int(rest) < D:
        raise ValueError(f"fixed_projection: 'pca:k' needs k in [1, {D - 1}], got {spec!r}")
    x = np.asarray(cache.embeddings, dtype=np.float64)
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    return vt[: int(rest)].T


def _first_independent(candidates: np.ndarray, k: int) -> np.ndarray:
    """Orthonormal basis of the first ``k`` columns of ``candidates`` (D, m) that add a new direction, in order.

    A column whose part orthogonal to those kept is below 1e-9 of its norm is skipped (the posterior mean is
    exactly 0 before any data); canonical axes fill in if fewer than ``k`` remain (a degenerate bank).
    """
    D = candidates.shape[0]
    kept: list[np.ndarray] = []
    for col in list(candidates.T) + list(np.eye(D)):
        norm = np.linalg.norm(col)
        if norm == 0:
            continue
        v = col.copy()
        for _ in range(2):  # twice: re-orthogonalisation keeps the columns orthonormal to rounding
            for u in kept:
                v -= (u @ v) * u
        if np.linalg.norm(v) > 1e-9 * norm:
            kept.append(v / np.linalg.norm(v))
        if len(kept) == k:
            break
    return np.stack(kept, axis=1)
