"""Agents for generators that drift: the bank as a prior, drift detection with refresh, and forgetting.

* :class:`BankPriorPoGAMBITTS` -- poGAMBITTS whose offline bank is a *prior*, not the truth: each
  (context, action) cell's treatment model is a Normal-Inverse-Wishart centred on the cell's bank
  (mean: the bank mean; E[Sigma]: the bank covariance) worth ``bank_weight`` realised treatments,
  updated by the realised treatments of the cell. With a small bank, poGAMBITTS keeps acting on the
  bank's sampling error for ever (linear regret); this agent's treatment means converge to the truth.
  Optionally a sequential test per cell (:data:`DETECTORS`) watches the realised treatments against
  the cell's model and, when it fires, re-queries the *current* generator for that cell and re-centres
  the cell's prior on the fresh draws; and ``discount`` < 1 forgets old rounds.
* :class:`DiscountedStandardTS` -- standard TS with every arm's statistics discounted each round
  (discounted Thompson sampling), the generic non-stationary baseline.

foGAMBITTS, poGAMBITTS, LinearTS and StandardTS take ``discount`` as well (see
:mod:`agents.posteriors`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import special

from agents.base import IncompatibleEnvError
from agents.gambitts import _GambittsBase, offline_treatment_draws
from agents.posteriors import NormalInverseWishart, check_discount, solve_lower
from agents.state import State, check_state, prefixed, snapshot, unprefixed
from agents.thompson import StandardTS
from gambit_gym.validation import check_choice, check_float, check_int

#: The sequential tests :class:`BankPriorPoGAMBITTS` can run on each cell (``None``: no test).
DETECTORS = ("cusum", "page-hinkley")
#: What an alarm in one cell refreshes: that cell, every action in its context, or every cell of the replication.
REFRESH_SCOPES = ("cell", "context", "replication")
#: Bound on a round's standardised score |u|: no single treatment adds more than this to a test, so one
#: outlier never fires it alone at the default threshold.
SCORE_CAP = 5.0


def bank_prior(draws: np.ndarray, bank_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """The Normal-Inverse-Wishart prior a bank of draws ``(..., n, d)`` stands for: ``(mu0 (..., d), chol
    Psi0 (..., d, d))`` with mu0 the bank mean and Psi0 = bank_weight S, S the bank covariance (ddof 1),
    so that with nu0 = bank_weight + d + 1 the prior mean of Sigma, Psi0 / (nu0 - d - 1), is S.

    S gets a relative ridge of 1e-9 of its mean variance (plus 1e-12) so that a degenerate bank
    (fewer draws than dimensions, or identical draws) still gives a factor.

    Example:
        >>> mu0, L0 = bank_prior(np.array([[0.0, 0.0], [2.0, 1.0], [1.0, 5.0]]), bank_weight=2.0)
        >>> mu0, np.round(L0 @ L0.T, 6)  # 2 x the covariance [[1, 0.5], [0.5, 7]]
        (array([1., 2.]), array([[ 2.,  1.],
               [ 1., 14.]]))
    """
    n, d = draws.shape[-2:]
    if n < 2:
        raise ValueError(f"n_offline: a bank prior needs at least 2 draws per cell (a covariance), got {n}")
    mean = draws.mean(axis=-2)
    centred = draws - mean[..., None, :]
    cov = np.einsum("...ni,...nj->...ij", centred, centred) / (n - 1)
    ridge = 1e-9 * np.trace(cov, axis1=-2, axis2=-1) / d + 1e-12
    cov += ridge[..., None, None] * np.eye(d)
    return mean, np.linalg.cholesky(bank_weight * cov)


class BankNormalInverseWishart(NormalInverseWishart):
    """A Normal-Inverse-Wishart model per (row, cell) with a prior of its own per cell (a bank).

    ``kappa0`` and ``nu0`` are shared; the prior mean ``prior_means`` (R, cells, d) and the Cholesky
    factor of Psi0 ``prior_chols`` (R, cells, d, d) are per cell, are state, and change only by
    :meth:`recentre` (which also returns the cell's posterior to its new prior). Everything else,
    forgetting included, is :class:`~agents.posteriors.NormalInverseWishart`.
    """

    def __init__(self, prior_means: np.ndarray, prior_chols: np.ndarray, kappa0: float, nu0: float,
                 discount: float = 1.0) -> None:
        n_rows, n_cells, d = prior_means.shape
        super().__init__(n_rows, n_cells, d, kappa0=kappa0, nu0=nu0, discount=discount)
        self.prior_means = np.array(prior_means, dtype=np.float64)
        self.prior_chols = np.array(prior_chols, dtype=np.float64)
        self.mean[...] = self.prior_means
        self.chol_psi[...] = self.prior_chols

    def state(self) -> State:
        """The posterior's state and the priors ``prior_means`` (R, cells, d), ``prior_chols`` (R, cells, d, d)."""
        return {**super().state(), **snapshot({"prior_means": self.prior_means, "prior_chols": self.prior_chols})}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        state = check_state(type(self).__name__, self.state(), state)
        self.prior_means, self.prior_chols = state["prior_means"], state["prior_chols"]
        self.mean, self.chol_psi, self.kappa, self.nu = state["mean"], state["chol_psi"], state["kappa"], state["nu"]
        if self.discount < 1.0:
            self.rounds, self.last = state["rounds"], state["last"]

    def _prior(self, rows, cells):
        return self.prior_means[rows, cells], self.prior_chols[rows, cells]

    def recentre(self, row: int, cell: int, mean: np.ndarray, chol: np.ndarray) -> None:
        """Give cell ``cell`` of row ``row`` the prior (``mean (d,)``, ``chol (d, d)`` of Psi0) and forget its data."""
        self.prior_means[row, cell] = self.mean[row, cell] = mean
        self.prior_chols[row, cell] = self.chol_psi[row, cell] = chol
        self.kappa[row, cell], self.nu[row, cell] = self.kappa0, self.nu0
        if self.discount < 1.0:
            self.last[row, cell] = self.rounds


def standardised_residuals(z: np.ndarray, mean: np.ndarray, chol_psi: np.ndarray, kappa: np.ndarray,
                           nu: np.ndarray) -> np.ndarray:
    """Each new treatment ``z (R, d)`` whitened by its cell's NIW posterior predictive: ``(R, d)``.

    The predictive covariance is Psi (kappa + 1) / (kappa (nu - d - 1)) (needs nu > d + 1); with L the
    Cholesky factor of Psi, the residual is L^{-1} (z - m) sqrt(kappa (nu - d - 1) / (kappa + 1)): mean 0
    and identity covariance under the model, shifted by the (whitened) change when the generator's mean
    moves. Each component is capped at +-:data:`SCORE_CAP`.

    Example:
        >>> L = np.eye(2)[None] * np.sqrt(8.0)  # Psi = 8 I, kappa = 1, nu = 7: predictive covariance 4 I
        >>> standardised_residuals(np.array([[2.0, -4.0]]), np.zeros((1, 2)), L, np.array([1.0]), np.array([7.0]))
        array([[ 1., -2.]])
    """
    d = z.shape[-1]
    scale = np.sqrt(kappa * (nu - d - 1) / (kappa + 1))
    return np.clip(solve_lower(chol_psi, z - mean) * scale[:, None], -SCORE_CAP, SCORE_CAP)


def predictive_scores(z: np.ndarray, mean: np.ndarray, chol_psi: np.ndarray, kappa: np.ndarray,
                      nu: np.ndarray) -> np.ndarray:
    """How unusual each new treatment ``z (R, d)`` is under its cell's NIW posterior predictive, as a
    standard-normal score ``(R,)``.

    The predictive is multivariate t with nu' = nu - d + 1 degrees of freedom, location m and scale
    Psi (kappa + 1) / (kappa nu'); its squared Mahalanobis distance D^2 has D^2 / d ~ F(d, nu'). The
    score is the normal quantile of that F's upper tail, u = -Phi^{-1}(P(F > D^2 / d)): N(0, 1) under
    the model, large when z is far from the model (a shifted or wider generator), very negative when
    treatments are closer than the model expects (a narrower one). Capped at +-:data:`SCORE_CAP`.

    Example:
        >>> L = np.eye(2)[None]
        >>> predictive_scores(np.array([[0.0, 0.0]]), np.zeros((1, 2)), L, np.array([1e9]), np.array([1e9])) < -1
        array([ True])
    """
    d = z.shape[-1]
    dof = nu - d + 1
    w = solve_lower(chol_psi, z - mean)
    d2 = np.einsum("rd,rd->r", w, w) * kappa * dof / (kappa + 1)
    upper = special.fdtrc(d, dof, d2 / d)
    return np.clip(-special.ndtri(upper), -SCORE_CAP, SCORE_CAP)


class BankPriorPoGAMBITTS(_GambittsBase):
    """poGAMBITTS with the offline bank as the prior of an online treatment model (and drift handling).

    Each (replication, context, action) cell has a Normal-Inverse-Wishart model of Z centred on that
    cell's offline bank of ``n_offline`` draws: mu0 = bank mean, kappa0 = ``bank_weight``, nu0 =
    bank_weight + d + 1 and Psi0 = bank_weight x bank covariance (so the prior mean of Sigma is the
    bank covariance); the realised treatments of the cell update it. Acting is foGAMBITTS's: draw theta
    from the reward posterior, then one treatment mean per action from its NIW posterior (the exact
    multivariate-t marginal), score theta^T phi(mean, x), argmax. The bank is drawn exactly as
    poGAMBITTS draws it (same calls, same stream), so the bank means equal poGAMBITTS's for a seed.

    Memory per cell: 2 d^2 + 2 d + 2 floats (posterior and prior: means and Cholesky factors, kappa,
    nu), one more with ``discount < 1``, and the test's sums: 2 d (cusum) or 4 (page-hinkley).

    Args:
        n_offline: bank draws per (action, context) (at least 2: the prior needs a covariance).
        bank_weight: kappa0, how many realised treatments the bank is worth (default: ``n_offline``,
            the number of draws it holds: the exact posterior when the generator does not change).
        detector: ``None`` (default), ``"cusum"`` or ``"page-hinkley"``: a sequential test per cell on each
            realised treatment, scored under the cell's posterior predictive *before* it is learned.
            ``"cusum"``: a two-sided CUSUM on each component of the standardised residual
            (:func:`standardised_residuals`; identity covariance while the model holds), S+ = max(0,
            S+ + e - k) and S- = max(0, S- - e - k): for shifts of the treatment *mean* (a shift of
            delta whitened sd is seen after about (h + 1.2) / (delta - k) treatments).
            ``"page-hinkley"``: a two-sided Page-Hinkley test on the Mahalanobis score
            (:func:`predictive_scores`, N(0, 1) under the model), each score minus the cell's running
            mean of scores: for a *change* of fit, in spread as well as in mean, and robust to a model
            that was miscalibrated from the start (less sensitive to small mean shifts: the score grows
            with the square of the shift). Either fires when a sum exceeds ``threshold``.
        threshold: the alarm level h (default 12: with k = 0.5 each one-sided sum raises a false alarm
            about once in 1e6 treatments of its cell while the model holds, so the d-component CUSUM
            about once in 1e6 / (2 d)).
        allowance: the reference value k (default 0.5).
        refresh_draws: draws of the *current* generator that replace a cell's prior when it is refreshed
            (default: ``n_offline``).
        refresh_scope: what an alarm in one cell refreshes: ``"cell"`` (default, that cell), ``"context"``
            (every action in its context) or ``"replication"`` (every cell of the replication: a generator
            that changed for one cell has usually changed for all, and a cell the agent no longer plays
            would otherwise keep its stale bank for ever). The fired cell goes first, then the others of
            its context, then the other contexts, while the budget lasts.
        query_budget: most current-generator draws each replication may use over the run (``None``: no
            limit); an alarm with too little budget left only resets the test.
        discount: forgetting factor gamma in (0, 1] of the reward posterior and of the treatment models
            (1, the default, forgets nothing).
        simulator: ``sample_treatments(action, context, n, rng)``; ``from_env`` passes the environment's.
            With a detector it must also take ``current=`` and ``replication=`` (the environment's
            ``sample_treatments(action, context, n, rng, current=True, replication=r)`` draws from
            replication r's generator as it is now).
        Other arguments as :class:`~agents.gambitts.PoGAMBITTS` (but no ``treatment_means``: the prior needs draws).

    :meth:`diagnostics` gives, per replication, the alarms, cells refreshed and current-generator draws used.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = gym.make("GeneratorMediated-v0")
        >>> agent = BankPriorPoGAMBITTS.from_env(env, n_offline=20, seed=0)
        >>> obs, info = env.reset(seed=0)
        >>> action = agent.act(obs)
        >>> next_obs, reward, terminated, truncated, info = env.step(action)
        >>> agent.update(obs, action, reward, info)
        >>> float(agent.treatment.kappa.max())  # the played cell: 20 bank draws and one realised treatment
        21.0
    """

    wants_simulator = True

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        n_offline: int = 500,
        bank_weight: float | None = None,
        detector: str | None = None,
        threshold: float = 12.0,
        allowance: float = 0.5,
        refresh_draws: int | None = None,
        refresh_scope: str = "cell",
        query_budget: int | None = None,
        discount: float = 1.0,
        simulator: Callable[..., np.ndarray] | None = None,
        **kwargs: Any,
    ) -> None:
        self.n_offline = check_int("n_offline", n_offline, 2)
        self.bank_weight = float(self.n_offline) if bank_weight is None else check_float(
            "bank_weight", bank_weight, minimum=0.0, strict=True)
        self.detector = None if detector is None else check_choice("detector", detector, DETECTORS)
        self.threshold = check_float("threshold", threshold, minimum=0.0, strict=True)
        self.allowance = check_float("allowance", allowance, minimum=0.0)
        self.refresh_draws = self.n_offline if refresh_draws is None else check_int("refresh_draws", refresh_draws, 2)
        self.refresh_scope = check_choice("refresh_scope", refresh_scope, REFRESH_SCOPES)
        self.query_budget = None if query_budget is None else check_int("query_budget", query_budget, 0)
        self.discount = check_discount(discount)
        if simulator is None or not callable(simulator):
            raise IncompatibleEnvError(
                "env: BankPriorPoGAMBITTS needs simulation access (env.unwrapped.sample_treatments, or "
                f"simulator=), got {simulator!r}; use FoGAMBITTS when the generator cannot be queried")
        if self.detector is not None:
            _check_current_access(simulator)
        self._simulator = simulator
        super().__init__(n_actions, obs_dim, discount=discount, **kwargs)

    # -- state ------------------------------------------------------------------------------------
    def _draw_bank(self) -> tuple[np.ndarray, np.ndarray]:
        """Bank prior per (replication, cell): means ``(R, C*K, d)`` and factors of Psi0 ``(R, C*K, d, d)``."""
        C, K, d, R = self.contexts.n_contexts, self.n_actions, self.embedding_dim, self.n_rows
        means, chols = np.empty((R, C * K, d)), np.empty((R, C * K, d, d))
        for c, a, draws in offline_treatment_draws(self._simulator, R, C, K, self.n_offline, d, self.rng):
            cell = c * K + a
            means[:, cell], chols[:, cell] = bank_prior(draws, self.bank_weight)
        return means, chols

    def _init_state(self) -> None:
        """Reward model at its prior, every cell at its bank prior (the deployment bank, or the draws of its
        latest refresh: a reset forgets the rounds, not what the simulator said), tests at zero. The
        alarm, refresh and query counts are kept: queries spent stay spent."""
        self._init_reward_model()
        if not hasattr(self, "treatment"):
            prior_means, prior_chols = self._draw_bank()
            R = self.n_rows
            self.alarms, self.refreshes, self.queries = (np.zeros(R, dtype=np.int64) for _ in range(3))
        else:
            prior_means, prior_chols = self.treatment.prior_means, self.treatment.prior_chols
        d = self.embedding_dim
        self.treatment = BankNormalInverseWishart(prior_means, prior_chols, kappa0=self.bank_weight,
                                                  nu0=self.bank_weight + d + 1, discount=self.discount)
        # the tests' sums: one per residual component (cusum) or one per cell (page-hinkley)
        width = (self.embedding_dim if self.detector == "cusum" else 1,)
        cells = prior_means.shape[1]
        self.test_up = np.zeros((self.n_rows, cells) + width)
        self.test_down = np.zeros((self.n_rows, cells) + width)
        self.score_count = np.zeros((self.n_rows, cells))  # Page-Hinkley's running mean of the scores
        self.score_mean = np.zeros((self.n_rows, cells))

    def _test_state(self) -> dict[str, np.ndarray]:
        if self.detector is None:
            return {}
        state = {"test_up": self.test_up, "test_down": self.test_down}
        if self.detector == "page-hinkley":
            state.update(score_count=self.score_count, score_mean=self.score_mean)
        return state

    def _state(self) -> State:
        return {**super()._state(), **prefixed("treatment", self.treatment.state()),
                **snapshot({**self._test_state(), "alarms": self.alarms, "refreshes": self.refreshes,
                            "queries": self.queries})}

    def _load_state(self, state: State) -> None:
        super()._load_state(state)
        self.treatment.load_state(unprefixed("treatment", state))
        for name in (*self._test_state(), "alarms", "refreshes", "queries"):
            setattr(self, name, state[name])

    def diagnostics(self) -> dict[str, np.ndarray]:
        """Per replication ``(R,)``: ``alarms`` (tests fired), ``refreshes`` (cells re-centred on the current
        generator) and ``queries`` (current-generator draws used)."""
        return {"alarms": self.alarms.copy(), "refreshes": self.refreshes.copy(), "queries": self.queries.copy()}

    # -- acting and learning ----------------------------------------------------------------------
    def _sample_scores(self, ctx, x, rng):
        """theta ~ reward posterior, then one treatment mean per action from its NIW posterior (in that order)."""
        theta = self.model.posterior.sample(rng)
        means = self.treatment.sample_mean(rng, self._rows[:, None], self._action_cells(ctx))
        return self._score(theta, means)

    def _update(self, ctx, x, a, y, z):
        self._update_reward(x, a, y, z)
        cells = self._cell(ctx, a)
        if self.detector is not None:
            self._test_and_refresh(ctx, a, cells, z)
        self.treatment.update(self._rows, cells, z)

    def _test_and_refresh(self, ctx: np.ndarray, a: np.ndarray, cells: np.ndarray, z: np.ndarray) -> None:
        """Score each row's treatment under its cell's model, advance the cell's test, and refresh the cells
        whose test fires (before the treatment is learned: it came from the current generator)."""
        rows = self._rows
        model = self.treatment.current(rows, cells)
        if self.detector == "page-hinkley":
            u = predictive_scores(z, *model)
            count = self.score_count[rows, cells] + 1.0
            level = self.score_mean[rows, cells] + (u - self.score_mean[rows, cells]) / count
            self.score_count[rows, cells], self.score_mean[rows, cells] = count, level
            excess = (u - level)[:, None]
        else:
            excess = standardised_residuals(z, *model)
        up = np.maximum(0.0, self.test_up[rows, cells] + excess - self.allowance)
        down = np.maximum(0.0, self.test_down[rows, cells] - excess - self.allowance)
        self.test_up[rows, cells], self.test_down[rows, cells] = up, down
        fired = np.any((up > self.threshold) | (down > self.threshold), axis=1)
        for r in np.flatnonzero(fired).tolist():
            self.alarms[r] += 1
            self._reset_test(r, int(cells[r]))
            for c, action in self._refresh_order(int(ctx[r]), int(a[r])):
                if self.query_budget is not None and self.queries[r] + self.refresh_draws > self.query_budget:
                    break
                draws = np.asarray(self._simulator(action, c, self.refresh_draws, self.rng, current=True,
                                                   replication=r), dtype=np.float64)
                want = (self.refresh_draws, self.embedding_dim)
                if draws.shape != want:
                    raise ValueError(f"simulator: expected current draws of shape {want}, got {draws.shape}")
                cell = c * self.n_actions + action
                self.treatment.recentre(r, cell, *bank_prior(draws, self.bank_weight))
                self._reset_test(r, cell)
                self.refreshes[r] += 1
                self.queries[r] += self.refresh_draws

    def _reset_test(self, row: int, cell: int) -> None:
        self.test_up[row, cell] = self.test_down[row, cell] = 0.0
        self.score_count[row, cell] = self.score_mean[row, cell] = 0.0

    def _refresh_order(self, ctx: int, action: int) -> list[tuple[int, int]]:
        """The (context, action) cells an alarm in (ctx, action) refreshes, in order (see ``refresh_scope``)."""
        order = [(ctx, action)]
        if self.refresh_scope != "cell":
            order += [(ctx, b) for b in range(self.n_actions) if b != action]
        if self.refresh_scope == "replication":
            order += [(c, b) for c in range(self.contexts.n_contexts) if c != ctx for b in range(self.n_actions)]
        return order


def _check_current_access(simulator: Callable[..., np.ndarray]) -> None:
    """That ``simulator`` takes ``current=`` and ``replication=`` (the environment's access to its generator
    as it is now), so a detector can refresh a cell."""
    try:
        params = inspect.signature(simulator).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): trust it
        return
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any and not {"current", "replication"} <= set(params):
        raise IncompatibleEnvError(
            "simulator: a drift detector refreshes cells through sample_treatments(action, context, n, rng, "
            "current=True, replication=r) (draws from the generator as it is now); this simulator takes "
            f"{list(params)}. Use an environment with current access, or detector=None")


class DiscountedStandardTS(StandardTS):
    """Standard TS with discounted per-arm Normal-Gamma posteriors (discounted Thompson sampling).

    Every round, every arm's count and centred sum of squares are multiplied by ``discount`` before the
    played arm's reward is added, so a reward s rounds ago weighs discount^s and an arm left alone drifts
    back towards its prior (and gets explored again). The generic baseline for non-stationary rewards.

    Args:
        discount: gamma in (0, 1] (default 0.99: an effective memory of about 100 rounds).
        Other arguments as :class:`~agents.thompson.StandardTS`.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> agent = DiscountedStandardTS.from_env(gym.make("GeneratorMediated-v0"), seed=0)
        >>> agent.posterior.discount
        0.99
    """

    def __init__(self, n_actions: int, obs_dim: int, discount: float = 0.99, **kwargs: Any) -> None:
        super().__init__(n_actions, obs_dim, discount=discount, **kwargs)
