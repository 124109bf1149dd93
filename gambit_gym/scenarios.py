"""Scenarios: named ways of composing context -> prompt -> treatment -> embedding -> reward.

``make_scenario(variant, **options)`` validates the options and returns a
:class:`Scenario`, the batched core that both the single and the vector
environment step through. The problem instance (treatment means, outcome
weights) is fixed by explicit arrays or by ``problem_seed``; it never depends
on the episode seed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gambit_gym._validation import (
    check_array,
    check_choice,
    check_float,
    check_int,
    check_no_unknown,
)
from gambit_gym.contexts import ContextSpace
from gambit_gym.embeddings import LinearView
from gambit_gym.generators import GaussianTreatments
from gambit_gym.outcomes import LinearOutcome, MLPOutcome

#: Field noise sd of the paper's 3-D linear outcome model (sqrt daily steps).
FIELD_NOISE_SD = 24.5712
N_NOISE_LEVELS = 5


def noise_levels(treatment_scale: float, field_noise_sd: float) -> np.ndarray:
    """The 5 outcome-noise sds of SPEC §3: evenly spaced from the treatment scale to the field sd."""
    return np.linspace(treatment_scale, field_noise_sd, N_NOISE_LEVELS)


def resolve_noise_sd(
    noise_level: int | None, reward_noise_sd: float | None, treatment_scale: float, field_noise_sd: float
) -> float:
    if reward_noise_sd is not None:
        if noise_level is not None:
            raise ValueError("noise_level and reward_noise_sd: give one of them, not both")
        return check_float("reward_noise_sd", reward_noise_sd, minimum=0.0)
    level = 0 if noise_level is None else check_int("noise_level", noise_level, 0, N_NOISE_LEVELS - 1)
    return float(noise_levels(treatment_scale, field_noise_sd)[level])


class Scenario:
    """A composed generator-mediated bandit problem, batched over rounds (the core both envs step).

    Subclasses set the oracle with :meth:`_set_oracle` and implement ``draw``,
    ``sample_treatments`` and ``mean_embedding``.

    Attributes:
        contexts: the :class:`ContextSpace`.
        n_actions, embedding_dim: K and d.
        expected_reward: ``(n_contexts, n_actions)`` exact mu(a, x).
        optimal_action, optimal_value: ``(n_contexts,)`` argmax and max of mu.
        noise_sd: outcome noise sd sigma_Y; ``noise_levels`` the 5 levels of SPEC §3.
        treatment_scale: sqrt of the total variance of Z*.
    """

    variant: str
    contexts: ContextSpace
    options: dict[str, Any]
    noise_sd: float
    treatment_scale: float
    noise_levels: np.ndarray

    def _set_oracle(self, expected_reward: np.ndarray) -> None:
        self.expected_reward = np.asarray(expected_reward, dtype=np.float64)
        self.optimal_action = self.expected_reward.argmax(axis=1)
        self.optimal_value = self.expected_reward.max(axis=1)
        for arr in (self.expected_reward, self.optimal_action, self.optimal_value):
            arr.setflags(write=False)

    @property
    def n_actions(self) -> int:
        return self.expected_reward.shape[1]

    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    def draw(self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator):
        """One round for each row: ``(treatment, working embedding (n, d), reward (n,))``."""
        raise NotImplementedError

    def sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Simulation access: ``n`` working embeddings drawn for (action, context)."""
        raise NotImplementedError

    def mean_embedding(self) -> np.ndarray:
        """E[Z | a, x] for every cell, ``(n_contexts, n_actions, d)``."""
        raise NotImplementedError

    def _check_cell(self, action: int, context: int, n: int) -> tuple[int, int, int]:
        return (check_int("action", action, 0, self.n_actions - 1),
                check_int("context", context, 0, self.contexts.n_contexts - 1),
                check_int("n", n, 1))

    @property
    def embedding_r2(self) -> float:
        """R^2 of mu(a, x) regressed on [E[Z | a, x], context one-hot] over all cells.

        1.0 means a linear reward model on the working embedding can represent
        every cell's expected reward (the paper's embedding sanity check).
        """
        C, K = self.expected_reward.shape
        z = self.mean_embedding().reshape(C * K, -1)
        ctx = np.repeat(self.contexts.features.astype(np.float64), K, axis=0)
        X = np.hstack([z, ctx])
        y = self.expected_reward.reshape(-1)
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        resid = y - X @ beta
        total = np.sum((y - y.mean()) ** 2)
        return float(1.0 - resid @ resid / total) if total > 0 else 1.0

    def describe(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "n_actions": self.n_actions,
            "embedding_dim": self.embedding_dim,
            "n_contexts": self.contexts.n_contexts,
            "noise_sd": self.noise_sd,
            "treatment_scale": self.treatment_scale,
            **{k: v for k, v in self.options.items() if np.ndim(v) == 0},
        }


class GaussianScenario(Scenario):
    """Synthetic treatments Z* ~ N(m[x, a], Sigma), a linear view Z of them, outcome f(Z*, x)."""

    def __init__(
        self,
        variant: str,
        contexts: ContextSpace,
        generator: GaussianTreatments,
        embedding: LinearView,
        outcome: LinearOutcome | MLPOutcome,
        noise_sd: float,
        field_noise_sd: float,
        options: dict[str, Any],
    ) -> None:
        self.variant = variant
        self.contexts = contexts
        self.generator = generator
        self.embedding = embedding
        self.outcome = outcome
        self.noise_sd = float(noise_sd)
        self.options = options
        self.treatment_scale = float(np.sqrt(np.trace(generator.marginal_cov())))
        self.noise_levels = noise_levels(self.treatment_scale, field_noise_sd)
        self._set_oracle(outcome.expected_gaussian(generator.means, generator.cov))

    @property
    def embedding_dim(self) -> int:
        return self.embedding.dim

    def draw(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One round for each row: ``(treatment (n, p), working embedding (n, d), reward (n,))``."""
        latent = self.generator.sample(actions, contexts, rng)
        z = self.embedding(latent, rng)
        reward = self.outcome.mean(latent, contexts) + self.noise_sd * rng.standard_normal(len(actions))
        return latent, z, reward

    def sample_treatments(
        self, action: int, context: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Simulation access: ``n`` working embeddings drawn for (action, context)."""
        action, context, n = self._check_cell(action, context, n)
        return self.embedding(self.generator.sample_cell(action, context, n, rng), rng)

    def mean_embedding(self) -> np.ndarray:
        """E[Z | a, x] for every cell, ``(n_contexts, n_actions, d)``."""
        return self.embedding.mean(self.generator.means)


def _latent_problem(
    *,
    n_actions: int,
    latent_dim: int,
    contexts: ContextSpace,
    problem_seed: int,
    treatment_means: Any,
    treatment_cov: Any,
    treatment_spread: float,
    treatment_noise_sd: float,
    context_shift: float,
    outcome: str,
    intercept: float,
    coefficients: Any,
    effect_size: float,
    context_effect_sd: float,
    hidden_units: int,
) -> tuple[GaussianTreatments, LinearOutcome | MLPOutcome]:
    """Draw (or take) the treatment model and the outcome model of one problem instance."""
    n_actions = check_int("n_actions", n_actions, 1)
    p = check_int("embedding_dim", latent_dim, 1)
    problem_seed = check_int("problem_seed", problem_seed, 0)
    outcome = check_choice("outcome", outcome, ("linear", "mlp"))
    spread = check_float("treatment_spread", treatment_spread, minimum=0.0)
    tsd = check_float("treatment_noise_sd", treatment_noise_sd, minimum=0.0, strict=True)
    shift = check_float("context_shift", context_shift, minimum=0.0)
    effect_size = check_float("effect_size", effect_size, minimum=0.0)
    ctx_sd = check_float("context_effect_sd", context_effect_sd, minimum=0.0)
    hidden_units = check_int("hidden_units", hidden_units, 1)
    C = contexts.n_contexts
    # Separate child streams so that, e.g., changing the outcome keeps the treatment means.
    rng_means, rng_outcome, rng_ctx = (
        np.random.default_rng(s) for s in np.random.SeedSequence(problem_seed).spawn(3)
    )
    if treatment_means is None:
        base = spread * rng_means.standard_normal((1, n_actions, p))
        means = base + shift * rng_means.standard_normal((C, n_actions, p))
    else:
        means = np.asarray(treatment_means, dtype=np.float64)
        if means.ndim == 2:  # (K, p): same means in every context
            means = np.broadcast_to(means, (C,) + means.shape).copy()
        means = check_array("treatment_means", means, (C, n_actions, p))
    cov = tsd**2 * np.eye(p) if treatment_cov is None else treatment_cov
    generator = GaussianTreatments(means, cov)
    # Additive main effects per factor level, like the paper's location and step-bucket terms.
    context_effect = contexts.features.astype(np.float64) @ (ctx_sd * rng_ctx.standard_normal(contexts.feature_dim))
    intercept = check_float("intercept", intercept)
    if outcome == "linear":
        if coefficients is None:
            u = rng_outcome.standard_normal(p)
            coef = effect_size * u / np.linalg.norm(u)
        else:
            coef = check_array("coefficients", coefficients, (p,))
        return generator, LinearOutcome(intercept, coef, context_effect)
    if coefficients is not None:
        raise ValueError("coefficients: only used with outcome='linear'")
    mlp = MLPOutcome.random(p, hidden_units, rng_outcome, intercept, context_effect)
    # Rescale the output layer so the prompts' expected rewards spread like a linear model's.
    spread_now = np.std(mlp.expected_gaussian(means, generator.cov) - context_effect[:, None])
    scale = effect_size * max(spread, 1e-12) / spread_now if spread_now > 0 else 1.0
    return generator, MLPOutcome(intercept, mlp.w1, mlp.b1, mlp.w2 * scale, context_effect)


_COMMON_DEFAULTS: dict[str, Any] = dict(
    n_actions=5,
    contexts=None,
    problem_seed=0,
    treatment_means=None,
    treatment_cov=None,
    treatment_spread=1.0,
    treatment_noise_sd=1.0,
    context_shift=0.2,
    outcome="linear",
    intercept=80.0,
    coefficients=None,
    effect_size=1.0,
    context_effect_sd=0.5,
    hidden_units=64,
    noise_level=None,
    reward_noise_sd=None,
    field_noise_sd=FIELD_NOISE_SD,
)


def _context_space(contexts: Any) -> ContextSpace:
    if contexts is None:
        return ContextSpace()
    if isinstance(contexts, ContextSpace):
        return contexts
    try:
        return ContextSpace.from_factors(contexts)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"contexts: expected a ContextSpace or [(factor, [level, ...]), ...], got {contexts!r}"
        ) from exc


def synthetic(**options: Any) -> Scenario:
    """Well-specified synthetic scenario: Z = Z* ~ N(m[x, a], Sigma), reward linear or MLP in Z*.

    Options (defaults): ``n_actions`` (5), ``embedding_dim`` (3), ``contexts``
    (mHealth 3 x 4), ``problem_seed`` (0), ``treatment_means`` ((K, d) or
    (C, K, d); default drawn: prompt means ~ N(0, treatment_spread^2) plus a
    context shift ~ N(0, context_shift^2)), ``treatment_cov`` (default
    treatment_noise_sd^2 I), ``treatment_spread`` (1.0), ``treatment_noise_sd``
    (1.0), ``context_shift`` (0.2), ``outcome`` ("linear" or "mlp"),
    ``intercept`` (80.0, the scale of sqrt daily steps), ``coefficients``
    (default a random direction of norm ``effect_size``), ``effect_size`` (1.0),
    ``context_effect_sd`` (0.5, sd of the additive reward effect of each context-factor level),
    ``hidden_units`` (64, mlp only), ``noise_level`` (0..4, default 0) or
    ``reward_noise_sd``, ``field_noise_sd`` (24.5712, the level-4 sd).
    """
    check_no_unknown("synthetic variant", options, {**_COMMON_DEFAULTS, "embedding_dim": 3})
    opts = {**_COMMON_DEFAULTS, "embedding_dim": 3, **options}
    contexts = _context_space(opts["contexts"])
    generator, outcome = _latent_problem(
        latent_dim=opts["embedding_dim"], contexts=contexts, **_latent_kwargs(opts)
    )
    field = check_float("field_noise_sd", opts["field_noise_sd"], minimum=0.0)
    scale = float(np.sqrt(np.trace(generator.marginal_cov())))
    noise_sd = resolve_noise_sd(opts["noise_level"], opts["reward_noise_sd"], scale, field)
    return GaussianScenario(
        "synthetic", contexts, generator, LinearView.identity(generator.dim), outcome, noise_sd, field, opts
    )


def misspecified(**options: Any) -> Scenario:
    """Misspecified scenario: the reward depends on Z* in R^latent_dim, the agent sees a lossy view.

    Options: everything :func:`synthetic` takes (``embedding_dim`` there is
    replaced by ``latent_dim``, default 3), plus the view of Z* the agent gets:

    * ``view="subset"`` (default): ``observed_dims`` (default ``(0,)``) of Z*;
    * ``view="projection"``: a random (``problem_seed``) orthonormal projection
      to ``embedding_dim`` (default 1) dimensions;
    * ``embedding_noise_sd`` (0.0): Gaussian noise added to the view.

    ``env.unwrapped.embedding_r2`` reports how much of mu(a, x) a linear model
    on E[Z | a, x] (plus context) can explain.
    """
    extra = {"latent_dim": 3, "view": "subset", "observed_dims": (0,), "embedding_dim": None,
             "embedding_noise_sd": 0.0}
    check_no_unknown("misspecified variant", options, {**_COMMON_DEFAULTS, **extra})
    opts = {**_COMMON_DEFAULTS, **extra, **options}
    contexts = _context_space(opts["contexts"])
    generator, outcome = _latent_problem(
        latent_dim=opts["latent_dim"], contexts=contexts, **_latent_kwargs(opts)
    )
    p = generator.dim
    view = check_choice("view", opts["view"], ("subset", "projection"))
    noise = check_float("embedding_noise_sd", opts["embedding_noise_sd"], minimum=0.0)
    if view == "subset":
        if opts["embedding_dim"] is not None:
            raise ValueError("embedding_dim: with view='subset' the dimension is len(observed_dims)")
        dims = _check_dims(opts["observed_dims"], p)
        embedding = LinearView(np.eye(p)[dims], noise, name=f"subset{dims}")
    else:
        d = check_int("embedding_dim", 1 if opts["embedding_dim"] is None else opts["embedding_dim"], 1, p)
        rng = np.random.default_rng(np.random.SeedSequence(opts["problem_seed"]).spawn(4)[3])
        q, _ = np.linalg.qr(rng.standard_normal((p, d)))
        embedding = LinearView(q.T, noise, name=f"projection{d}")
    field = check_float("field_noise_sd", opts["field_noise_sd"], minimum=0.0)
    scale = float(np.sqrt(np.trace(generator.marginal_cov())))
    noise_sd = resolve_noise_sd(opts["noise_level"], opts["reward_noise_sd"], scale, field)
    return GaussianScenario("misspecified", contexts, generator, embedding, outcome, noise_sd, field, opts)


def _check_dims(dims: Any, p: int) -> list[int]:
    if isinstance(dims, (int, np.integer)):
        dims = [dims]
    if not isinstance(dims, Sequence) or len(dims) == 0:
        raise ValueError(f"observed_dims: expected a non-empty list of indices in [0, {p - 1}], got {dims!r}")
    out = [check_int("observed_dims", d, 0, p - 1) for d in dims]
    if len(set(out)) != len(out):
        raise ValueError(f"observed_dims: indices must be distinct, got {out}")
    return out


def _latent_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    keys = inspect.signature(_latent_problem).parameters
    return {k: opts[k] for k in keys if k in opts and k not in ("latent_dim", "contexts")}


#: variant name -> scenario builder. Later variants register here.
VARIANTS: dict[str, Callable[..., Scenario]] = {
    "synthetic": synthetic,
    "misspecified": misspecified,
}


def _cached_llm(**options: Any) -> Scenario:
    from gambit_gym.cached import cached_llm  # imported on use: keeps `import gambit_gym` light

    return cached_llm(**options)


VARIANTS["cached-llm"] = _cached_llm


def make_scenario(variant: str = "synthetic", **options: Any) -> Scenario:
    """Build the named scenario; an unknown variant lists the valid ones."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    return VARIANTS[variant](**options)
