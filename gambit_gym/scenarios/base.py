"""The scenario contract, the paper's noise levels, declarative variant options, and the scale limit.

Scale limit: every option that sets a reward-scale number (an sd, a spread, an
effect size, an intercept, an entry of ``treatment_means`` or ``coefficients``)
must be at most :data:`MAX_SCALE` = 1e9 in absolute value, and an entry of
``treatment_cov`` (a variance) at most ``MAX_SCALE ** 2``. Beyond that the
rewards lose all precision, and their squares, which the noise levels and the
agents' sufficient statistics compute, overflow to infinity: a value past the
limit is an error naming the option, never NaN rewards.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gambit_gym.contexts import ContextSpace
from gambit_gym.validation import check_float, check_int, check_no_unknown

N_NOISE_LEVELS = 5
#: The largest absolute value of a reward-scale option (see the module docstring).
MAX_SCALE = 1e9


def check_scale(name: str, value: Any, minimum: float | None = 0.0, strict: bool = False) -> float:
    """A finite real number of magnitude at most :data:`MAX_SCALE` (and at least ``minimum``).

    Example:
        >>> check_scale("effect_size", 2)
        2.0
    """
    value = check_float(name, value, minimum=minimum, strict=strict)
    if abs(value) > MAX_SCALE:
        raise ValueError(f"{name}: expected a number of magnitude at most {MAX_SCALE:g} (the scale limit of the "
                         f"reward-scale options: beyond it rewards overflow), got {value:g}")
    return value


def check_scale_array(name: str, value: np.ndarray, limit: float = MAX_SCALE) -> np.ndarray:
    """``value`` (already a finite array) if no entry exceeds ``limit`` in magnitude."""
    if value.size and float(np.abs(value).max()) > limit:
        raise ValueError(f"{name}: entries must be at most {limit:g} in magnitude (the scale limit of the "
                         f"reward-scale options: beyond it rewards overflow), got {float(np.abs(value).max()):g}")
    return value


def noise_levels(treatment_scale: float, field_noise_sd: float) -> np.ndarray:
    """The paper's 5 outcome-noise sds: evenly spaced from the treatment scale to the field sd."""
    return np.linspace(treatment_scale, field_noise_sd, N_NOISE_LEVELS)


def resolve_noise_sd(noise_level: int | None, reward_noise_sd: float | None, levels: np.ndarray) -> float:
    """sigma_Y: ``reward_noise_sd`` if given, else ``levels[noise_level]`` (level 0 by default)."""
    if reward_noise_sd is not None:
        if noise_level is not None:
            raise ValueError("noise_level and reward_noise_sd: give one of them, not both")
        return check_scale("reward_noise_sd", reward_noise_sd)
    level = 0 if noise_level is None else check_int("noise_level", noise_level, 0, N_NOISE_LEVELS - 1)
    return float(levels[level])


@dataclass(frozen=True)
class Option:
    """One option of a variant: the single source of its default and of its documentation.

    ``type`` and ``doc`` are what the environment's Arguments table shows.
    """

    name: str
    type: str
    default: Any
    doc: str


def resolve_options(variant: str, table: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """The table's defaults overridden by ``given``; an option not in the table is an error naming it."""
    check_no_unknown(f"{variant} variant", given, [o.name for o in table])
    return {**{o.name: o.default for o in table}, **given}


#: Every option, in any variant, that sets a reward-scale number: bounded by :data:`MAX_SCALE`.
SCALE_OPTIONS = ("treatment_means", "treatment_cov", "treatment_spread", "treatment_noise_sd", "context_shift",
                 "intercept", "coefficients", "effect_size", "context_effect_sd", "embedding_noise_sd",
                 "reward_noise_sd", "field_noise_sd")

NOISE_LEVEL = Option("noise_level", "int | None", None,
                     "outcome noise level 0..4 (None = 0): its sd is evenly spaced from the treatment scale "
                     "(level 0) to field_noise_sd (level 4), as in the paper; give this or reward_noise_sd")
REWARD_NOISE_SD = Option("reward_noise_sd", "float | None", None, "outcome noise sd sigma_Y >= 0, set directly")
SAFETY = Option("safety", "dict | None", None,
                'a safety layer between generation and delivery (gambit_gym.safety): "checks" (threshold, '
                'logistic, random, pattern) on the generated treatment, "attempts", "on_reject" ("fallback", '
                '"withhold", "resample"), "fallback", "no_message_reward", "harm"; None = every treatment is '
                "delivered")
DRIFT = Option("drift", "dict | None", None,
               'generator drift during deployment (gambit_gym.drift): "kind" ("none", "abrupt", "gradual", "periodic"; '
               '"endogenous" for cached-llm), "at", "window", "period", "weight"; the new generator: '
               '"magnitude", "direction", "cov_scale", "seed" (synthetic, misspecified) or "cache_path" '
               '(cached-llm; None = the domain\'s second bundled cache); endogenous: "every", "learning_rate"; '
               "None = one generator throughout")


class Scenario(abc.ABC):
    """A composed generator-mediated bandit problem, batched over rounds (the core both envs step).

    A subclass sets the oracle with :meth:`_set_oracle` and the noise with
    :meth:`_set_noise`, and implements the abstract hooks: ``embedding_dim``,
    ``draw``, ``sample_treatments`` and ``mean_embedding``.

    Attributes:
        contexts: the :class:`ContextSpace`.
        n_actions, embedding_dim: K and d.
        expected_reward: ``(n_contexts, n_actions)`` exact mu(a, x).
        optimal_action, optimal_value: ``(n_contexts,)`` argmax and max of mu.
        noise_sd: outcome noise sd sigma_Y; ``noise_levels`` the paper's 5 levels.
        treatment_scale: sqrt of the total variance of Z*.
    """

    variant: str
    contexts: ContextSpace
    options: dict[str, Any]
    noise_sd: float
    treatment_scale: float
    noise_levels: np.ndarray
    #: the safety layer (:class:`gambit_gym.safety.SafetyLayer`) or None: every treatment is delivered
    safety: Any = None
    #: exact mean harm of the delivered treatment per cell ``(n_contexts, n_actions)``; None without a layer's harm
    expected_harm: np.ndarray | None = None

    def _share_instance(self, inner: Scenario) -> None:
        """A scenario that wraps ``inner`` (a safety layer, drift) has its problem instance: variant, contexts,
        options and noise."""
        self.variant = inner.variant
        self.contexts = inner.contexts
        self.options = inner.options
        self.noise_sd = inner.noise_sd
        self.treatment_scale = inner.treatment_scale
        self.noise_levels = inner.noise_levels

    def _set_oracle(self, expected_reward: np.ndarray) -> None:
        expected_reward = np.asarray(expected_reward, dtype=np.float64)
        if not np.all(np.isfinite(expected_reward)):
            raise ValueError(f"{self.variant}: the expected rewards of this problem instance overflow (not finite); "
                             f"reduce the reward-scale options {self._scale_options()}")
        self.expected_reward = expected_reward
        self.optimal_action = self.expected_reward.argmax(axis=1)
        self.optimal_value = self.expected_reward.max(axis=1)
        for arr in (self.expected_reward, self.optimal_action, self.optimal_value):
            arr.setflags(write=False)

    def _set_noise(
        self, treatment_scale: float, field_noise_sd: Any, noise_level: Any, reward_noise_sd: Any
    ) -> None:
        """Set ``treatment_scale``, the 5 ``noise_levels`` up to ``field_noise_sd``, and ``noise_sd``."""
        field = check_scale("field_noise_sd", field_noise_sd)
        if not np.isfinite(treatment_scale):
            raise ValueError(f"{self.variant}: the treatment scale (sqrt of the total variance of Z*) of this "
                             f"problem instance overflows; reduce the reward-scale options {self._scale_options()}")
        self.treatment_scale = treatment_scale
        self.noise_levels = noise_levels(treatment_scale, field)
        self.noise_sd = resolve_noise_sd(noise_level, reward_noise_sd, self.noise_levels)

    def _scale_options(self) -> list[str]:
        """The options of this variant that set reward-scale numbers (named by overflow errors)."""
        return [name for name in SCALE_OPTIONS if name in self.options]

    @property
    def n_actions(self) -> int:
        return self.expected_reward.shape[1]

    @property
    @abc.abstractmethod
    def embedding_dim(self) -> int:
        """d, the length of the working embedding."""

    @abc.abstractmethod
    def generate(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The generation half of a round, before any outcome noise:
        ``(treatment (n, ...), working embedding (n, d), expected outcome f (n,), raw treatment (n, ...))``."""

    def draw(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One round for each row: ``(treatment (n, ...), working embedding (n, d), reward (n,))``."""
        treatment, working, outcome_mean, _ = self.generate(actions, contexts, rng)
        return treatment, working, outcome_mean + self.noise_sd * rng.standard_normal(len(actions))

    def draw_with_layer(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray] | None]:
        """:meth:`draw` plus the safety layer's per-row info (``None`` here: no layer)."""
        return (*self.draw(actions, contexts, rng), None)

    def raw_sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Simulation access before any safety layer (without one, :meth:`sample_treatments`)."""
        return self.sample_treatments(action, context, n, rng)

    @abc.abstractmethod
    def sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Simulation access: ``n`` working embeddings drawn for (action, context), ``(n, d)``."""

    @abc.abstractmethod
    def mean_embedding(self) -> np.ndarray:
        """E[Z | a, x] for every cell, ``(n_contexts, n_actions, d)``."""

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
        """The instance in one flat dict: sizes, noise, and every scalar option."""
        return {
            "variant": self.variant,
            "n_actions": self.n_actions,
            "embedding_dim": self.embedding_dim,
            "n_contexts": self.contexts.n_contexts,
            "noise_sd": self.noise_sd,
            "treatment_scale": self.treatment_scale,
            **{k: v for k, v in self.options.items() if np.ndim(v) == 0 and k != "safety"},
        }
