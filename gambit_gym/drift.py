"""Generator drift: the generator that serves round t changes during deployment (the ``drift`` option).

The paper assumes one fixed generator P(G | a, x). Here the generator of round t is one of two:
the one deployed at launch (*before*) and a new one (*after*), and round t's message comes from the new
one with probability w(t), the **mixture weight** (a staged roll-out: that share of the traffic is served
by the new model version). Each message is served by one generator, so everything downstream (a safety
layer's regenerations included) happens within that generator, and the exact expected reward of a cell is

    mu_t(a, x) = (1 - w(t)) mu_before(a, x) + w(t) mu_after(a, x),

exact for every outcome model; pseudo-regret is taken against the best action *of the current round*,
max_a mu_t(a, x). The schedules (``kind``; ``"none"`` is the same as no ``drift`` option, for sweeps):

* ``"abrupt"``: w(t) = weight from round ``at`` on (a switch, or with weight < 1 a partial switch);
* ``"gradual"``: w(t) rises linearly from 0 at round ``at`` to ``weight`` at round ``at + window``;
* ``"periodic"``: w(t) = weight (1 - cos(2 pi (t - at) / period)) / 2 from round ``at``: the new
  generator's share comes and goes with period ``period``;
* ``"endogenous"`` (cached-LLM only): the paper's fine-tuned generator. Every ``every`` rounds from
  round ``at``, each replication's generator re-weights its own messages toward those that earned higher
  rewards: exponential tilting of the per-cell message weights,
  log w_m += learning_rate * sum over the window's rounds that delivered m of (y - mu_t(a, x)) / sigma_Y,
  renormalised within each cell (sigma_Y is the outcome noise sd, 1 if it is 0). The generator is
  then per replication: its treatment distribution depends on that replication's own history, and
  mu_t is exact under its current weights.

What the new generator is, per variant:

* synthetic / misspecified: the treatment means move by ``magnitude`` x the treatment scale (sqrt of
  the total variance of Z*) along a direction per (context, action) cell: seeded (``seed``, default the
  ``problem_seed``), or ``direction`` given as ``(p,)``, ``(K, p)`` or ``(C, K, p)`` (normalised per
  cell); ``cov_scale`` multiplies the treatment covariance;
* cached-LLM: another cache of the same domain, prompts and contexts (``cache_path``; None = the
  domain's second bundled cache: mHealth by Gemma 3 270M). Its messages are scored on the first cache's
  style axes and standardisation, and read by the same outcome, working embedding and noise: only the
  generator changes.

A safety layer composes with the exogenous kinds: the same layer (thresholds fixed at deployment) checks
both generators' messages. ``info`` gains ``generator`` (0 = the deployed one served the message, 1 = the
new one), ``generator_weight`` (w(t), or for endogenous drift the rounds' count of tilts so far) and
``generator_changed`` (the generator serving this round differs from the last round's).

Example:
    >>> import gymnasium as gym, gambit_gym
    >>> env = gym.make("GeneratorMediated-v0", drift={"kind": "abrupt", "at": 2, "magnitude": 1.0})
    >>> _ = env.reset(seed=0)
    >>> [env.step(0)[4]["generator_changed"] for _ in range(4)]
    [False, False, True, False]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gambit_gym import streams
from gambit_gym.scenarios.base import Scenario, check_scale
from gambit_gym.scenarios.cached_llm import CachedLLMScenario, cached_load
from gambit_gym.scenarios.gaussian import GaussianScenario
from gambit_gym.validation import check_choice, check_float, check_int

KINDS = ("none", "abrupt", "gradual", "periodic", "endogenous")
_SCHEDULE_KEYS = {"none": (), "abrupt": ("at",), "gradual": ("at", "window"), "periodic": ("at", "period"),
                  "endogenous": ("at", "every", "learning_rate")}
_GAUSSIAN_KEYS = ("magnitude", "direction", "cov_scale", "seed")
_CACHED_KEYS = ("cache_path",)
#: The second bundled cache of each shipped domain (another generator of the same prompts and contexts).
SECOND_GENERATOR_CACHES = {"mhealth": "mhealth_gemma3.npz"}
DRIFT_STREAM = 13  # child of problem_seed: the seeded drift directions


@dataclass(frozen=True)
class DriftSchedule:
    """When and how much the new generator serves: :meth:`weight_at` is w(t) (0 for endogenous drift)."""

    kind: str
    at: int = 0
    window: int = 1
    period: int = 2
    weight: float = 1.0
    every: int = 50
    learning_rate: float = 0.5

    def weight_at(self, t: int) -> float:
        """w(t), the probability that round ``t`` (0-based) is served by the new generator.

        Example:
            >>> s = DriftSchedule("gradual", at=10, window=4)
            >>> [s.weight_at(t) for t in (9, 10, 12, 14, 20)]
            [0.0, 0.0, 0.5, 1.0, 1.0]
        """
        if self.kind == "endogenous" or t < self.at:
            return 0.0
        if self.kind == "abrupt":
            return self.weight
        if self.kind == "gradual":
            return self.weight * min((t - self.at) / self.window, 1.0)
        return self.weight * 0.5 * (1.0 - math.cos(2.0 * math.pi * (t - self.at) / self.period))

    def changed_at(self, t: int) -> bool:
        """Whether round ``t``'s generator differs from round ``t - 1``'s (exogenous kinds)."""
        return t > 0 and self.weight_at(t) != self.weight_at(t - 1)

    def tilt_due(self, t: int) -> bool:
        """Endogenous: whether the generator re-weights after round ``t``."""
        return self.kind == "endogenous" and t + 1 > self.at and (t + 1 - self.at) % self.every == 0


def parse_drift(spec: Any, variant: str) -> tuple[DriftSchedule, dict[str, Any]]:
    """Check the ``drift`` option; returns the schedule and the generator part (variant-specific keys)."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"drift: expected a dict with a 'kind' ({', '.join(KINDS)}), got {spec!r}")
    kind = check_choice("drift.kind", spec.get("kind"), KINDS)
    gaussian = variant in ("synthetic", "misspecified")
    if kind == "endogenous" and gaussian:
        raise ValueError(f"drift.kind: 'endogenous' drift is for the cached-llm variant (a generator re-weighting "
                         f"its own messages); the {variant} variant takes 'abrupt', 'gradual' or 'periodic'")
    allowed = ("kind",) if kind == "none" else (
        "kind", *_SCHEDULE_KEYS[kind], *(() if kind == "endogenous" else ("weight",)),
        *(_GAUSSIAN_KEYS if gaussian else () if kind == "endogenous" else _CACHED_KEYS))
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"drift: unknown key(s) {unknown} for kind {kind!r} in the {variant} variant; "
                         f"allowed: {list(allowed)}")
    required = {"abrupt": ("at",), "gradual": ("at", "window"), "periodic": ("period",)}.get(kind, ())
    missing = [k for k in required if k not in spec]
    if missing:
        raise ValueError(f"drift: kind {kind!r} needs {missing}")
    schedule = DriftSchedule(
        kind,
        at=check_int("drift.at", spec.get("at", 0), 0),
        window=check_int("drift.window", spec.get("window", 1), 1),
        period=check_int("drift.period", spec.get("period", 2), 2),
        weight=_check_weight(spec.get("weight", 1.0)),
        every=check_int("drift.every", spec.get("every", 50), 1),
        learning_rate=check_scale("drift.learning_rate", spec.get("learning_rate", 0.5)),
    )
    return schedule, {k: v for k, v in spec.items() if k in _GAUSSIAN_KEYS + _CACHED_KEYS}


def _check_weight(value: Any) -> float:
    weight = check_float("drift.weight", value, minimum=0.0, strict=True)
    if weight > 1.0:
        raise ValueError(f"drift.weight: the new generator's largest share of the messages, in (0, 1]; got {weight}")
    return weight


def _drifted_gaussian(before: GaussianScenario, generator: Mapping[str, Any]) -> GaussianScenario:
    tm = before.treatment_model
    C, K, p = tm.means.shape
    magnitude = check_scale("drift.magnitude", generator.get("magnitude", 1.0))
    cov_scale = check_float("drift.cov_scale", generator.get("cov_scale", 1.0), minimum=0.0, strict=True)
    direction = generator.get("direction")
    if direction is None:
        seed = check_int("drift.seed", generator.get("seed", before.options["problem_seed"]), 0)
        direction = streams.stream(seed, DRIFT_STREAM).standard_normal((C, K, p))
    else:
        if "seed" in generator:
            raise ValueError("drift.seed: seeds the drawn directions; give it or drift.direction, not both")
        direction = np.asarray(direction, dtype=np.float64)
        if direction.shape not in ((p,), (K, p), (C, K, p)) or not np.all(np.isfinite(direction)):
            raise ValueError(f"drift.direction: expected finite numbers shaped ({p},), ({K}, {p}) or "
                             f"({C}, {K}, {p}), got shape {direction.shape}")
        direction = np.broadcast_to(direction, (C, K, p))
    norms = np.linalg.norm(direction, axis=2, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("drift.direction: every cell's direction must be nonzero")
    shift = magnitude * before.treatment_scale * direction / norms
    return before.with_generator(tm.means + shift, tm.cov * cov_scale)


def _drifted_cached(before: CachedLLMScenario, generator: Mapping[str, Any]) -> CachedLLMScenario:
    path = generator.get("cache_path")
    if path is None:
        name = SECOND_GENERATOR_CACHES.get(before.domain.name)
        if name is None:
            raise ValueError(f"drift.cache_path: the {before.domain.name!r} domain ships no second generator's "
                             "cache; give the cache of another generator of the same prompts and contexts")
        path = Path(__file__).resolve().parent / "data" / name
    if not isinstance(path, (str, Path)):
        raise ValueError(f"drift.cache_path: expected a path to a treatment cache (.npz), got {path!r}")
    return before.with_generator(cached_load(path))


@dataclass
class GeneratorState:
    """Per-replication generator state of endogenous drift (``rows`` replications).

    ``weights`` ``(rows, n_messages)`` are the message probabilities within each cell (cell-sorted order),
    ``residuals`` the window's standardised reward residuals per message, ``expected`` ``(rows, C, K)``
    the exact expected rewards under the current weights, ``tilts`` how many re-weightings happened."""

    weights: np.ndarray
    residuals: np.ndarray
    expected: np.ndarray
    tilts: int = 0
    changed: bool = False


class DriftingScenario(Scenario):
    """A scenario whose generator changes with the round (see the module docstring).

    Static attributes (``expected_reward``, ``sample_treatments``, ...) are those of the generator as
    deployed; the environments step it through :meth:`play` and read the current oracle from
    :meth:`oracle`.

    Attributes:
        before: the deployed scenario; ``after``: the new generator's (None for endogenous drift);
        schedule: the :class:`DriftSchedule`.
    """

    def __init__(self, before: Scenario, after: Scenario | None, schedule: DriftSchedule) -> None:
        self.before, self.after, self.schedule = before, after, schedule
        self._share_instance(before)
        self.safety = before.safety
        self.expected_harm = before.expected_harm
        self._set_oracle(before.expected_reward)
        if schedule.kind == "endogenous":
            base = before
            if not isinstance(base, CachedLLMScenario):
                raise ValueError("drift.kind: 'endogenous' drift needs the cached-llm variant without a safety "
                                 "layer (the layer's exact oracle is for the deployed message weights)")
            C, P = base.contexts.n_contexts, len(base.cache.prompts)
            counts = base.cache.cell_counts().ravel()
            self._segment_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self._message_cell = np.repeat(np.arange(C * P), counts)
            self._uniform = 1.0 / counts[self._message_cell]
            self._n_prompts = P

    def __getattr__(self, name: str) -> Any:
        before = self.__dict__.get("before")
        if before is not None and not name.startswith("__"):
            return getattr(before, name)
        raise AttributeError(name)

    # -- the scenario contract (the generator as deployed) ---------------------------------------
    @property
    def embedding_dim(self) -> int:
        return self.before.embedding_dim

    def mean_embedding(self) -> np.ndarray:
        return self.before.mean_embedding()

    def generate(self, actions, contexts, rng):
        return self.before.generate(actions, contexts, rng)

    def draw_with_layer(self, actions, contexts, rng):
        return self.before.draw_with_layer(actions, contexts, rng)

    def sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.before.sample_treatments(action, context, n, rng)

    def raw_sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.before.raw_sample_treatments(action, context, n, rng)

    def describe(self) -> dict[str, Any]:
        out = self.before.describe()
        out["drift_kind"] = self.schedule.kind
        if self.after is not None and hasattr(self.after, "describe"):
            gen = self.after.describe().get("generator")
            if gen is not None:
                out["drift_generator"] = gen
        return out

    # -- the generator over time --------------------------------------------------------------------
    def initial_state(self, rows: int) -> GeneratorState | None:
        """The generator state of ``rows`` replications at deployment (None: it is the same for all)."""
        if self.schedule.kind != "endogenous":
            return None
        n = len(self._uniform)
        return GeneratorState(np.tile(self._uniform, (rows, 1)), np.zeros((rows, n)),
                              np.tile(self.before.expected_reward, (rows, 1, 1)))

    def oracle(self, t: int, state: GeneratorState | None = None, row: int | None = None) -> np.ndarray:
        """Exact expected rewards ``(C, K)`` of round ``t`` (for replication ``row`` under endogenous drift)."""
        if state is not None:
            return state.expected[0 if row is None else row].copy()
        w = self.schedule.weight_at(t)
        if w == 0.0:
            return self.before.expected_reward.copy()
        if w == 1.0:
            return self.after.expected_reward.copy()
        return (1.0 - w) * self.before.expected_reward + w * self.after.expected_reward

    def expected_harm_at(self, t: int) -> np.ndarray | None:
        """Exact mean delivered harm ``(C, K)`` of round ``t`` (None without a layer's harm)."""
        if self.before.expected_harm is None:
            return None
        w = self.schedule.weight_at(t)
        return (1.0 - w) * self.before.expected_harm + w * self.after.expected_harm

    def play(self, t: int, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator,
             state: GeneratorState | None, rows: np.ndarray) -> tuple[Any, ...]:
        """Round ``t`` for ``rows`` (replication indices): ``(treatment, working, reward, layer extras or None,
        expected, best, optimal action, drift info)``, the last four per row."""
        n = len(actions)
        if state is not None:
            return self._play_endogenous(t, actions, contexts, rng, state, rows)
        w = self.schedule.weight_at(t)
        if w == 0.0 or w == 1.0:  # one generator serves the round: its own oracle, computed once
            one = self.after if w == 1.0 else self.before
            served = np.full(n, int(w == 1.0))
            latent, z, reward, layer = one.draw_with_layer(actions, contexts, rng)
            expected, best, argbest = (one.expected_reward[contexts, actions], one.optimal_value[contexts],
                                       one.optimal_action[contexts])
        else:
            served = (rng.random(n) < w).astype(np.int64)
            latent, z, reward, layer = _merge(
                served, [s.draw_with_layer(actions[served == i], contexts[served == i], rng)
                         for i, s in enumerate((self.before, self.after))])
            mu = self.oracle(t)
            expected, best, argbest = mu[contexts, actions], mu.max(axis=1)[contexts], mu.argmax(axis=1)[contexts]
        info = {"generator": served, "generator_weight": np.full(n, w),
                "generator_changed": np.full(n, self.schedule.changed_at(t))}
        if layer is not None and self.before.expected_harm is not None:
            info["expected_harm"] = self.expected_harm_at(t)[contexts, actions]
        return latent, z, reward, layer, expected, best, argbest, info

    def _play_endogenous(self, t, actions, contexts, rng, state, rows):
        base: CachedLLMScenario = self.before
        n = len(actions)
        if state.tilts == 0:  # the deployed generator, drawn exactly as without drift
            latent, z, f, idx = base.generate(actions, contexts, rng)
        else:
            starts, counts = base.cell_starts[contexts, actions], base.cell_counts[contexts, actions]
            offsets = np.arange(int(counts.max()))
            idx_all = starts[:, None] + np.minimum(offsets, counts[:, None] - 1)
            p = np.where(offsets < counts[:, None], state.weights[rows[:, None], idx_all], 0.0)
            cum = np.cumsum(p, axis=1)
            u = rng.random(n) * cum[:, -1]
            j = np.minimum((cum <= u[:, None]).sum(axis=1), counts - 1)
            idx = starts + j
            latent, z, f = base.messages(idx)
        reward = f + self.noise_sd * rng.standard_normal(n)
        mu = state.expected[rows]  # (n, C, K): the generator that served this round
        expected = mu[np.arange(n), contexts, actions]
        scale = self.noise_sd if self.noise_sd > 0 else 1.0
        if t >= self.schedule.at:
            np.add.at(state.residuals, (rows, idx), (reward - expected) / scale)
        info = {"generator": np.zeros(n, dtype=np.int64), "generator_weight": np.full(n, float(state.tilts)),
                "generator_changed": np.full(n, state.changed)}
        return (latent, z, reward, None, expected, mu[np.arange(n), contexts].max(axis=1),
                mu[np.arange(n), contexts].argmax(axis=1), info)

    def end_round(self, t: int, state: GeneratorState | None) -> None:
        """After round ``t`` of every row: endogenous drift re-weights when due."""
        if state is None:
            return
        state.changed = False
        if not self.schedule.tilt_due(t):
            return
        lr = self.schedule.learning_rate
        with np.errstate(divide="ignore"):  # a message tilted to weight 0 stays at 0 (log -inf)
            logw = np.log(state.weights) + lr * state.residuals
        logw -= np.maximum.reduceat(logw, self._segment_starts, axis=1)[:, self._message_cell]
        w = np.exp(logw)
        w /= np.add.reduceat(w, self._segment_starts, axis=1)[:, self._message_cell]
        state.weights = w
        state.residuals[:] = 0.0
        base: CachedLLMScenario = self.before
        C, K = base.expected_reward.shape
        # cell means over every prompt's cell (segments in the cell-sorted order), then the action prompts
        base_f = base.message_rewards
        all_cells = np.add.reduceat(w * base_f, self._segment_starts, axis=1).reshape(-1, C, self._n_prompts)
        state.expected = all_cells[:, :, base.prompt_subset]
        state.tilts += 1
        state.changed = True

    def sample(self, action: int, context: int, n: int, rng: np.random.Generator, raw: bool, t: int,
               state: GeneratorState | None, row: int) -> np.ndarray:
        """Simulation access to the generator of round ``t`` (replication ``row`` under endogenous drift)."""
        action, context, n = self._check_cell(action, context, n)
        if state is not None:
            if state.tilts == 0:
                return self.before.sample_treatments(action, context, n, rng)
            base: CachedLLMScenario = self.before
            start, count = base.cell_starts[context, action], base.cell_counts[context, action]
            p = state.weights[row, start:start + count]
            j = rng.choice(count, size=n, p=p / p.sum())
            return base.messages(start + j)[1]
        w = self.schedule.weight_at(t)
        pick = (lambda s: s.raw_sample_treatments) if raw else (lambda s: s.sample_treatments)
        if w == 0.0 or w == 1.0:
            return pick(self.after if w == 1.0 else self.before)(action, context, n, rng)
        k = int((rng.random(n) < w).sum())
        parts = [pick(s)(action, context, m, rng) for s, m in ((self.before, n - k), (self.after, k)) if m]
        out = np.concatenate(parts)
        return out[rng.permutation(n)]


def _merge(served: np.ndarray, parts: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Rows drawn by two generators (``served`` says which) back in row order."""
    order = np.concatenate([np.flatnonzero(served == i) for i in range(len(parts))])
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))

    def join(arrays: list[np.ndarray]) -> np.ndarray:
        if any(a.dtype.kind in "UO" for a in arrays):
            arrays = [a.astype(object) for a in arrays]
        return np.concatenate(arrays)[inverse]

    latent, z, reward = (join([p[i] for p in parts]) for i in range(3))
    layers = [p[3] for p in parts]
    if layers[0] is None:
        return latent, z, reward, None
    return latent, z, reward, {key: join([lay[key] for lay in layers]) for key in layers[0]}


def apply_drift(scenario: Scenario, spec: Any) -> Scenario:
    """``scenario`` (possibly behind a safety layer) with the ``drift`` option ``spec``; None: unchanged."""
    if spec is None:
        return scenario
    schedule, generator = parse_drift(spec, scenario.variant)
    if schedule.kind == "none":  # a sweep's "no drift" entry: the same as drift=None
        return scenario
    raw = getattr(scenario, "inner", scenario)
    if schedule.kind == "endogenous":
        if raw is not scenario:
            raise ValueError("drift: 'endogenous' drift with a safety layer is not supported (the layer's exact "
                             "oracle is computed for the deployed message weights); use an exogenous kind")
        return DriftingScenario(scenario, None, schedule)
    if isinstance(raw, GaussianScenario):
        after_raw = _drifted_gaussian(raw, generator)
    elif isinstance(raw, CachedLLMScenario):
        after_raw = _drifted_cached(raw, generator)
    else:
        raise ValueError(f"drift: the {scenario.variant!r} variant has no drift")
    if raw is scenario:
        return DriftingScenario(scenario, after_raw, schedule)
    from gambit_gym.safety import SafeScenario

    # the same layer, its thresholds fixed at deployment, checks the new generator's messages
    return DriftingScenario(scenario, SafeScenario(after_raw, scenario.safety), schedule)
