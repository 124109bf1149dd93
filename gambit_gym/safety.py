"""A safety layer between generation and delivery: checks, regeneration, fallback or withholding, harm.

In sensitive domains a generated message is checked before it reaches a person. The layer is
the ``safety`` option of every variant (a dict, TOML-friendly)::

    safety = {
        "checks": [                                   # composable: a treatment passes if it passes every check
            {"type": "threshold", "dimension": "threat", "above_quantile": 0.9},
            {"type": "logistic", "weights": {"severity": 2.0}, "bias": -3.0},
            {"type": "pattern", "pattern": "lazy|failure", "ignore_case": True},   # cached-llm only
            {"type": "random", "probability": 0.05},
        ],
        "attempts": 3,                 # generations tried before giving up (>= 1)
        "on_reject": "fallback",       # "fallback", "withhold" or "resample" (regenerate until one passes)
        "fallback": {"embedding": [0, 0, 0], "reward": 80.0, "harm": 0.0, "message": "Keep moving today!"},
        "no_message_reward": 79.0,     # "withhold": the reward's mean when nothing is sent
        "null_embedding": [0, 0, 0],   # "withhold": the embedding the agent receives (default zeros)
        "harm": "threat",              # the per-message harm score: a dimension, {"weights": {...}} or
                                       # {"pattern": "..."} (1 if the text matches); optional
        "oracle": "auto",              # Gaussian variants: "auto" (closed form where it applies) or "monte-carlo"
        "oracle_draws": 65536,         # draws per cell of the numerical rule
    }

Checks look at the generated treatment itself, never at the agent's working view: the latent Z*
(dimensions ``"z0"``, ``"z1"``, ... or integer indices) in the synthetic and misspecified variants,
the message's style scores (the cache's style dimensions, as the outcome reads them) and its text in
the cached-LLM variant.

* ``threshold``: rejects when the score ``s = sum_j w_j z_j`` (one ``dimension``, or ``weights``) is
  above ``above`` (or ``above_quantile`` q: the q-quantile of s over every generated treatment,
  i.e. the whole cache, or the uniform mixture of all (context, prompt) cells) or below ``below``
  (``below_quantile``). Deterministic.
* ``logistic``: rejects with probability ``sigmoid(bias + s)``. Stochastic.
* ``random``: rejects with a fixed ``probability``. Stochastic.
* ``pattern``: rejects when a regular expression is found in the message. Deterministic, cached-LLM only.

A treatment passes one attempt with probability ``q = prod_checks (1 - P(reject))``. Rejected
treatments are regenerated (a fresh draw of the same prompt in the same context) up to
``attempts`` times; then the ``fallback`` message is delivered (its declared embedding, reward mean
and harm), or nothing is delivered (``withhold``: the agent receives ``null_embedding``, the
reward has mean ``no_message_reward``, the harm is 0). ``resample`` regenerates until a treatment
passes and is an error when some cell can never pass.

Exact oracle. With P the per-attempt pass probability of a cell, ``E[g q]`` the pass-weighted mean
of any per-treatment quantity g (reward mean, working embedding, harm) and n the attempts, the
delivered mean is ``(1 - (1 - P)^n) E[g q] / P + (1 - P)^n g_out`` (``g_out`` the fallback's or the
no-message value; ``resample``: ``E[g q] / P``). For the cached-LLM variant ``E[g q]`` is an exact
reweighting of each cell's messages. For the Gaussian variants, with u = w . Z* the score of one
linear direction:

* closed form (a truncated normal) when the outcome is linear and every threshold check reads the
  same direction (``random`` checks may be added);
* quadrature when every check reads that one direction but a check is ``logistic`` or the outcome is
  the MLP: given u, Z* is Gaussian, so E[f | u] is exact (for the MLP each hidden unit is Gaussian
  given u), and the 1-D integral over u is Gauss-Legendre with 128 nodes on the passing interval
  (within 12 sd); the reported error is the difference from 64 nodes;
* Monte Carlo for compound checks on several directions (or ``"oracle": "monte-carlo"``):
  ``oracle_draws`` draws per cell from the stream ``SAFETY_ORACLE`` of ``problem_seed``, with the pass
  probability used exactly per draw (no Bernoulli noise), split into 16 batches whose spread gives
  each cell's standard error; the error is below 4 standard errors with overwhelming probability.

``scenario.oracle_rule`` says which rule was used and ``scenario.expected_reward_se`` holds each
cell's reported error (the Monte-Carlo standard error or the quadrature's error estimate; zeros
when exact). Every rule is tested against Monte-Carlo simulation of the environment.

Random draws. The first attempt and the reward noise come from the episode's stream exactly as
without a layer; regenerations and the stochastic checks' coin flips come from a stream of the
layer's own, child ``SAFETY_KEY`` of the episode stream's seed, so with no layer (``safety=None``)
nothing changes, bit for bit.

Drift: a time-varying generator composes with the layer through :meth:`SafeScenario.draw_with_layer`,
which draws every attempt through the inner scenario's ``generate``; a drifting ``generate`` is
filtered the same way (the oracle would then need recomputing per period; drift does not exist in
this package yet).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, ndtr

from gambit_gym import streams
from gambit_gym.outcomes import LinearOutcome
from gambit_gym.scenarios.base import Scenario
from gambit_gym.scenarios.cached_llm import CachedLLMScenario
from gambit_gym.scenarios.gaussian import GaussianScenario
from gambit_gym.validation import check_choice, check_float, check_int, check_no_unknown

#: The layer's stream keys, named with the others in :mod:`gambit_gym.streams`.
SAFETY_KEY = streams.SAFETY
SAFETY_ORACLE = streams.SAFETY_ORACLE
ON_REJECT = ("fallback", "withhold", "resample")
CHECK_TYPES = ("threshold", "logistic", "random", "pattern")
_ORACLE_BATCHES = 16
_SPEC_KEYS = ("checks", "attempts", "on_reject", "fallback", "no_message_reward", "null_embedding", "harm",
              "oracle", "oracle_draws")
ORACLE_RULES = ("auto", "monte-carlo")
#: Gauss-Legendre nodes of the coarse quadrature (the reported rule uses twice as many) and the range of the
#: standardised score it integrates over (the normal mass beyond 12 sd, 4e-33, is dropped).
QUADRATURE_NODES = 64
QUADRATURE_RANGE = 12.0


@dataclass(frozen=True)
class Check:
    """One compiled check: ``kind`` with a direction ``weights`` over the treatment's dimensions."""

    kind: str
    weights: np.ndarray | None = None  # (D,) for threshold / logistic
    above: float = math.inf
    below: float = -math.inf
    bias: float = 0.0
    probability: float = 0.0
    pattern: re.Pattern[str] | None = None

    def reject_probability(self, features: np.ndarray, texts: np.ndarray | None) -> np.ndarray:
        """P(reject) for each row: 0/1 for a deterministic check."""
        n = len(features)
        if self.kind == "threshold":
            s = features @ self.weights
            return ((s > self.above) | (s < self.below)).astype(np.float64)
        if self.kind == "logistic":
            return expit(self.bias + features @ self.weights)
        if self.kind == "random":
            return np.full(n, self.probability)
        return np.fromiter((self.pattern.search(str(t)) is not None for t in texts), dtype=np.float64, count=n)


class SafetyLayer:
    """A parsed ``safety`` option for one scenario (see the module docstring for the format).

    Args:
        spec: the option's dict.
        dimensions: names of the treatment's checkable dimensions (Z* coordinates or style dimensions).
        embedding_dim: d, the working embedding's length (for the fallback and null embeddings).
        has_text: whether treatments are texts (``pattern`` checks allowed).
        score_quantile: ``(weights, q) -> float``, the q-quantile of ``weights . z`` over generated treatments.
    """

    def __init__(self, spec: Any, dimensions: Sequence[str], embedding_dim: int, has_text: bool,
                 score_quantile: Any) -> None:
        if not isinstance(spec, Mapping):
            raise ValueError(f"safety: expected a dict with keys {list(_SPEC_KEYS)}, got {spec!r}")
        check_no_unknown("safety", spec, _SPEC_KEYS)
        self.dimensions = list(dimensions)
        self._has_text = has_text
        self._quantile = score_quantile
        raw_checks = spec.get("checks", [])
        if not isinstance(raw_checks, Sequence) or isinstance(raw_checks, (str, bytes)):
            raise ValueError(f"safety.checks: expected a list of checks, got {raw_checks!r}")
        self.checks = [self._check(f"safety.checks[{i}]", c) for i, c in enumerate(raw_checks)]
        self.attempts = check_int("safety.attempts", spec.get("attempts", 1), 1)
        self.on_reject = check_choice("safety.on_reject", spec.get("on_reject", "fallback"), ON_REJECT)
        self.oracle = check_choice("safety.oracle", spec.get("oracle", "auto"), ORACLE_RULES)
        self.oracle_draws = check_int("safety.oracle_draws", spec.get("oracle_draws", 1 << 16), 2 * _ORACLE_BATCHES)
        d = embedding_dim
        self.fallback = None
        if self.on_reject == "fallback":
            fb = spec.get("fallback")
            if not isinstance(fb, Mapping) or "reward" not in fb:
                raise ValueError("safety.fallback: on_reject='fallback' needs a fallback message, a dict with "
                                 "'reward' (its reward mean) and optionally 'embedding' (length d, default zeros), "
                                 "'harm' (default 0) and 'message'; or use on_reject='withhold' or 'resample'")
            check_no_unknown("safety.fallback", fb, ("reward", "embedding", "harm", "message"))
            self.fallback = {
                "reward": check_float("safety.fallback.reward", fb["reward"], minimum=None),
                "embedding": self._vector("safety.fallback.embedding", fb.get("embedding"), d),
                "harm": check_float("safety.fallback.harm", fb.get("harm", 0.0), minimum=None),
                "message": str(fb.get("message", "[fallback message]")),
            }
        elif spec.get("fallback") is not None:
            raise ValueError(f"safety.fallback: only used with on_reject='fallback', got on_reject={self.on_reject!r}")
        if self.on_reject == "withhold":
            if "no_message_reward" not in spec:
                raise ValueError("safety.no_message_reward: on_reject='withhold' needs the reward's mean when no "
                                 "message is sent")
            self.no_message_reward = check_float("safety.no_message_reward", spec["no_message_reward"], minimum=None)
            self.null_embedding = self._vector("safety.null_embedding", spec.get("null_embedding"), d)
        else:
            for key in ("no_message_reward", "null_embedding"):
                if spec.get(key) is not None:
                    raise ValueError(f"safety.{key}: only used with on_reject='withhold'")
            self.no_message_reward, self.null_embedding = 0.0, np.zeros(d)  # never delivered: weight 0
        self.harm = None if spec.get("harm") is None else self._harm(spec["harm"])

    # -- parsing -----------------------------------------------------------------------------
    def _vector(self, name: str, value: Any, d: int) -> np.ndarray:
        if value is None:
            return np.zeros(d)
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (d,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: expected {d} finite numbers (the working embedding's length), got {value!r}")
        return arr

    def _direction(self, name: str, spec: Mapping[str, Any]) -> np.ndarray:
        if ("dimension" in spec) == ("weights" in spec):
            raise ValueError(f"{name}: give one of 'dimension' (a name) or 'weights' ({{name: weight}})")
        weights = {spec["dimension"]: 1.0} if "dimension" in spec else spec["weights"]
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(f"{name}.weights: expected a non-empty {{dimension: weight}} table, got {weights!r}")
        w = np.zeros(len(self.dimensions))
        for dim, value in weights.items():
            w[self._dim_index(name, dim)] += check_float(f"{name}.weights[{dim!r}]", value, minimum=None)
        return w

    def _dim_index(self, name: str, dim: Any) -> int:
        if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and 0 <= dim < len(self.dimensions):
            return int(dim)
        if isinstance(dim, str) and dim in self.dimensions:
            return self.dimensions.index(dim)
        raise ValueError(f"{name}: unknown dimension {dim!r}; expected one of {self.dimensions} (or an index)")

    def _check(self, name: str, spec: Any) -> Check:
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise ValueError(f"{name}: expected a dict with 'type' in {list(CHECK_TYPES)}, got {spec!r}")
        kind = check_choice(f"{name}.type", spec["type"], CHECK_TYPES)
        allowed = {"threshold": ("dimension", "weights", "above", "below", "above_quantile", "below_quantile"),
                   "logistic": ("dimension", "weights", "bias"), "random": ("probability",),
                   "pattern": ("pattern", "ignore_case")}[kind]
        check_no_unknown(name, [k for k in spec if k != "type"], allowed)
        if kind == "random":
            p = spec.get("probability")
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}.probability: expected a probability in [0, 1], got {p!r}")
            return Check(kind, probability=float(p))
        if kind == "pattern":
            if not self._has_text:
                raise ValueError(f"{name}: 'pattern' checks read message text, which only the cached-llm variant "
                                 "has; use 'threshold' or 'logistic' on the treatment's dimensions")
            try:
                pattern = re.compile(spec["pattern"], re.IGNORECASE if spec.get("ignore_case", False) else 0)
            except (KeyError, TypeError, re.error) as exc:
                raise ValueError(f"{name}.pattern: expected a regular expression, got {spec.get('pattern')!r} "
                                 f"({exc})") from None
            return Check(kind, pattern=pattern)
        w = self._direction(name, spec)
        if kind == "logistic":
            return Check(kind, weights=w, bias=check_float(f"{name}.bias", spec.get("bias", 0.0), minimum=None))
        bounds = {}
        for side in ("above", "below"):
            if side in spec and f"{side}_quantile" in spec:
                raise ValueError(f"{name}: give {side} or {side}_quantile, not both")
            if side in spec:
                bounds[side] = check_float(f"{name}.{side}", spec[side], minimum=None)
            elif f"{side}_quantile" in spec:
                q = spec[f"{side}_quantile"]
                if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 <= q <= 1.0:
                    raise ValueError(f"{name}.{side}_quantile: expected a probability in [0, 1], got {q!r}")
                bounds[side] = math.inf if (side == "above" and q == 1) else (
                    -math.inf if (side == "below" and q == 0) else float(self._quantile(w, float(q))))
        if not bounds:
            raise ValueError(f"{name}: a threshold check needs 'above', 'below', 'above_quantile' or 'below_quantile'")
        return Check(kind, weights=w, above=bounds.get("above", math.inf), below=bounds.get("below", -math.inf))

    def _harm(self, spec: Any) -> Check:
        if isinstance(spec, (str, int)) and not isinstance(spec, bool):
            spec = {"dimension": spec}
        if isinstance(spec, Mapping) and "pattern" in spec:
            return self._check("safety.harm", {"type": "pattern", **spec})
        if not isinstance(spec, Mapping):
            raise ValueError(f"safety.harm: expected a dimension name, {{'weights': ...}} or {{'pattern': ...}}, "
                             f"got {spec!r}")
        check_no_unknown("safety.harm", spec, ("dimension", "weights"))
        return Check("score", weights=self._direction("safety.harm", spec))

    # -- evaluation ----------------------------------------------------------------------------
    def pass_probability(self, features: np.ndarray, texts: np.ndarray | None = None) -> np.ndarray:
        """q: each row's probability of passing every check on one attempt."""
        q = np.ones(len(features))
        for check in self.checks:
            q *= 1.0 - check.reject_probability(features, texts)
        return q

    def harm_score(self, features: np.ndarray, texts: np.ndarray | None = None) -> np.ndarray:
        """The harm score of each generated treatment (zeros without a harm definition)."""
        if self.harm is None:
            return np.zeros(len(features))
        if self.harm.kind == "score":
            return features @ self.harm.weights
        return self.harm.reject_probability(features, texts)

    @property
    def out_reward(self) -> float:
        """The reward mean when every attempt was rejected: the fallback's or the no-message mean."""
        return self.fallback["reward"] if self.fallback is not None else self.no_message_reward

    @property
    def out_embedding(self) -> np.ndarray:
        return self.fallback["embedding"] if self.fallback is not None else self.null_embedding

    @property
    def out_harm(self) -> float:
        return self.fallback["harm"] if self.fallback is not None else 0.0

    def deliver_weight(self, p_pass: np.ndarray) -> np.ndarray:
        """P(some attempt passes) for per-attempt pass probabilities ``p_pass``."""
        if self.on_reject == "resample":
            return (p_pass > 0).astype(np.float64)
        return 1.0 - (1.0 - p_pass) ** self.attempts

    def delivered_mean(self, p_pass: np.ndarray, weighted: np.ndarray, out: Any) -> np.ndarray:
        """``(1 - (1 - P)^n) E[g q] / P + (1 - P)^n g_out``, broadcast over trailing axes of ``weighted``."""
        w = self.deliver_weight(p_pass)
        safe = np.where(p_pass > 0, p_pass, 1.0)
        extra = (slice(None),) * p_pass.ndim + (None,) * (np.ndim(weighted) - p_pass.ndim)
        return (w / safe)[extra] * weighted + (1.0 - w)[extra] * np.asarray(out)


def layer_stream(rng: np.random.Generator) -> np.random.Generator:
    """The layer's own stream for an episode stream ``rng``: child :data:`SAFETY_KEY` of its seed.

    Made directly from the seed sequence (never by spawning, which would advance its counter);
    a generator without a seed sequence gets one from its current state, which it does not advance.
    """
    seq = getattr(rng.bit_generator, "seed_seq", None)
    if isinstance(seq, np.random.SeedSequence):
        child = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, SAFETY_KEY))
    else:
        state = repr(rng.bit_generator.state).encode()
        child = np.random.SeedSequence([int.from_bytes(state[i:i + 4].ljust(4, b"\0"), "little")
                                        for i in range(0, min(len(state), 256), 4)], spawn_key=(SAFETY_KEY,))
    return np.random.default_rng(child)


class SafeScenario(Scenario):
    """A scenario seen through a :class:`SafetyLayer`: its oracle is exact for the delivered distribution.

    Everything about the problem instance (contexts, noise, options) is the inner scenario's;
    ``expected_reward``, ``optimal_action`` and ``mean_embedding()`` are those of what is delivered.

    Attributes:
        inner: the raw scenario; ``layer``: the :class:`SafetyLayer`.
        pass_probability: ``(C, K)`` per-attempt pass probability P of each cell.
        fallback_probability: ``(C, K)`` probability that the fallback (or nothing) goes out.
        expected_harm: ``(C, K)`` the delivered harm's mean.
        expected_reward_se: ``(C, K)`` the oracle's reported error: the Monte-Carlo standard error or the
            quadrature's error estimate (zeros when exact).
        oracle_rule: ``"exact reweighting"``, ``"closed form (...)"``, ``"quadrature (...)"`` or
            ``"monte-carlo (N draws per cell)"``.
    """

    def __init__(self, inner: Scenario, layer: SafetyLayer) -> None:
        self.inner = inner
        self.safety = layer
        self._share_instance(inner)
        self._layer_rngs: dict[int, tuple[np.random.Generator, np.random.Generator]] = {}
        if isinstance(inner, CachedLLMScenario):
            p_pass, wf, wz, wh, se, rule = self._cached_oracle()
        else:
            p_pass, wf, wz, wh, se, rule = self._gaussian_oracle()
        if layer.on_reject == "resample" and np.any(p_pass <= 0):
            c, a = np.argwhere(p_pass <= 0)[0]
            raise ValueError(f"safety: the checks reject every treatment of prompt {a} in context {c} and "
                             "on_reject='resample' has no fallback; give on_reject='fallback' with a fallback "
                             "message, or 'withhold'")
        self.pass_probability = p_pass
        self.fallback_probability = 1.0 - layer.deliver_weight(p_pass)
        self.expected_harm = layer.delivered_mean(p_pass, wh, layer.out_harm)
        self._mean_embedding = layer.delivered_mean(p_pass, wz, layer.out_embedding)
        self.expected_reward_se = se
        self.oracle_rule = rule
        self._set_oracle(layer.delivered_mean(p_pass, wf, layer.out_reward))

    # -- the oracle ------------------------------------------------------------------------------
    def _cached_oracle(self) -> tuple[np.ndarray, ...]:
        s: CachedLLMScenario = self.inner  # type: ignore[assignment]
        feats, texts = s.check_features_all(), s.texts_sorted
        q = self.safety.pass_probability(feats, texts)
        h = self.safety.harm_score(feats, texts)
        C, K = s.expected_reward.shape
        p_pass, wf, wh = np.empty((C, K)), np.empty((C, K)), np.empty((C, K))
        wz = np.empty((C, K, s.embedding_dim))
        for c in range(C):
            for a in range(K):
                cell = s._cell(a, c)
                qc = q[cell]
                p_pass[c, a] = qc.mean()
                wf[c, a] = (qc * s._f[cell]).mean()
                wh[c, a] = (qc * h[cell]).mean()
                wz[c, a] = (qc[:, None] * s._working[cell]).mean(0)
        return p_pass, wf, wz, wh, np.zeros((C, K)), "exact reweighting"

    def _one_direction(self) -> tuple[np.ndarray | None, float, float, float, list[tuple[float, float]]] | None:
        """The checks as functions of one score u = w . Z*, or None when they read several directions.

        Returns ``(w, lo, hi, factor, logistic)``: deterministic checks pass for ``lo <= u <= hi``, ``random``
        checks multiply the pass probability by ``factor``, and each ``(bias, slope)`` of ``logistic`` rejects
        with probability ``sigmoid(bias + slope u)``; ``w`` is None when no check reads a dimension.
        """
        lo, hi, factor, w0 = -math.inf, math.inf, 1.0, None
        logistic: list[tuple[float, float]] = []
        for check in self.safety.checks:
            if check.kind == "random":
                factor *= 1.0 - check.probability
                continue
            w = check.weights
            if w0 is None:
                w0 = w
            nz = np.flatnonzero(w0)
            ratio = float(w[nz[0]] / w0[nz[0]]) if len(nz) else 0.0
            if ratio == 0 or not np.allclose(w, ratio * w0, rtol=1e-12, atol=0):
                return None
            if check.kind == "logistic":
                logistic.append((check.bias, ratio))
                continue
            a, b = check.below / ratio, check.above / ratio  # pass: below <= ratio u <= above
            if ratio < 0:
                a, b = b, a
            lo, hi = max(lo, a), min(hi, b)
        return w0, lo, hi, factor, logistic

    def _gaussian_oracle(self) -> tuple[np.ndarray, ...]:
        s: GaussianScenario = self.inner  # type: ignore[assignment]
        tm, layer = s.treatment_model, self.safety
        means, cov = tm.means, tm.cov
        C, K, p = means.shape
        harm_linear = layer.harm is None or layer.harm.kind == "score"
        direction = self._one_direction() if harm_linear and layer.oracle == "auto" else None
        if direction is None:
            return self._monte_carlo_oracle()
        w, lo, hi, factor, logistic = direction
        sd = math.sqrt(float(w @ cov @ w)) if w is not None and np.any(w) else 0.0
        if sd == 0:  # only random checks: a constant pass probability, the raw distribution
            p_pass = np.full((C, K), factor)
            wf = factor * s.outcome.expected_gaussian(means, cov)
            latent_w = factor * means
            wh = np.zeros((C, K)) if layer.harm is None else latent_w @ layer.harm.weights
            return p_pass, wf, s.embedding.mean(latent_w), wh, np.zeros((C, K)), "closed form (random checks)"
        if not logistic and isinstance(s.outcome, LinearOutcome):
            u_mean = means @ w
            a, b = (lo - u_mean) / sd, (hi - u_mean) / sd
            mass = ndtr(b) - ndtr(a)
            dens = np.exp(-0.5 * np.minimum(a * a, 1e300)) - np.exp(-0.5 * np.minimum(b * b, 1e300))
            # E[(Z* - m) 1{lo <= u <= hi}] = Sigma w / sd * (phi(a) - phi(b))
            tail = (cov @ w / sd)[None, None, :] * (dens / math.sqrt(2 * math.pi))[..., None]
            p_pass = factor * mass
            latent_w = factor * (mass[..., None] * means + tail)  # E[Z* q]
            wf = s.outcome.intercept * p_pass + latent_w @ s.outcome.coef + s.outcome.context_effect[:, None] * p_pass
            wh = np.zeros((C, K)) if layer.harm is None else latent_w @ layer.harm.weights
            return p_pass, wf, s.embedding.mean(latent_w), wh, np.zeros((C, K)), "closed form (truncated normal)"
        coarse = self._quadrature(w, sd, lo, hi, factor, logistic, QUADRATURE_NODES)
        fine = self._quadrature(w, sd, lo, hi, factor, logistic, 2 * QUADRATURE_NODES)
        mu = [layer.delivered_mean(q[0], q[1], layer.out_reward) for q in (coarse, fine)]
        # the error estimate |Q_2n - Q_n| of the delivered mean, reported where the Monte-Carlo rule reports its SE
        error = np.abs(mu[1] - mu[0]) + 1e-12 * np.abs(mu[1])
        return (*fine, error, f"quadrature ({2 * QUADRATURE_NODES} Gauss-Legendre nodes on one direction)")

    def _quadrature(self, w: np.ndarray, sd: float, lo: float, hi: float, factor: float,
                    logistic: list[tuple[float, float]], n: int) -> tuple[np.ndarray, ...]:
        """E[q], E[f q], E[Z q], E[harm q] by Gauss-Legendre over t = (u - s) / sd on the passing interval.

        Given u, Z* = m + Sigma w (u - s) / sd^2 + R with R ~ N(0, Sigma - Sigma w w' Sigma / sd^2) independent
        of u, so E[f | u] is exact for the linear outcome and for the MLP (each hidden unit Gaussian given u).
        """
        s: GaussianScenario = self.inner  # type: ignore[assignment]
        tm, layer, outcome = s.treatment_model, self.safety, s.outcome
        means, cov = tm.means, tm.cov
        C, K, p = means.shape
        u_mean = means @ w
        a = np.maximum((lo - u_mean) / sd, -QUADRATURE_RANGE)
        b = np.minimum((hi - u_mean) / sd, QUADRATURE_RANGE)
        b = np.maximum(a, b)  # an empty interval integrates to 0
        x, weights = np.polynomial.legendre.leggauss(n)
        t = (b - a)[..., None] / 2 * x + (a + b)[..., None] / 2  # (C, K, n)
        dt = (b - a)[..., None] / 2 * weights * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
        q = np.full(t.shape, factor)
        for bias, slope in logistic:
            q = q * (1.0 - expit(bias + slope * (u_mean[..., None] + sd * t)))
        k = cov @ w / sd  # (p,): E[Z* - m | t] = k t
        latent = means[:, :, None, :] + t[..., None] * k  # (C, K, n, p): E[Z* | t]
        if isinstance(outcome, LinearOutcome):
            f = outcome.intercept + latent @ outcome.coef + outcome.context_effect[:, None, None]
        else:
            resid = cov - np.outer(cov @ w, cov @ w) / (sd * sd)
            var = np.maximum(np.einsum("hi,ij,hj->h", outcome.w1, resid, outcome.w1), 0.0)
            pre = latent @ outcome.w1.T + outcome.b1  # (C, K, n, H)
            hsd = np.sqrt(var)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(hsd > 0, pre / np.where(hsd > 0, hsd, 1.0), 0.0)
            relu = np.where(hsd > 0, pre * ndtr(z) + hsd * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi),
                            np.maximum(pre, 0.0))
            f = outcome.intercept + relu @ outcome.w2 + outcome.context_effect[:, None, None]
        mass = q * dt
        p_pass = mass.sum(-1)
        wf = (mass * f).sum(-1)
        latent_w = np.einsum("ckn,cknp->ckp", mass, latent)
        wh = np.zeros((C, K)) if layer.harm is None else latent_w @ layer.harm.weights
        return p_pass, wf, s.embedding.mean(latent_w), wh

    def _monte_carlo_oracle(self) -> tuple[np.ndarray, ...]:
        s: GaussianScenario = self.inner  # type: ignore[assignment]
        layer, tm = self.safety, s.treatment_model
        C, K, _ = tm.means.shape
        n, B = layer.oracle_draws, _ORACLE_BATCHES
        n -= n % B
        rng = streams.stream(int(s.options["problem_seed"]), SAFETY_ORACLE)
        p_pass, wf, wh = np.empty((C, K)), np.empty((C, K)), np.empty((C, K))
        wz = np.empty((C, K, s.embedding_dim))
        se = np.empty((C, K))
        for c in range(C):
            ctx = np.full(n, c, dtype=np.int64)
            for a in range(K):
                latent = tm.sample_cell(a, c, n, rng)
                q = layer.pass_probability(latent)
                f = s.outcome.mean(latent, ctx)
                h = layer.harm_score(latent)
                p_pass[c, a] = q.mean()
                wf[c, a] = (q * f).mean()
                wh[c, a] = (q * h).mean()
                wz[c, a] = s.embedding.mean((q[:, None] * latent).mean(0))
                qb = q.reshape(B, -1).mean(1)
                fb = (q * f).reshape(B, -1).mean(1)
                batch_mu = layer.delivered_mean(qb, fb, layer.out_reward)
                se[c, a] = batch_mu.std(ddof=1) / math.sqrt(B)
        return p_pass, wf, wz, wh, se, f"monte-carlo ({n} draws per cell)"

    #: descriptions of the problem instance read through to the raw scenario (its cache, prompts, models)
    FORWARDED = ("cache", "domain", "prompt_ids", "prompt_subset", "outcome", "outcome_spec", "calibration",
                 "treatment_model", "embedding")

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is not None and name in self.FORWARDED:
            return getattr(inner, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r} (the raw scenario is .inner)")

    # -- the scenario contract -----------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return self.inner.embedding_dim

    def mean_embedding(self) -> np.ndarray:
        return self._mean_embedding.copy()

    def _layer_rng(self, rng: np.random.Generator) -> np.random.Generator:
        found = self._layer_rngs.get(id(rng))
        if found is None or found[0] is not rng:
            if len(self._layer_rngs) > 4096:  # one per live episode stream; forget old episodes
                self._layer_rngs.clear()
            found = (rng, layer_stream(rng))
            self._layer_rngs[id(rng)] = found
        return found[1]

    def draw_with_layer(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator, with_reward: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """One round per row through the layer: ``(delivered treatment, working embedding, reward, extras)``.

        ``extras``: ``delivered`` (bool), ``attempts`` (int), ``filtered`` (some attempt rejected),
        ``fallback`` (the fallback went out), ``raw_treatment`` (the last generated attempt), ``harm``.
        """
        inner, layer = self.inner, self.safety
        n = len(actions)
        treatment, working, f, ref = inner.generate(actions, contexts, rng)
        treatment, working, f = treatment.copy(), np.array(working, dtype=np.float64), f.copy()
        feats, texts = inner.check_features(ref)
        lrng = self._layer_rng(rng)
        passed = lrng.random(n) < layer.pass_probability(feats, texts)
        harm = layer.harm_score(feats, texts)
        attempts = np.ones(n, dtype=np.int64)
        limit = self.safety.attempts if layer.on_reject != "resample" else 1 << 30
        rows = np.flatnonzero(~passed)
        while len(rows) and attempts[rows[0]] < limit:
            t2, z2, f2, ref2 = inner.generate(actions[rows], contexts[rows], lrng)
            feats2, texts2 = inner.check_features(ref2)
            treatment[rows], working[rows], f[rows] = t2, z2, f2
            harm[rows] = layer.harm_score(feats2, texts2)
            passed[rows] = lrng.random(len(rows)) < layer.pass_probability(feats2, texts2)
            attempts[rows] += 1
            rows = rows[~passed[rows]]
        raw = treatment.copy()
        out = ~passed
        if out.any():
            working[out] = layer.out_embedding
            f[out] = layer.out_reward
            harm[out] = layer.out_harm
            if treatment.dtype.kind in "UO":
                treatment = treatment.astype(object)
                treatment[out] = layer.fallback["message"] if layer.fallback is not None else ""
            else:
                treatment[out] = np.nan
        # Simulation access (with_reward=False) draws no reward noise, so a layer that passes everything
        # leaves the simulation stream exactly where the raw generator would.
        reward = f + self.noise_sd * rng.standard_normal(n) if with_reward else f
        extras = {"delivered": passed | (layer.fallback is not None), "attempts": attempts,
                  "filtered": (attempts > 1) | out, "fallback": out & (layer.fallback is not None),
                  "raw_treatment": raw, "harm": harm}
        return treatment, working, reward, extras

    def generate(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The delivered treatments before outcome noise: ``(treatment, working, f, raw treatment)``."""
        treatment, working, f, extras = self.draw_with_layer(actions, contexts, rng, with_reward=False)
        return treatment, working, f, extras["raw_treatment"]

    def draw(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the layer draws its outcome noise itself, after the checks (its own order of draws)
        treatment, working, reward, _ = self.draw_with_layer(actions, contexts, rng)
        return treatment, working, reward

    def sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Simulation access through the layer: ``n`` delivered working embeddings for (action, context)."""
        action, context, n = self._check_cell(action, context, n)
        acts, ctx = np.full(n, action, dtype=np.int64), np.full(n, context, dtype=np.int64)
        return self.draw_with_layer(acts, ctx, rng, with_reward=False)[1]

    def raw_sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Simulation access to the raw generator, before the layer (what a filter-unaware bank sees)."""
        return self.inner.sample_treatments(action, context, n, rng)

    def describe(self) -> dict[str, Any]:
        out = self.inner.describe()
        out["safety_checks"] = len(self.safety.checks)
        out["safety_on_reject"] = self.safety.on_reject
        out["safety_oracle"] = self.oracle_rule
        out["mean_fallback_probability"] = float(self.fallback_probability.mean())
        return out


def apply_safety(scenario: Scenario, spec: Any) -> Scenario:
    """``scenario`` through the layer ``spec`` (the ``safety`` option); ``None`` returns it unchanged.

    Example:
        >>> from gambit_gym.scenarios import make_scenario
        >>> s = make_scenario("synthetic", safety={"checks": [{"type": "threshold", "dimension": "z0",
        ...     "above_quantile": 0.8}], "on_reject": "withhold", "no_message_reward": 79.0})
        >>> s.oracle_rule, bool((s.fallback_probability > 0).all())
        ('closed form (truncated normal)', True)
    """
    if spec is None:
        return scenario
    if isinstance(scenario, CachedLLMScenario):
        dims, has_text = list(scenario.cache.style_dimensions), True
        feats = scenario.check_features_all()

        def quantile(w: np.ndarray, q: float) -> float:
            return float(np.quantile(feats @ w, q))
    elif isinstance(scenario, GaussianScenario):
        tm = scenario.treatment_model
        dims, has_text = [f"z{i}" for i in range(tm.dim)], False

        def quantile(w: np.ndarray, q: float) -> float:
            from scipy.optimize import brentq  # only here: keeps ``import gambit_gym`` light

            u_mean = (tm.means @ w).ravel()
            sd = math.sqrt(float(w @ tm.cov @ w))
            if sd == 0:
                return float(np.quantile(u_mean, q))
            lo, hi = u_mean.min() - 40 * sd, u_mean.max() + 40 * sd
            return float(brentq(lambda t: ndtr((t - u_mean) / sd).mean() - q, lo, hi, xtol=1e-12))
    else:
        raise ValueError(f"safety: the {scenario.variant!r} variant has no safety layer")
    return SafeScenario(scenario, SafetyLayer(spec, dims, scenario.embedding_dim, has_text, quantile))
