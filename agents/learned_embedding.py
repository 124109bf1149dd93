"""GAMBITTS that learns its embedding online: a low-dimensional reward-relevant projection of a large one.

GAMBITTS wins when its working embedding carries the reward-relevant part of the
treatment. :class:`LearnedEmbeddingGAMBITTS` receives a high-dimensional embedding
(the cached-LLM variant's ``working_embedding="full"`` or ``"pca:k"``, a synthetic
``embedding_dim=50``) and, as outcomes arrive, estimates a ``rank``-dimensional
projection ``P`` (D x k, orthonormal columns) of it, then runs poGAMBITTS on the
projected treatments ``P^T z``.

Two estimators of the projection (``estimator=``):

``"pc"`` (the default): a principal-component prior. On real sentence embeddings the
reward-relevant direction lies mostly in the embedding's high-variance principal
directions, and with hundreds of dimensions and ~10^3 noisy rewards an unconstrained
regression cannot find it. So the agent takes the top ``n_components`` (m) principal
directions ``V`` (D x m) of its offline bank (the covariance of its simulated
treatments, eigenvalues lambda_j) and regresses the reward on the treatment's
coordinates u = V^T (z - bank mean), the context one-hots and an intercept, with a
Normal prior whose variance along component j is proportional to
``lambda_j ** pc_prior_power`` (1: proportional to the eigenvalue; 0: isotropic),
scaled so that a priori the embedding explains reward variance
``v / prior_precision``. Per replication it keeps that regression's posterior
((m + C + 1)^2 numbers), ``V``, the bank's means and the projected model below:
never a D x D matrix after construction, never the raw treatment history.

``"full"``: the sufficient statistics of the full-space regression of y on
phi = [z (D), context one-hots, 1] (O(D^2): 1.2 MB per replication at D = 384),
a ridge prior with precision ``prior_precision`` on coordinates scaled by the
bank's mean variance. Better when the reward direction is sparse in the
coordinates and not in the leading components (a synthetic sparse instance),
worse on real messages (see the docs' measurements).

**The projection** is refitted on a schedule (after ``first_refit``, then at
each doubling, then every ``refit_every`` rounds). Its columns span, by
Gram-Schmidt in this order:

1. the reward coefficient on z: with ``"pc"`` a draw from its posterior
   (``sample_projection=True``, the default) or its posterior mean; with
   ``"full"`` the posterior mean (for a reward linear in z the whole
   reward-relevant subspace is this one direction);
2. the ``rank - 1`` bank-mean contrasts along which the posterior is most
   uncertain about the *decision*: the top right singular vectors of
   ``L^{-1} [Dm, 0]^T``, where ``Dm`` stacks every cell's bank mean minus its
   context's average over prompts and ``L L^T`` is the regression's posterior
   precision, mapped back through ``Dm^T``.

How uncertainty about the projection feeds exploration: with ``"pc"`` the
first direction is a posterior draw at each refit (Thompson sampling over the
direction, held until the next refit), the later columns are the directions of
largest decision-relevant uncertainty, and the reward coefficients on all
``rank`` columns are Thompson-sampled each round. With ``"full"`` (or
``sample_projection=False``) the direction is plug-in: only the later columns
and the per-round coefficients explore. At a refit the low-dimensional
posterior is rebuilt exactly from the regression's statistics
(``T^T (G + Lambda) T`` with ``T = diag(P, I)``, P in the regression's
coordinates), so it is the exact posterior of the projected model with the
projected prior.

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
from gambit_gym.embeddings import LinearView
from gambit_gym.outcomes import LinearOutcome
from gambit_gym.validation import check_float, check_int


def principal_angles(basis: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between ``span(basis[r])`` and ``span(truth)`` for every row.

    ``basis`` ``(R, D, k)`` or ``(D, k)``; ``truth`` ``(D, m)`` or ``(D,)``, or ``(R, D, m)`` (one truth per
    row). Returns ``(R, min(k, m))`` (or ``(min(k, m),)``). The largest angle says how far the worse-aligned
    direction is; 0 when the truth lies in the learned subspace.

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
    if t.ndim == 3 and t.shape[0] != b.shape[0]:
        raise ValueError(f"truth: expected {b.shape[0]} rows (one per basis), got {t.shape[0]}")
    if t.shape[-2] != b.shape[1]:
        raise ValueError(f"truth: expected {b.shape[1]} rows (the embedding dimension), got {t.shape[-2]}")
    qt = np.linalg.qr(t)[0] if t.ndim == 2 else None
    out = []
    for r, row in enumerate(b):
        qb, _ = np.linalg.qr(row)
        q = qt if qt is not None else np.linalg.qr(t[r])[0]
        s = np.linalg.svd(qb.T @ q, compute_uv=False)
        out.append(np.sort(np.arccos(np.clip(s, -1.0, 1.0))))
    angles = np.array(out)
    return angles[0] if single else angles


class LearnedEmbeddingGAMBITTS(BatchedAgent):
    """poGAMBITTS on a ``rank``-dimensional projection of a high-dimensional embedding, learned online.

    Args:
        rank: k, the dimension of the learned projection (1 <= k < the embedding's dimension), or ``None``
            (or ``"full"``) for no reduction (GAMBITTS on the whole embedding with the standardised ridge prior).
        estimator: how the projection is learned: ``"pc"`` (default: regression on the bank's top
            ``n_components`` principal components with a principal-component prior) or ``"full"`` (regression on
            the whole embedding with a ridge prior); see the module docstring.
        n_components: m, the principal components the ``"pc"`` estimator regresses on (rank <= m <= D; default
            ``min(20, D)``).
        pc_prior_power: the ``"pc"`` prior's variance along component j is proportional to
            ``eigenvalue_j ** pc_prior_power`` (>= 0; 1 = proportional to the eigenvalue, 0 = isotropic).
        pc_draws: bank draws per (action, context) that estimate the bank's covariance (at most ``n_offline``).
        sample_projection: ``"pc"``: draw the projection's first direction from the posterior at each refit
            (default True); False uses the posterior mean.
        basis: a fixed projection ``(D, k)`` instead of a learned one (a baseline; ``rank`` is then ignored);
            ``from_env(..., fixed_projection="style:optimism" | "pca:5" | "coordinates:0,1")`` builds one by name.
        true_direction: the true reward-relevant subspace ``(D,)`` or ``(D, j)`` when known, for
            :meth:`diagnostics` only (``from_env`` passes :func:`reward_direction` of the env); never used to act.
        n_offline: simulated treatments per (action, context) in the bank (M_off).
        refit_every: rounds between refits of the projection once past the doubling phase.
        first_refit: the first refit's round; refits follow at each doubling until ``refit_every``.
        prior_precision: ``"full"`` and ``rank=None``: ridge precision (times 1/v) of the coefficient on z in
            units of the bank's mean variance; ``"pc"``: a priori the embedding explains reward variance
            ``v / prior_precision``.
        context_precision, intercept_precision: prior precisions (times 1/v) of the context and intercept terms.
        use_context: context one-hots in the reward model (default True).
        noise_var: fix the noise variance; ``None`` (default) learns it, v ~ InvGamma(a0, b0).
        simulator, treatment_means: the bank's source, as for :class:`~agents.gambitts.PoGAMBITTS`.

    Raises:
        IncompatibleEnvError: no simulation access (and no ``treatment_means``), or no embedding.
        ValueError: ``rank`` not below the embedding's dimension (the message says how to get a larger one), an
            unknown ``estimator``, ``n_components`` outside [rank, D], a malformed ``basis`` or ``true_direction``.
    """

    uses_embedding = True
    wants_simulator = True

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        rank: int | str | None = 3,
        estimator: str = "pc",
        n_components: int | None = None,
        pc_prior_power: float = 1.0,
        pc_draws: int = 50,
        sample_projection: bool = True,
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
        true_direction: np.ndarray | None = None,
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
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator: expected one of {list(ESTIMATORS)}, got {estimator!r}")
        self.estimator = estimator
        # 20 by default: on the cached sentence embeddings 20 did best of 5, 10, 20, 50 (see the docs)
        self.n_components = min(20, embedding_dim) if n_components is None else check_int("n_components",
                                                                                           n_components, 1)
        if self.learns_projection and estimator == "pc" and not rank <= self.n_components <= embedding_dim:
            raise ValueError(f"n_components: expected rank ({rank}) <= n_components <= the embedding's dimension "
                             f"{embedding_dim}, got {self.n_components}")
        self.pc_prior_power = check_float("pc_prior_power", pc_prior_power, minimum=0.0)
        self.pc_draws = check_int("pc_draws", pc_draws, 2)
        self.sample_projection = bool(sample_projection)
        self.true_direction = None
        if true_direction is not None:
            t = np.asarray(true_direction, dtype=np.float64)
            t = t[:, None] if t.ndim == 1 else t
            if t.ndim != 2 or t.shape[0] != embedding_dim or not np.isfinite(t).all() or not np.any(t):
                raise ValueError(f"true_direction: expected a finite non-zero ({embedding_dim},) or ({embedding_dim}, "
                                 f"j) array, got shape {np.shape(true_direction)}")
            self.true_direction = t
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
        self.bank_means, self.bank_scale, covariance = self._offline_bank()
        if self.uses_pc:
            self._set_components(covariance)
            self._init_pc_model()
        self._refit()

    @classmethod
    def from_env(cls, env: Any, seed: int | np.random.SeedSequence | None = None,
                 fixed_projection: str | None = None, **kwargs: Any) -> LearnedEmbeddingGAMBITTS:
        """Build for ``env``; ``fixed_projection`` (a string, see :func:`fixed_projection_basis`) makes the
        baseline that projects on a fixed subspace instead of learning one. The env's true reward direction
        (:func:`reward_direction`), where it has one, goes to :meth:`diagnostics` only."""
        if fixed_projection is not None:
            if "basis" in kwargs:
                raise ValueError("fixed_projection: give it or basis, not both")
            kwargs["basis"] = fixed_projection_basis(env, fixed_projection)
        if "true_direction" not in kwargs:
            kwargs["true_direction"] = reward_direction(env)
        return super().from_env(env, seed=seed, **kwargs)

    # -- sizes ---------------------------------------------------------------------------
    @property
    def k(self) -> int:
        """The projection's dimension (the embedding's when ``rank=None``)."""
        return self.embedding_dim if self.rank is None else self.rank

    @property
    def _n_other(self) -> int:
        return (self.obs_dim if self.use_context else 0) + 1

    @property
    def learns_projection(self) -> bool:
        """Whether the projection is learned (else fixed: ``rank=None`` or ``basis``)."""
        return self.rank is not None and self.fixed_basis is None

    @property
    def uses_pc(self) -> bool:
        """Whether the projection is learned by the principal-component estimator."""
        return self.learns_projection and self.estimator == "pc"

    @property
    def uses_full_statistics(self) -> bool:
        """Whether the full-space (D + C + 1)^2 statistics are kept (the ``"full"`` estimator)."""
        return self.learns_projection and self.estimator == "full"

    # -- the bank ------------------------------------------------------------------------
    def _offline_bank(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Bank means ``(R, C, K, D)``, each coordinate's sd over all the bank's draws ``(R, D)`` and, for the
        ``"pc"`` estimator, the bank's covariance ``(R, D, D)`` (from ``pc_draws`` draws per cell; else None)."""
        C, K, D, R = self.contexts.n_contexts, self.n_actions, self.embedding_dim, self.n_rows
        covariance = None
        if self._given_means is not None:
            means = np.asarray(self._given_means, dtype=np.float64)
            if means.shape != (C, K, D):
                raise ValueError(f"treatment_means: expected shape {(C, K, D)}, got {means.shape}")
            means = np.broadcast_to(means, (R, C, K, D)).copy()
            scale = means.reshape(R, C * K, D).std(axis=1)
            if self.uses_pc:  # no draws: the spread of the means is all there is
                centred = means.reshape(R, C * K, D) - means.reshape(R, C * K, D).mean(axis=1, keepdims=True)
                covariance = np.swapaxes(centred, 1, 2) @ centred / (C * K)
        else:
            means = np.empty((R, C, K, D))
            sq = np.zeros((R, D))
            n_cov = min(self.pc_draws, self.n_offline)
            second = np.zeros((R, D, D)) if self.uses_pc else None
            sub_sum = np.zeros((R, D))
            for c, a, draws in offline_treatment_draws(self._simulator, R, C, K, self.n_offline, D, self.rng):
                means[:, c, a] = draws.mean(axis=1)
                sq += (draws**2).mean(axis=1)
                if second is not None:  # a capped number of draws: O(R n D^2) per cell is the bank's main cost
                    sub = draws[:, :n_cov]
                    second += np.swapaxes(sub, 1, 2) @ sub
                    sub_sum += sub.sum(axis=1)
            scale = np.sqrt(np.maximum(sq / (C * K) - means.reshape(R, C * K, D).mean(axis=1) ** 2, 0.0))
            if second is not None:
                n = C * K * n_cov
                sub_mean = sub_sum / n
                covariance = second / n - sub_mean[:, :, None] * sub_mean[:, None, :]
        # a constant coordinate must not make the prior flat; per row, so that replications stay independent
        floor = np.maximum(np.median(scale, axis=1, keepdims=True) * 1e-6, 1e-12)
        return means, np.maximum(scale, floor), covariance

    def _set_components(self, covariance: np.ndarray) -> None:
        """The top ``n_components`` principal directions ``(R, D, m)`` and eigenvalues ``(R, m)`` of the bank."""
        m, R = self.n_components, self.n_rows
        values = np.empty((R, self.embedding_dim))
        self.components = np.empty((R, self.embedding_dim, m))
        for start in range(0, R, 16):  # in chunks: the full eigenvector stack would double the D x D memory
            vals, vecs = np.linalg.eigh(covariance[start : start + 16])  # ascending
            values[start : start + 16], self.components[start : start + 16] = vals, vecs[:, :, ::-1][:, :, :m]
        # signs fixed (largest entry positive) so the coordinates do not depend on LAPACK's choice
        sign = np.sign(np.take_along_axis(self.components, np.abs(self.components).argmax(axis=1)[:, None], axis=1))
        self.components *= np.where(sign == 0, 1.0, sign)
        top = np.maximum(values[:, ::-1][:, :m], 0.0)
        self.eigenvalues = np.maximum(top, np.maximum(top[:, :1] * 1e-12, 1e-300))  # per row: rows stay independent
        self._project_bank()

    def _project_bank(self) -> None:
        """The bank's centre ``(R, D)`` and its means in PC coordinates ``(R, C, K, m)``."""
        self.centre = self.bank_means.reshape(self.n_rows, -1, self.embedding_dim).mean(axis=1)
        centred = self.bank_means - self.centre[:, None, None, :]
        self.bank_pc = np.einsum("rckd,rdm->rckm", centred, self.components)

    def _pc_prior_diagonal(self) -> np.ndarray:
        """The ``"pc"`` regression's prior precision diagonal per row, ``(R, m + C + 1)`` (times 1/v): variance
        along component j proportional to lambda_j ** power, so that sum_j lambda_j Var(beta_j) = 1/precision."""
        power = self.pc_prior_power
        weight = self.eigenvalues**power
        total = (self.eigenvalues * weight).sum(axis=1, keepdims=True)
        other = np.full(self._n_other, self.context_precision)
        other[-1] = self.intercept_precision
        return np.concatenate([self.prior_precision * total / weight,
                               np.broadcast_to(other, (self.n_rows, self._n_other))], axis=1)

    def _init_pc_model(self) -> None:
        m = self.n_components + self._n_other
        self.pc_model = LinearGaussian(self.n_rows, np.zeros(m), np.ones(m), **self.noise_kwargs)
        self.pc_model.chol = np.sqrt(self._pc_prior_diagonal())[:, :, None] * np.eye(m)  # per-row prior

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
    def _init_state(self) -> None:
        # the full-space statistics only serve the "full" estimator's refits (O(D^2) per row saved otherwise)
        p = self.embedding_dim + self._n_other if self.uses_full_statistics else 0
        self.gram = np.zeros((self.n_rows, p, p))
        self._pending: list[np.ndarray] = []
        self.xty = np.zeros((self.n_rows, p))
        self.yy = np.zeros(self.n_rows)
        self.count = np.zeros(self.n_rows)
        self.rounds = 0
        q = self.k + self._n_other
        self.model = LinearGaussian(self.n_rows, np.zeros(q), np.ones(q), **self.noise_kwargs)
        self.basis = np.zeros((self.n_rows, self.embedding_dim, self.k))
        self.pc_basis = np.zeros((self.n_rows, self.n_components if self.uses_pc else 0, self.k))
        if hasattr(self, "bank_means"):  # reset(): the bank stays, the projection goes back to the prior's
            if self.uses_pc:
                self._init_pc_model()
            self._refit()

    def _flush(self) -> None:
        """Add the rounds since the last flush to the Gram matrix: one (R, n, p) product instead of n outer ones."""
        if self._pending:
            phi = np.stack(self._pending, axis=1)
            self.gram += np.swapaxes(phi, 1, 2) @ phi
            self._pending = []

    def _state(self) -> State:
        self._flush()
        state = {"gram": self.gram.copy(), "xty": self.xty.copy(), "yy": self.yy.copy(), "count": self.count.copy(),
                 "rounds": int(self.rounds), "basis": self.basis.copy(), "bank_means": self.bank_means.copy(),
                 "bank_scale": self.bank_scale.copy(), **prefixed("low", self.model.state())}
        if self.uses_pc:
            state.update({"components": self.components.copy(), "eigenvalues": self.eigenvalues.copy(),
                          "pc_basis": self.pc_basis.copy(), **prefixed("pc", self.pc_model.state())})
        return state

    def _load_state(self, state: State) -> None:
        self.gram, self.xty, self.yy, self.count = state["gram"], state["xty"], state["yy"], state["count"]
        self.rounds = int(state["rounds"])
        self._pending = []
        self.basis, self.bank_means, self.bank_scale = state["basis"], state["bank_means"], state["bank_scale"]
        self.model.load_state(unprefixed("low", state))
        if self.uses_pc:
            self.pc_basis = state["pc_basis"]
            self.components, self.eigenvalues = state["components"], state["eigenvalues"]
            self._project_bank()
            self.pc_model.load_state(unprefixed("pc", state))

    # -- the projection ------------------------------------------------------------------
    def _due(self) -> bool:
        n = self.rounds
        if n < self.refit_every:
            m = self.first_refit
            while m < n:
                m *= 2
            return m == n
        return n % self.refit_every == 0

    def _decision_directions(self, chol: np.ndarray, contrasts: np.ndarray) -> np.ndarray:
        """The bank-mean contrasts ``(R, n, q)`` (q <= the regression's leading coordinates) along which the
        posterior with precision ``chol chol^T`` is most uncertain about the decision: ``(R, q, k)``, best first."""
        R, n, q = contrasts.shape
        padded = np.zeros((R, chol.shape[1], n))
        padded[:, :q] = np.swapaxes(contrasts, 1, 2)
        # L^{-1} [Dm, 0]^T: its Gram is Dm Sigma Dm^T (times v), the decision-relevant uncertainty
        whitened = np.stack([solve_triangular(chol[r], padded[r], lower=True) for r in range(R)])
        _, _, vt = np.linalg.svd(whitened, full_matrices=False)
        return np.einsum("rcd,rjc->rdj", contrasts, vt[:, : self.k])  # Dm^T e_j

    def _refit(self) -> None:
        """Re-estimate the projection from the regression's statistics and rebuild the projected posterior exactly."""
        R, D, k = self.n_rows, self.embedding_dim, self.k
        C, K = self.contexts.n_contexts, self.n_actions
        if self.uses_pc:
            # the regression in PC coordinates: precision chol chol^T, b; T maps the projected model into it
            chol, xty = self.pc_model.chol, self.pc_model.b
            m = self.n_components
            theta = self.pc_model.sample(self.rng) if self.sample_projection else self.pc_model.posterior_mean()
            contrasts = (self.bank_pc - self.bank_pc.mean(axis=2, keepdims=True)).reshape(R, C * K, m)
            candidates = np.concatenate([theta[:, :m, None], self._decision_directions(chol, contrasts)], axis=2)
            self.pc_basis = np.stack([_first_independent(c, k) for c in candidates])
            self.basis = self.components @ self.pc_basis
            T = np.zeros((R, m + self._n_other, k + self._n_other))
            T[:, :m, :k] = self.pc_basis
            T[:, m:, k:] = np.eye(self._n_other)
            low = np.swapaxes(T, 1, 2) @ (chol @ np.swapaxes(chol, 1, 2)) @ T
            self.model.chol = np.linalg.cholesky(low)
            self.model.b = np.einsum("rpq,rp->rq", T, xty)
            self.model.yy = self.yy.copy()
            self.model.n = self.count.copy()
            return
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
            contrasts = (self.bank_means - self.bank_means.mean(axis=2, keepdims=True)).reshape(R, C * K, D)
            chol = np.linalg.cholesky(precision)
            # L^{-1} X^T y, from which the posterior mean is L^{-T} L^{-1} X^T y
            mean = np.stack([solve_triangular(chol[r], solve_triangular(chol[r], self.xty[r], lower=True),
                                              lower=True, trans="T") for r in range(R)])
            candidates = np.concatenate([mean[:, :D, None], self._decision_directions(chol, contrasts)], axis=2)
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
        if self.uses_pc:  # P = V B: the bank's PC coordinates times B (centring shifts every action alike)
            projected = np.einsum("rkm,rmj->rkj", self.bank_pc[self._rows, ctx], self.pc_basis)
        else:
            projected = np.einsum("rkd,rdj->rkj", self.bank_means[self._rows, ctx], self.basis)
        return np.einsum("rkj,rj->rk", projected, theta[:, : self.k])

    def _update(self, ctx, x, a, y, z):
        if self.uses_pc:
            u = np.einsum("rd,rdm->rm", z - self.centre, self.components)
            self.pc_model.update(self._features(x, u), y)
            projected = np.einsum("rm,rmj->rj", u, self.pc_basis)
        else:
            if self.uses_full_statistics:
                phi = self._features(x, z)
                self._pending.append(phi)  # added to the Gram matrix as one batched product (see _flush)
                self.xty += y[:, None] * phi
            projected = np.einsum("rd,rdj->rj", z, self.basis)
        self.yy += y * y
        self.count += 1.0
        self.rounds += 1
        if self.learns_projection and self._due():
            self._refit()
        else:
            self.model.update(self._features(x, projected), y)

    def subspace(self) -> np.ndarray:
        """The current projection ``P``, ``(R, D, k)`` with orthonormal columns (one row on a single env)."""
        return self.basis.copy() if self.batched else self.basis[0].copy()

    def diagnostics(self) -> dict[str, np.ndarray]:
        """Per-replication alignment with the true reward subspace, when the agent was given it.

        * ``"angle"`` ``(R,)``: the largest principal angle (radians) between the projection and
          ``true_direction`` in the embedding (0: the truth lies in the projection; pi/2: orthogonal to it).
        * ``"decision_angle"`` ``(R,)``: the same between the two subspaces as the decision sees them, mapped
          through the bank's contrasts ``Dm`` (every cell's bank mean minus its context's average): directions
          along which no two prompts' means differ do not count. A fixed projection far from the truth in the
          embedding can still be close here, and that is what the regret follows.

        With ``rank=None`` (no projection) both are for the posterior mean coefficient on z instead. ``{}`` when
        the truth is unknown (``true_direction`` not given and the env has no :func:`reward_direction`).
        """
        if self.true_direction is None:
            return {}
        if self.rank is None:
            basis = self.model.posterior_mean()[:, : self.embedding_dim, None]
            if not np.any(basis):  # before any data the posterior mean is 0: no direction yet
                return {"angle": np.full(self.n_rows, np.pi / 2), "decision_angle": np.full(self.n_rows, np.pi / 2)}
        else:
            basis = self.basis
        contrasts = (self.bank_means - self.bank_means.mean(axis=2, keepdims=True)).reshape(
            self.n_rows, -1, self.embedding_dim)
        seen_truth = contrasts @ self.true_direction
        decision = principal_angles(contrasts @ basis, seen_truth).max(axis=1)
        decision[~np.any(seen_truth, axis=(1, 2))] = np.nan  # the truth moves no decision: no angle to state
        return {"angle": principal_angles(basis, self.true_direction).max(axis=1), "decision_angle": decision}


#: the projection's estimators (see the module docstring)
ESTIMATORS = ("pc", "full")


def reward_direction(env: Any) -> np.ndarray | None:
    """The env's true reward-relevant subspace in its working embedding ``(D, j)``, or None when there is none
    to state: a synthetic env with a linear outcome seen through the identity view (its coefficients), or the
    cached-LLM variant with ``working_embedding="full"`` and a linear outcome (the outcome's coefficients on
    the style scores mapped back through the cache's style axes: score_j = (axis_j . z - offset_j) / scale_j).

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = gym.make("GeneratorMediated-v0", embedding_dim=6, active_dims=2)
        >>> int(np.count_nonzero(reward_direction(env)))
        2
    """
    scenario = getattr(getattr(env, "unwrapped", env), "scenario", None)
    outcome = getattr(scenario, "outcome", None)
    if not isinstance(outcome, LinearOutcome):
        return None
    view = getattr(scenario, "embedding", None)
    if isinstance(view, LinearView):
        return outcome.coef[:, None].copy() if view.is_identity else None
    cache = getattr(scenario, "cache", None)
    if cache is None or scenario.options.get("working_embedding") != "full":
        return None
    dims = list(cache.style_dimensions)
    rows = [dims.index(d) for d in scenario.outcome_spec.dimensions]
    axes = np.asarray(cache.style_axes, dtype=np.float64)[rows]
    scale = np.asarray(cache.style_scale, dtype=np.float64)[rows]
    if not np.all(np.any(axes, axis=1)):  # a given (non-embedding) style score: not a direction in the embedding
        return None
    return (axes.T @ (outcome.coef / scale))[:, None]


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
