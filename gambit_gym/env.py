"""The generator-mediated bandit as a single Gymnasium environment.

The round itself lives in :class:`gambit_gym.scenarios.Scenario`, which is
batched; this class is its one-row view, and
:class:`gambit_gym.vector_env.GeneratorMediatedVectorEnv` is the many-row one.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gambit_gym import streams
from gambit_gym.drift import DriftingScenario, GeneratorState
from gambit_gym.scenarios import Scenario, make_scenario
from gambit_gym.validation import check_int

_FAST_INTS = (int, np.int64, np.int32)
_ROW0 = np.zeros(1, dtype=np.int64)
RENDER_MODES = ("ansi", "rgb_array")
#: The episode length ``gym.make`` and ``gym.make_vec`` use unless ``max_episode_steps`` is given.
DEFAULT_MAX_EPISODE_STEPS = 1000


def episode_length(max_episode_steps: int | None, horizon: int | None) -> int | None:
    """Rounds per episode from the two names of that one setting: ``horizon`` (the old name) wins if given.

    ``None`` means the environment itself never truncates (``gym.make`` wraps it in a ``TimeLimit``).
    """
    if horizon is not None:
        return check_int("horizon", horizon, 1)
    if max_episode_steps is None:
        return None
    return check_int("max_episode_steps", max_episode_steps, 1)


def check_render_mode(render_mode: Any) -> str | None:
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode: expected one of [None, 'ansi', 'rgb_array'], got {render_mode!r}")
    return render_mode


#: Colours of :func:`render_round`: background, a prompt's bar, the best prompt's bar, the played
#: prompt's bar, the realised reward's tick and the marker under the played prompt.
_BACKGROUND, _BAR, _BEST, _PLAYED, _INK = (255, 255, 255), (170, 170, 170), (60, 160, 60), (230, 120, 30), (0, 0, 0)
_BAR_WIDTH, _GAP, _PAD, _HEIGHT = 12, 4, 6, 96


def render_round(expected: np.ndarray, action: int | None = None, reward: float | None = None) -> np.ndarray:
    """An RGB picture of one round, ``(96, 16 K + 8, 3)`` uint8, drawn with numpy alone.

    One bar per prompt, as tall as its exact expected reward mu(a, x) in the round's
    context (scaled to the context's range of mu); the best prompt's bar is green.
    With ``action`` the played prompt's bar is orange (green if it was the best) and
    marked underneath, and ``reward`` is a black tick at the realised reward's height
    (clipped to the picture).

    Example:
        >>> render_round(np.array([1.0, 3.0, 2.0]), action=2, reward=2.5).shape
        (96, 56, 3)
    """
    mu = np.asarray(expected, dtype=np.float64)
    K = len(mu)
    lo, hi = float(mu.min()), float(mu.max())
    margin = 0.25 * (hi - lo) if hi > lo else 1.0
    lo, hi = lo - margin, hi + margin
    plot = _HEIGHT - 2 * _PAD  # rows between the top margin and the marker strip

    def level(value: float) -> int:
        return int(round(np.clip((value - lo) / (hi - lo), 0.0, 1.0) * plot))

    image = np.empty((_HEIGHT, 2 * _PAD - _GAP + K * (_BAR_WIDTH + _GAP), 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    best = int(mu.argmax())
    bottom = _HEIGHT - _PAD
    for a in range(K):
        left = _PAD + a * (_BAR_WIDTH + _GAP)
        colour = _BEST if a == best else (_PLAYED if a == action else _BAR)
        image[bottom - level(mu[a]) : bottom, left : left + _BAR_WIDTH] = colour
        if a == action:
            image[bottom + 2 : _HEIGHT - 1, left : left + _BAR_WIDTH] = _PLAYED if a != best else _BEST
            if reward is not None and math.isfinite(reward):
                row = min(bottom - level(reward), bottom - 1)
                image[max(row - 1, 0) : row + 1, left - 2 : left + _BAR_WIDTH + 2] = _INK
    return image


def check_action(action: Any, n_actions: int) -> int:
    """An action must be an integer in [0, n_actions): nothing is clipped or cast from float."""
    if type(action) in _FAST_INTS and 0 <= action < n_actions:  # the common case, cheaply
        return int(action)
    if isinstance(action, np.ndarray) and action.shape == (1,):
        action = action[0]
    if isinstance(action, np.ndarray) and action.ndim == 0:
        action = action[()]
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, numbers.Integral):
        raise TypeError(
            f"action: expected an integer in [0, {n_actions - 1}], got {action!r} ({type(action).__name__})"
        )
    if not 0 <= action < n_actions:
        raise ValueError(f"action: expected an integer in [0, {n_actions - 1}], got {action}")
    return int(action)


class ScenarioAccess:
    """Simulation access and the oracle, shared by the single and the vector environment."""

    scenario: Scenario
    _sim_rng: np.random.Generator
    _t: int
    #: per replication, how many treatments simulation access drew from the current generator
    #: (``sample_treatments(..., current=True)``) since the last reset
    current_queries: np.ndarray
    _generator_state: GeneratorState | None = None

    @property
    def _n_replications(self) -> int:
        return getattr(self, "num_envs", 1)

    def _replication(self, replication: Any) -> int:
        n = self._n_replications
        if replication is None:
            if n == 1:
                return 0
            raise ValueError(f"replication: the current generator of a vector environment is queried for one "
                             f"replication (its generator state can be its own): give an integer in [0, {n - 1}]")
        return check_int("replication", replication, 0, n - 1)

    def _start_generator(self) -> None:
        """At reset: the generator as deployed, no current-generator queries yet."""
        self.current_queries = np.zeros(self._n_replications, dtype=np.int64)
        s = self.scenario
        self._generator_state = s.initial_state(self._n_replications) if isinstance(s, DriftingScenario) else None

    def sample_treatments(
        self, action: int, context: int, n: int, rng: np.random.Generator | None = None, raw: bool = False,
        current: bool = False, replication: int | None = None,
    ) -> np.ndarray:
        """``n`` working embeddings for (action, context index), shape ``(n, d)``.

        Uses ``rng`` if given, else the env's simulation stream (seeded by
        ``reset(seed=...)``); the episode's own stream is never touched. With a
        safety layer the draws go through it (what would be delivered: fallback or
        null embeddings included) unless ``raw=True`` (the generator before the layer).

        Under drift (the ``drift`` option) the draws come from the generator as it was at deployment
        (what an offline bank built before launch holds), or with ``current=True`` as it is at the
        current round, for replication ``replication`` (required in a vector environment: under
        endogenous drift each replication's generator is its own). Current draws are counted in
        :attr:`current_queries`, so agents can be compared on their simulation budget.
        """
        rng = self._sim_rng if rng is None else rng
        if current not in (True, False):
            raise TypeError(f"current: expected True or False, got {current!r}")
        s = self.scenario
        if current:
            row = self._replication(replication)
            if isinstance(s, DriftingScenario):
                out = s.sample(action, context, n, rng, raw, self._t, self._generator_state, row)
            else:
                out = self.sample_treatments(action, context, n, rng, raw)
            self.current_queries[row] += len(out)
            return out
        if replication is not None:
            self._replication(replication)  # checked; the deployed generator is the same for all
        if raw:
            return s.raw_sample_treatments(action, context, n, rng)
        return s.sample_treatments(action, context, n, rng)

    def raw_sample_treatments(
        self, action: int, context: int, n: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Simulation access before any safety layer: ``sample_treatments(..., raw=True)``."""
        return self.sample_treatments(action, context, n, rng, raw=True)

    def _oracle(self, replication: int | None = None) -> np.ndarray:
        """The exact expected rewards ``(C, K)`` of the current round (read-only without drift)."""
        s = self.scenario
        if not isinstance(s, DriftingScenario):
            return s.expected_reward
        state = self._generator_state
        row = self._replication(replication) if state is not None else None
        return s.oracle(self._t, state, row)

    def expected_harms(self, context: int | np.ndarray, replication: int | None = None) -> np.ndarray:
        """Exact mean harm of the delivered treatment for every action, shaped like :meth:`expected_rewards`.

        Zeros without a safety layer or without its ``harm`` definition; under drift, the current round's.
        """
        rewards = self.expected_rewards(context, replication)  # checks the context index (or indices)
        s = self.scenario
        harm = s.expected_harm_at(self._t) if isinstance(s, DriftingScenario) else s.expected_harm
        return np.zeros_like(rewards) if harm is None else harm[np.asarray(context)].copy()

    def expected_rewards(self, context: int | np.ndarray, replication: int | None = None) -> np.ndarray:
        """Exact mu(a, x) for every action: ``(K,)`` for one context index, ``(n, K)`` for an array.

        Under drift these are the current round's (of replication ``replication`` under endogenous drift).
        """
        n_contexts = self.scenario.contexts.n_contexts
        oracle = self._oracle(replication)
        if np.ndim(context) == 0:
            return oracle[check_int("context", context, 0, n_contexts - 1)].copy()
        ctx = np.asarray(context)
        if not np.issubdtype(ctx.dtype, np.integer) or ctx.min() < 0 or ctx.max() >= n_contexts:
            raise ValueError(f"context: expected integer indices in [0, {n_contexts - 1}]")
        return oracle[ctx].copy()

    def generator_state(self, replication: int | None = None) -> dict[str, Any]:
        """The current round's generator, for analysis: ``round``, ``drift`` (the kind or None), ``weight``
        (the new generator's share w(t)), and under endogenous drift ``tilts`` and ``message_weights`` (the
        probabilities of the cell-sorted messages, of replication ``replication``)."""
        s = self.scenario
        if not isinstance(s, DriftingScenario):
            return {"round": self._t, "drift": None, "weight": 0.0}
        out = {"round": self._t, "drift": s.schedule.kind, "weight": s.schedule.weight_at(self._t)}
        state = self._generator_state
        if state is not None:
            out["tilts"] = state.tilts
            out["message_weights"] = state.weights[self._replication(replication)].copy()
        return out

    @property
    def embedding_dim(self) -> int:
        """d, the length of ``info["treatment_embedding"]``."""
        return self.scenario.embedding_dim

    @property
    def embedding_r2(self) -> float:
        """How well a linear model on E[Z | a, x] and context explains mu (1.0 = fully)."""
        return self.scenario.embedding_r2


class GeneratorMediatedEnv(ScenarioAccess, gym.Env):
    """A contextual bandit whose actions act on the reward only through a generated treatment.

    ## Description
    Each round a context X_t is drawn, the agent picks a prompt A_t, a
    generator produces a treatment G_t ~ P(G | A_t, X_t), the agent sees its
    working embedding Z_t = h(G_t), and the reward is
    Y_t = f(Z*_t, X_t) + eps_t with eps_t ~ N(0, sigma_Y^2), where Z*_t is the
    part of G_t the outcome depends on. The treatment's randomness makes a
    prompt's reward noisier than its outcome noise alone; an agent that models
    the embedding can learn from it (GAMBITTS). Three variants compose the
    round differently: "synthetic" (Gaussian Z*, the agent sees Z = Z*),
    "misspecified" (the agent sees a lossy view of Z*) and "cached-llm" (real
    LLM messages replayed from a treatment cache, scored on style dimensions).

    ## Action Space
    ``Discrete(n_actions)``: the index of the prompt.

    ## Observation Space
    ``Box(0, 1, (n_context_features,), float32)``: the context of the coming
    round, one one-hot block per context factor (default: location in
    {home, work, other} then previous-day steps in 4 buckets, 7 features,
    12 contexts).

    ## Rewards
    A Python ``float``: the outcome Y_t (default scale ~80, sqrt daily steps),
    with outcome noise sd sigma_Y set by ``noise_level`` or ``reward_noise_sd``.

    ## Starting State
    ``reset`` draws the first context uniformly. There is no other state: the
    rounds are independent given the problem instance (treatment means,
    outcome weights), which the options fix (``problem_seed``), never the
    episode seed.

    ## Episode End
    ``terminated`` is always ``False``; ``truncated`` becomes ``True`` after
    ``max_episode_steps`` steps: 1000 unless given, and ``env.spec.max_episode_steps``
    says how many. ``gym.make`` applies it as Gymnasium's ``TimeLimit`` wrapper
    (``max_episode_steps=-1``: no limit), ``gym.make_vec`` passes it to every mode.
    ``horizon`` is its old name, still accepted: it gives the same episodes up to
    ``max_episode_steps``, but through ``gym.make`` it cannot lengthen them past it
    (the ``TimeLimit`` ends them first), so it warns; pass ``max_episode_steps``.
    Constructed directly, the class truncates only if given either.

    ## Rendering
    ``render_mode="ansi"``: a one-line text summary of the last round.
    ``render_mode="rgb_array"``: a ``(96, 16 K + 8, 3)`` uint8 picture of it, one bar
    per prompt at its exact expected reward in that round's context, the best
    prompt's bar green, the played one orange and marked, the realised reward a
    black tick (see :func:`render_round`); Stable-Baselines3 asks for this mode.

    ## Info
    ``reset`` and ``step`` return, for the coming round:

    * ``context``: ``{factor: level}``, the context in words;
    * ``context_index``: its index in ``0 .. n_contexts - 1``.

    ``step`` adds, for the round just played:

    * ``treatment``: the raw treatment, the latent vector Z* (shape ``(p,)``)
      for "synthetic" and "misspecified", the message text for "cached-llm";
    * ``treatment_embedding``: the working embedding Z, shape ``(d,)``;
    * ``expected_reward``: mu(A_t, X_t), the exact expected reward of the action;
    * ``optimal_action``: argmax_a mu(a, X_t);
    * ``optimal_expected_reward``: max_a mu(a, X_t);
    * ``regret``: the pseudo-regret max_a mu(a, X_t) - mu(A_t, X_t), >= 0 and
      exactly 0 for an optimal action;
    * ``played_context``: the context index of that round.

    With a safety layer (the ``safety`` option, :mod:`gambit_gym.safety`) ``step`` adds
    ``delivered`` (False when nothing was sent), ``attempts`` (generations tried),
    ``filtered`` (some attempt was rejected), ``fallback`` (the fallback message went out),
    ``raw_treatment`` (the last generated treatment; ``treatment`` is the delivered one),
    ``harm`` (the delivered treatment's harm score) and ``expected_harm`` (its exact mean
    for the action); ``expected_reward`` and ``regret`` are exact for the delivered distribution.

    With generator drift (the ``drift`` option, :mod:`gambit_gym.drift`) ``step`` adds
    ``generator`` (0: the deployed generator served the message, 1: the new one),
    ``generator_weight`` (the new generator's share w(t); under endogenous drift, the tilts so
    far) and ``generator_changed`` (this round's generator differs from the last round's);
    ``expected_reward``, ``optimal_action`` and ``regret`` are those of the current round.
    ``generator_state()`` describes the round's generator for analysis.

    ## Simulation access and oracle
    ``sample_treatments(action, context, n, rng=None)`` draws ``n`` working
    embeddings from the generator without touching the episode's random
    stream (under drift: as deployed, or with ``current=True, replication=r`` as it is now,
    counted in ``current_queries``); ``expected_rewards(context)`` returns mu(a, x) for every a,
    exactly (the current round's);
    ``embedding_r2`` says how well a linear model on E[Z | a, x] and the
    context explains mu.

    ## Arguments
    Keyword arguments of ``gym.make("GeneratorMediated-v0", ...)``: the
    environment's own (where: env) and those of each variant (where: S =
    "synthetic", M = "misspecified", C = "cached-llm"). An option the chosen
    variant does not take is an error that names it. In words, with p the
    dimension of Z*, d that of Z, K the number of prompts and C of contexts:

        ==================  =====  ==========================  ===========  ============================================
        argument            where  type                        default      meaning
        ==================  =====  ==========================  ===========  ============================================
        variant             env    str                         "synthetic"  "synthetic", "misspecified" or "cached-llm":
                                                                            the scenario (options below)
        max_episode_steps   env    int | None                  None         rounds per episode, then truncated: gym.make
                                                                            and gym.make_vec use 1000 (the registered
                                                                            value, env.spec.max_episode_steps) unless
                                                                            given; None (the class constructed directly)
                                                                            = no limit
        horizon             env    int | None                  None         the old name of max_episode_steps, still
                                                                            accepted (it wins if both are given);
                                                                            through gym.make it cannot lengthen an
                                                                            episode past max_episode_steps, so it warns
        render_mode         env    str | None                  None         None, "ansi" (a one-line text summary of the
                                                                            last round) or "rgb_array" (a bar chart of
                                                                            it, (96, 16 K + 8, 3) uint8); the vector
                                                                            environment renders one frame per
                                                                            sub-environment
        num_envs            env    int                         1            gym.make_vec only: how many sub-environments
                                                                            step together
        seeding             env    str                         "shared"     the vector entry point only: "shared" (one
                                                                            random stream for the batch, fastest) or
                                                                            "per-env" (one per sub-environment, seeded
                                                                            as SyncVectorEnv seeds them: the "sync"
                                                                            mode's numbers)
        n_actions           S M    int                         5            K, the number of prompts (actions)
        contexts            S M    ContextSpace | list | None  None         context factors: a ContextSpace or [(factor,
                                                                            [level, ...]), ...]; None = the mHealth
                                                                            location x previous-day steps (12 contexts)
        problem_seed        S M    int                         0            seed of the drawn parts of the problem
                                                                            instance (treatment means, outcome, context
                                                                            effects, projection); never the episode seed
        treatment_means     S M    array | None                None         treatment means m, (K, p) (the same in every
                                                                            context) or (C, K, p); None = drawn: a
                                                                            prompt mean with sd treatment_spread plus a
                                                                            context shift with sd context_shift
        treatment_cov       S M    array | None                None         treatment covariance Sigma (p, p), symmetric
                                                                            positive definite; None =
                                                                            treatment_noise_sd^2 I
        treatment_spread    S M    float                       1.0          sd of the drawn prompt means
        treatment_noise_sd  S M    float                       1.0          sd of a treatment around its mean when
                                                                            treatment_cov is None
        context_shift       S M    float                       0.2          sd of the drawn per-context shift of the
                                                                            prompt means
        outcome             S M    str                         "linear"     "linear" or "mlp" (one hidden ReLU layer):
                                                                            the outcome f(Z*, x)
        intercept           S M    float                       80.0         the outcome's intercept (the scale of sqrt
                                                                            daily steps)
        coefficients        S M    array | None                None         weights (p,) of the "linear" outcome; None =
                                                                            a random direction of norm effect_size
        effect_size         S M    float                       1.0          norm of the drawn linear weights; "mlp" is
                                                                            scaled so its expected rewards spread alike
        active_dims         S M    int | None                  None         the drawn "linear" weights are nonzero on
                                                                            the first active_dims coordinates of Z* only
                                                                            (a reward on a sparse set of directions of a
                                                                            large embedding); None = all
        context_effect_sd   S M    float                       0.5          sd of the additive reward effect of each
                                                                            context-factor level
        hidden_units        S M    int                         64           hidden units of the "mlp" outcome
        noise_level         S M C  int | None                  None         outcome noise level 0..4 (None = 0): its sd
                                                                            is evenly spaced from the treatment scale
                                                                            (level 0) to field_noise_sd (level 4), as in
                                                                            the paper; give this or reward_noise_sd
        reward_noise_sd     S M C  float | None                None         outcome noise sd sigma_Y >= 0, set directly
        field_noise_sd      S M    float                       24.5712      the sd of noise level 4 (the field noise of
                                                                            the paper's 3-D linear outcome model)
        safety              S M C  dict | None                 None         a safety layer between generation and
                                                                            delivery (gambit_gym.safety): "checks"
                                                                            (threshold, logistic, random, pattern) on
                                                                            the generated treatment, "attempts",
                                                                            "on_reject" ("fallback", "withhold",
                                                                            "resample"), "fallback",
                                                                            "no_message_reward", "harm"; None = every
                                                                            treatment is delivered
        drift               S M C  dict | None                 None         generator drift during deployment
                                                                            (gambit_gym.drift): "kind" ("none",
                                                                            "abrupt", "gradual", "periodic";
                                                                            "endogenous" for cached-llm), "at",
                                                                            "window", "period", "weight"; the new
                                                                            generator: "magnitude", "direction",
                                                                            "cov_scale", "seed" (synthetic,
                                                                            misspecified) or "cache_path" (cached-llm;
                                                                            None = the domain's second bundled cache);
                                                                            endogenous: "every", "learning_rate"; None =
                                                                            one generator throughout
        embedding_dim       S      int                         3            p = d: the dimension of Z* and of the
                                                                            working embedding Z = Z*
        latent_dim          M      int                         3            p, the dimension of the latent treatment Z*
                                                                            the reward depends on
        view                M      str                         "subset"     "subset" (the coordinates observed_dims of
                                                                            Z*) or "projection" (a random orthonormal
                                                                            projection of Z*, drawn from problem_seed):
                                                                            what the agent sees
        observed_dims       M      int | list[int]             (0,)         view="subset": the distinct coordinates of
                                                                            Z* seen
        embedding_dim       M      int | None                  None         view="projection": d, the projection's
                                                                            dimension (None = 1); must be None with
                                                                            "subset"
        embedding_noise_sd  M      float                       0.0          sd of Gaussian noise added to the view
        cache_path          C      str | Path | None           None         the treatment cache (.npz) of any domain;
                                                                            None = the cache the domain file declares
                                                                            (default: the bundled mHealth
                                                                            SmolLM2-135M-Instruct cache, 40 prompts x 12
                                                                            contexts)
        domain              C      str | Path | None           None         a shipped domain's name ("mhealth",
                                                                            "study_nudges") or a domain file (.toml)
                                                                            that fits the cache: its outcome presets and
                                                                            calibrations; None = the domain the cache
                                                                            records (mHealth for caches older than
                                                                            domain files)
        outcome             C      str | dict | None           None         an outcome preset of the domain (mHealth:
                                                                            "linear-3d", "linear-1d",
                                                                            "linear-3d-context", "mlp") or a model on
                                                                            the style scores, a dict with the keys of a
                                                                            domain file's [outcomes] table
                                                                            ("dimensions", "coefficients", "intercept",
                                                                            "field_noise_sd"; or "type": "mlp" with
                                                                            "spread_like" or "spread"); None = the
                                                                            domain's default_outcome (mHealth:
                                                                            "linear-3d")
        calibration         C      str | None                  None         a calibration the domain declares (mHealth:
                                                                            "paper", the style scores at the paper's
                                                                            spread and its five noise levels 0.70978 ...
                                                                            24.57119); None = style scores standardised
                                                                            to sd 1 and noise levels from the treatment
                                                                            scale to field_noise_sd
        n_actions           C      int | None                  5            K: that many of the cache's prompts, their
                                                                            expected rewards spread evenly over their
                                                                            range; None = all
        prompts             C      list[str] | None            None         the prompts to use as actions, by id
                                                                            (instead of n_actions)
        working_embedding   C      str | list[str] | None      None         what the agent sees: style dimension names,
                                                                            "pca:k" (the first k principal components of
                                                                            the sentence embedding) or "full" (all of
                                                                            it); None = the outcome's style dimensions
        field_noise_sd      C      float | None                None         the sd of noise level 4; None = the
                                                                            outcome's field_noise_sd
        problem_seed        C      int                         0            seed of an "mlp" outcome's weights
        ==================  =====  ==========================  ===========  ============================================

    ## Version History
    * v0 (gambit-gym 0.1.0): the initial version.
    * v0 (after 0.1.0): registered with ``max_episode_steps=1000``, so
      ``env.spec.max_episode_steps`` is 1000 and ``max_episode_steps=`` sets the
      episode length in ``gym.make`` and every ``gym.make_vec`` mode; the episode
      itself ends where it did (same numbers for the same seeds). ``horizon`` is the
      old name (through ``gym.make`` it warns). The class constructed directly no
      longer truncates unless given a length. ``render_mode="rgb_array"``. The
      vector environment takes per-environment seed lists, ``get_attr`` / ``call``
      / ``set_attr``, ``render_mode`` and ``seeding="per-env"``.
    * v0 (after 0.1.0): the ``safety`` option of every variant, a safety layer between
      generation and delivery (:mod:`gambit_gym.safety`), with the info keys ``delivered``,
      ``attempts``, ``filtered``, ``fallback``, ``raw_treatment``, ``harm`` and ``expected_harm``
      and ``sample_treatments(..., raw=True)``; without it (the default) nothing changes.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = gym.make("GeneratorMediated-v0", n_actions=4)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(0)
        >>> info["treatment_embedding"].shape, info["regret"] >= 0
        ((3,), True)
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        variant: str = "synthetic",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        *,
        horizon: int | None = None,
        **options: Any,
    ) -> None:
        self.scenario: Scenario = make_scenario(variant, **options)
        self.max_episode_steps = episode_length(max_episode_steps, horizon)
        if horizon is not None:
            warnings.warn(
                "GeneratorMediated-v0: horizon is the old name of max_episode_steps; pass max_episode_steps="
                f"{self.max_episode_steps} instead (through gym.make, horizon cannot make an episode longer than "
                "max_episode_steps, 1000 unless given, and env.spec.max_episode_steps reports only that)",
                DeprecationWarning,
                stacklevel=2,
            )
        self.render_mode = check_render_mode(render_mode)
        s = self.scenario
        self.contexts = s.contexts
        self.action_space = spaces.Discrete(s.n_actions)
        self.observation_space = spaces.Box(0.0, 1.0, (s.contexts.feature_dim,), dtype=np.float32)
        self._expected = s.expected_reward.tolist()
        self._best = s.optimal_value.tolist()
        self._argbest = s.optimal_action.tolist()
        self._t = 0
        self._start_generator()
        self._context = 0
        self._last: dict[str, Any] | None = None
        self._sim_rng = np.random.default_rng()

    @property
    def max_episode_steps(self) -> int | None:
        """Rounds per episode before truncation, or ``None``: the environment itself never truncates."""
        return self._max_episode_steps

    @max_episode_steps.setter
    def max_episode_steps(self, value: int | None) -> None:
        self._max_episode_steps = None if value is None else check_int("max_episode_steps", value, 1)
        self._limit = math.inf if value is None else self._max_episode_steps

    @property
    def horizon(self) -> int | None:
        """The old name of :attr:`max_episode_steps`."""
        return self._max_episode_steps

    # -- the round -------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            # Simulation access gets its own stream so it never disturbs the episode's.
            self._sim_rng = streams.stream(seed, streams.SIMULATION)
        self._t = 0
        self._last = None
        self._start_generator()
        self._context = int(self.contexts.sample(self.np_random))
        return self.contexts.features[self._context].copy(), self._context_info()

    def step(self, action: Any):
        a = check_action(action, self.scenario.n_actions)
        s = self.scenario
        c = self._context
        drift = None
        if isinstance(s, DriftingScenario):
            latent, z, reward, layer, mu, best, argbest, drift = s.play(
                self._t, np.array([a]), np.array([c]), self.np_random, self._generator_state, _ROW0)
            s.end_round(self._t, self._generator_state)
            mu, best, argbest = float(mu[0]), float(best[0]), int(argbest[0])
        else:
            latent, z, reward, layer = s.draw_with_layer(np.array([a]), np.array([c]), self.np_random)
            mu = self._expected[c][a]  # python floats: cheaper than numpy scalars on this path
            best, argbest = self._best[c], self._argbest[c]
        self._t += 1
        played = {
            "treatment": latent[0],
            "treatment_embedding": z[0],
            "expected_reward": mu,
            "optimal_action": argbest,
            "optimal_expected_reward": best,
            "regret": best - mu,
            "played_context": c,
        }
        if layer is not None:
            played.update({key: value[0].item() if key != "raw_treatment" else value[0]
                           for key, value in layer.items()})
            played["expected_harm"] = float(s.expected_harm[c, a])
        if drift is not None:
            played.update({key: value[0].item() for key, value in drift.items()})
        self._last = {"action": a, "reward": float(reward[0]), **played}
        self._context = int(self.contexts.sample(self.np_random))
        obs = self.contexts.features[self._context].copy()
        return obs, float(reward[0]), False, self._t >= self._limit, {**self._context_info(), **played}

    def _context_info(self) -> dict[str, Any]:
        return {"context": self.contexts.describe(self._context), "context_index": self._context}

    def render(self) -> str | np.ndarray | None:
        """The last round as text (``"ansi"``) or a picture (``"rgb_array"``); ``None`` without a render mode."""
        if self.render_mode == "rgb_array":
            last = self._last
            if last is None:  # nothing played yet: the coming round's prompts
                return render_round(self._expected[self._context])
            return render_round(self._expected[last["played_context"]], last["action"], last["reward"])
        if self.render_mode != "ansi":
            return None
        if self._last is None:
            return f"t={self._t} context={self.contexts.describe(self._context)}"
        last = self._last
        return (
            f"t={self._t} action={last['action']} reward={last['reward']:.3f} "
            f"expected={last['expected_reward']:.3f} regret={last['regret']:.3f}"
        )
