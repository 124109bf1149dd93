"""The synthetic scenarios: Gaussian treatments Z*, a linear view Z of them, an outcome f(Z*, x).

``synthetic`` is the well-specified case (the agent sees Z = Z*);
``misspecified`` shows the agent a lossy view of Z*. Their options, with
defaults, are :data:`SYNTHETIC_OPTIONS` and :data:`MISSPECIFIED_OPTIONS`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gambit_gym import streams
from gambit_gym.contexts import ContextSpace
from gambit_gym.domains import DEFAULT_DOMAIN, load_domain
from gambit_gym.embeddings import LinearView
from gambit_gym.outcomes import LinearOutcome, MLPOutcome, OutcomeModel
from gambit_gym.scenarios.base import (
    DRIFT,
    MAX_SCALE,
    NOISE_LEVEL,
    REWARD_NOISE_SD,
    SAFETY,
    Option,
    Scenario,
    check_scale,
    check_scale_array,
    resolve_options,
)
from gambit_gym.treatments import GaussianTreatmentModel
from gambit_gym.validation import check_array, check_choice, check_int

#: The defaults come from the mHealth domain file: its contexts, and the field noise sd of its default
#: outcome (the paper's 3-D linear model: 24.5712, sqrt daily steps).
_MHEALTH = load_domain(DEFAULT_DOMAIN)
FIELD_NOISE_SD = _MHEALTH.outcome(None).field_noise_sd

#: Options of both Gaussian variants, in the order ``describe()`` lists them.
_GAUSSIAN_OPTIONS: tuple[Option, ...] = (
    Option("n_actions", "int", 5, "K, the number of prompts (actions)"),
    Option("contexts", "ContextSpace | list | None", None,
           "context factors: a ContextSpace or [(factor, [level, ...]), ...]; None = the mHealth "
           "location x previous-day steps (12 contexts)"),
    Option("problem_seed", "int", 0,
           "seed of the drawn parts of the problem instance (treatment means, outcome, context effects, "
           "projection); never the episode seed"),
    Option("treatment_means", "array | None", None,
           "treatment means m, (K, p) (the same in every context) or (C, K, p); None = drawn: a prompt "
           "mean with sd treatment_spread plus a context shift with sd context_shift"),
    Option("treatment_cov", "array | None", None,
           "treatment covariance Sigma (p, p), symmetric positive definite; None = treatment_noise_sd^2 I"),
    Option("treatment_spread", "float", 1.0, "sd of the drawn prompt means"),
    Option("treatment_noise_sd", "float", 1.0, "sd of a treatment around its mean when treatment_cov is None"),
    Option("context_shift", "float", 0.2, "sd of the drawn per-context shift of the prompt means"),
    Option("outcome", "str", "linear", '"linear" or "mlp" (one hidden ReLU layer): the outcome f(Z*, x)'),
    Option("intercept", "float", 80.0, "the outcome's intercept (the scale of sqrt daily steps)"),
    Option("coefficients", "array | None", None,
           'weights (p,) of the "linear" outcome; None = a random direction of norm effect_size'),
    Option("effect_size", "float", 1.0,
           'norm of the drawn linear weights; "mlp" is scaled so its expected rewards spread alike'),
    Option("active_dims", "int | None", None,
           'the drawn "linear" weights are nonzero on the first active_dims coordinates of Z* only (a reward '
           "on a sparse set of directions of a large embedding); None = all"),
    Option("context_effect_sd", "float", 0.5, "sd of the additive reward effect of each context-factor level"),
    Option("hidden_units", "int", 64, 'hidden units of the "mlp" outcome'),
    NOISE_LEVEL,
    REWARD_NOISE_SD,
    Option("field_noise_sd", "float", FIELD_NOISE_SD,
           "the sd of noise level 4 (the field noise of the paper's 3-D linear outcome model)"),
    SAFETY,
    DRIFT,
)

SYNTHETIC_OPTIONS: tuple[Option, ...] = (
    *_GAUSSIAN_OPTIONS,
    Option("embedding_dim", "int", 3, "p = d: the dimension of Z* and of the working embedding Z = Z*"),
)

MISSPECIFIED_OPTIONS: tuple[Option, ...] = (
    *_GAUSSIAN_OPTIONS,
    Option("latent_dim", "int", 3, "p, the dimension of the latent treatment Z* the reward depends on"),
    Option("view", "str", "subset",
           '"subset" (the coordinates observed_dims of Z*) or "projection" (a random orthonormal '
           "projection of Z*, drawn from problem_seed): what the agent sees"),
    Option("observed_dims", "int | list[int]", (0,), 'view="subset": the distinct coordinates of Z* seen'),
    Option("embedding_dim", "int | None", None,
           'view="projection": d, the projection\'s dimension (None = 1); must be None with "subset"'),
    Option("embedding_noise_sd", "float", 0.0, "sd of Gaussian noise added to the view"),
)


class GaussianScenario(Scenario):
    """Synthetic treatments Z* ~ N(m[x, a], Sigma), a linear view Z of them, outcome f(Z*, x).

    ``options`` holds every option of the variant; the noise is read from its
    ``noise_level``, ``reward_noise_sd`` and ``field_noise_sd``.
    """

    def __init__(
        self,
        variant: str,
        contexts: ContextSpace,
        treatment_model: GaussianTreatmentModel,
        embedding: LinearView,
        outcome: OutcomeModel,
        options: dict[str, Any],
    ) -> None:
        self.variant = variant
        self.contexts = contexts
        self.treatment_model = treatment_model
        self.embedding = embedding
        self.outcome = outcome
        self.options = options
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by _set_noise / _set_oracle
            treatment_scale = float(np.sqrt(np.trace(treatment_model.marginal_cov())))
            expected_reward = outcome.expected_gaussian(treatment_model.means, treatment_model.cov)
        self._set_noise(treatment_scale, options["field_noise_sd"], options["noise_level"], options["reward_noise_sd"])
        self._set_oracle(expected_reward)

    @property
    def embedding_dim(self) -> int:
        return self.embedding.dim

    def generate(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The generation half of a round: ``(Z* (n, p), Z (n, d), f(Z*, x) (n,), Z*)``, before any noise.

        The last item is what a safety layer checks (:meth:`check_features`): the latent Z*.
        """
        latent = self.treatment_model.sample(actions, contexts, rng)
        return latent, self.embedding(latent, rng), self.outcome.mean(latent, contexts), latent

    def check_features(self, latent: np.ndarray) -> tuple[np.ndarray, None]:
        """What a safety check reads: the latent Z* (dimensions z0, z1, ...), no text."""
        return latent, None

    def sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        action, context, n = self._check_cell(action, context, n)
        return self.embedding(self.treatment_model.sample_cell(action, context, n, rng), rng)

    def mean_embedding(self) -> np.ndarray:
        return self.embedding.mean(self.treatment_model.means)

    def with_generator(self, means: np.ndarray, cov: np.ndarray) -> GaussianScenario:
        """The same world (contexts, view, outcome, noise) with another generator: Z* ~ N(means, cov).

        Example:
            >>> s = synthetic()
            >>> moved = s.with_generator(s.treatment_model.means + 1.0, s.treatment_model.cov)
            >>> moved.noise_sd == s.noise_sd, moved.expected_reward.shape
            (True, (12, 5))
        """
        other = copy.copy(self)
        other.treatment_model = GaussianTreatmentModel(means, cov)
        with np.errstate(over="ignore", invalid="ignore"):
            other._set_oracle(self.outcome.expected_gaussian(other.treatment_model.means, other.treatment_model.cov))
        return other


def _context_space(contexts: Any) -> ContextSpace:
    if contexts is None:
        return _MHEALTH.contexts
    if isinstance(contexts, ContextSpace):
        return contexts
    try:
        return ContextSpace.from_factors(contexts)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"contexts: expected a ContextSpace or [(factor, [level, ...]), ...], got {contexts!r}"
        ) from exc


def _latent_problem(
    opts: Mapping[str, Any], dim_option: str, contexts: ContextSpace
) -> tuple[GaussianTreatmentModel, OutcomeModel]:
    """Draw (or take from ``opts``) the treatment model and the outcome model of one problem instance.

    ``dim_option`` names the option holding p, the dimension of Z*.
    """
    n_actions = check_int("n_actions", opts["n_actions"], 1)
    p = check_int(dim_option, opts[dim_option], 1)
    problem_seed = check_int("problem_seed", opts["problem_seed"], 0)
    outcome = check_choice("outcome", opts["outcome"], ("linear", "mlp"))
    spread = check_scale("treatment_spread", opts["treatment_spread"])
    tsd = check_scale("treatment_noise_sd", opts["treatment_noise_sd"], strict=True)
    if tsd * tsd < np.finfo(np.float64).tiny:  # the covariance tsd^2 I would underflow to 0
        raise ValueError(f"treatment_noise_sd: expected a number whose square is a normal float (>= 1.5e-154), "
                         f"got {tsd:g}")
    shift = check_scale("context_shift", opts["context_shift"])
    effect_size = check_scale("effect_size", opts["effect_size"])
    ctx_sd = check_scale("context_effect_sd", opts["context_effect_sd"])
    hidden_units = check_int("hidden_units", opts["hidden_units"], 1)
    C = contexts.n_contexts
    # Separate streams so that, e.g., changing the outcome keeps the treatment means.
    rng_means = streams.stream(problem_seed, streams.TREATMENT_MEANS)
    rng_outcome = streams.stream(problem_seed, streams.OUTCOME)
    rng_ctx = streams.stream(problem_seed, streams.CONTEXT_EFFECTS)
    if opts["treatment_means"] is None:
        base = spread * rng_means.standard_normal((1, n_actions, p))
        means = base + shift * rng_means.standard_normal((C, n_actions, p))
    else:
        means = np.asarray(opts["treatment_means"], dtype=np.float64)
        if means.ndim == 2:  # (K, p): same means in every context
            means = np.broadcast_to(means, (C,) + means.shape).copy()
        means = check_scale_array("treatment_means", check_array("treatment_means", means, (C, n_actions, p)))
    cov = tsd**2 * np.eye(p) if opts["treatment_cov"] is None else opts["treatment_cov"]
    treatment_model = GaussianTreatmentModel(means, cov)
    check_scale_array("treatment_cov", treatment_model.cov, MAX_SCALE**2)
    # Additive main effects per factor level, like the paper's location and step-bucket terms.
    context_effect = contexts.features.astype(np.float64) @ (ctx_sd * rng_ctx.standard_normal(contexts.feature_dim))
    intercept = check_scale("intercept", opts["intercept"], minimum=None)
    if outcome == "linear":
        if opts["coefficients"] is None:
            u = rng_outcome.standard_normal(p)
            if opts["active_dims"] is not None:
                u[check_int("active_dims", opts["active_dims"], 1, p):] = 0.0
            coef = effect_size * u / np.linalg.norm(u)
        else:
            if opts["active_dims"] is not None:
                raise ValueError("active_dims: only used when the coefficients are drawn (coefficients=None)")
            coef = check_scale_array("coefficients", check_array("coefficients", opts["coefficients"], (p,)))
        return treatment_model, LinearOutcome(intercept, coef, context_effect)
    if opts["coefficients"] is not None:
        raise ValueError("coefficients: only used with outcome='linear'")
    if opts["active_dims"] is not None:
        raise ValueError("active_dims: only used with outcome='linear'")
    mlp = MLPOutcome.random(p, hidden_units, rng_outcome, intercept, context_effect)
    # Rescale the output layer so the prompts' expected rewards spread like a linear model's.
    spread_now = np.std(mlp.expected_gaussian(means, treatment_model.cov) - context_effect[:, None])
    scale = effect_size * max(spread, 1e-12) / spread_now if spread_now > 0 else 1.0
    return treatment_model, MLPOutcome(intercept, mlp.w1, mlp.b1, mlp.w2 * scale, context_effect)


def synthetic(**options: Any) -> GaussianScenario:
    """Well-specified synthetic scenario: Z = Z* ~ N(m[x, a], Sigma), reward linear or MLP in Z*.

    Options: :data:`SYNTHETIC_OPTIONS` (the Arguments table of
    :class:`~gambit_gym.env.GeneratorMediatedEnv` lists them).
    """
    opts = resolve_options("synthetic", SYNTHETIC_OPTIONS, options)
    contexts = _context_space(opts["contexts"])
    treatment_model, outcome = _latent_problem(opts, "embedding_dim", contexts)
    return GaussianScenario("synthetic", contexts, treatment_model, LinearView.identity(treatment_model.dim),
                            outcome, opts)


def misspecified(**options: Any) -> GaussianScenario:
    """Misspecified scenario: the reward depends on Z* in R^latent_dim, the agent sees a lossy view.

    Options: :data:`MISSPECIFIED_OPTIONS` (the Arguments table of
    :class:`~gambit_gym.env.GeneratorMediatedEnv` lists them): everything
    :func:`synthetic` takes, with ``latent_dim`` as the dimension of Z*, plus
    the view (``view``, ``observed_dims``, ``embedding_dim``,
    ``embedding_noise_sd``). ``env.unwrapped.embedding_r2`` reports how much of
    mu(a, x) a linear model on E[Z | a, x] (plus context) can explain.
    """
    opts = resolve_options("misspecified", MISSPECIFIED_OPTIONS, options)
    contexts = _context_space(opts["contexts"])
    treatment_model, outcome = _latent_problem(opts, "latent_dim", contexts)
    p = treatment_model.dim
    view = check_choice("view", opts["view"], ("subset", "projection"))
    noise = check_scale("embedding_noise_sd", opts["embedding_noise_sd"])
    if view == "subset":
        if opts["embedding_dim"] is not None:
            raise ValueError("embedding_dim: with view='subset' the dimension is len(observed_dims)")
        embedding = LinearView.subset(p, _check_dims(opts["observed_dims"], p), noise)
    else:
        d = check_int("embedding_dim", 1 if opts["embedding_dim"] is None else opts["embedding_dim"], 1, p)
        rng = streams.stream(opts["problem_seed"], streams.PROJECTION)
        q, _ = np.linalg.qr(rng.standard_normal((p, d)))
        embedding = LinearView(q.T, noise, name=f"projection{d}")
    return GaussianScenario("misspecified", contexts, treatment_model, embedding, outcome, opts)


def _check_dims(dims: Any, p: int) -> list[int]:
    if isinstance(dims, (int, np.integer)):
        dims = [dims]
    if not isinstance(dims, Sequence) or len(dims) == 0:
        raise ValueError(f"observed_dims: expected a non-empty list of indices in [0, {p - 1}], got {dims!r}")
    out = [check_int("observed_dims", d, 0, p - 1) for d in dims]
    if len(set(out)) != len(out):
        raise ValueError(f"observed_dims: indices must be distinct, got {out}")
    return out
