"""The generator-mediated bandit as a single Gymnasium environment.

The round itself lives in :class:`gambit_gym.scenarios.Scenario`, which is
batched; this class is its one-row view, and
:class:`gambit_gym.vector_env.GeneratorMediatedVectorEnv` is the many-row one.
"""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gambit_gym import streams
from gambit_gym.scenarios import Scenario, make_scenario
from gambit_gym.validation import check_int

_FAST_INTS = (int, np.int64, np.int32)


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

    def sample_treatments(
        self, action: int, context: int, n: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """``n`` working embeddings for (action, context index), shape ``(n, d)``.

        Uses ``rng`` if given, else the env's simulation stream (seeded by
        ``reset(seed=...)``); the episode's own stream is never touched.
        """
        return self.scenario.sample_treatments(action, context, n, self._sim_rng if rng is None else rng)

    def expected_rewards(self, context: int | np.ndarray) -> np.ndarray:
        """Exact mu(a, x) for every action: ``(K,)`` for one context index, ``(n, K)`` for an array."""
        n_contexts = self.scenario.contexts.n_contexts
        if np.ndim(context) == 0:
            return self.scenario.expected_reward[check_int("context", context, 0, n_contexts - 1)].copy()
        ctx = np.asarray(context)
        if not np.issubdtype(ctx.dtype, np.integer) or ctx.min() < 0 or ctx.max() >= n_contexts:
            raise ValueError(f"context: expected integer indices in [0, {n_contexts - 1}]")
        return self.scenario.expected_reward[ctx].copy()

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
    ``horizon`` steps.

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

    ## Simulation access and oracle
    ``sample_treatments(action, context, n, rng=None)`` draws ``n`` working
    embeddings from the generator without touching the episode's random
    stream; ``expected_rewards(context)`` returns mu(a, x) for every a, exactly;
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
        horizon             env    int                         1000         rounds per episode; the episode is truncated
                                                                            after them
        render_mode         env    str | None                  None         None or "ansi" (a one-line text summary);
                                                                            single environment only
        num_envs            env    int                         1            gym.make_vec only: how many sub-environments
                                                                            step together
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
        cache_path          C      str | Path | None           None         the treatment cache (.npz); None = the
                                                                            bundled SmolLM2-135M-Instruct cache (40
                                                                            prompts x 12 contexts)
        outcome             C      str                         "linear-3d"  "linear-3d", "linear-1d",
                                                                            "linear-3d-context" or "mlp": an outcome
                                                                            model of the paper on the message's style
                                                                            scores
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
                                                                            outcome's field noise sd
        problem_seed        C      int                         0            seed of the "mlp" outcome's weights
        ==================  =====  ==========================  ===========  ============================================

    ## Version History
    * v0: the initial version.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = gym.make("GeneratorMediated-v0", n_actions=4)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(0)
        >>> info["treatment_embedding"].shape, info["regret"] >= 0
        ((3,), True)
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self, variant: str = "synthetic", horizon: int = 1000, render_mode: str | None = None, **options: Any
    ) -> None:
        self.scenario: Scenario = make_scenario(variant, **options)
        self.horizon = check_int("horizon", horizon, 1)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode: expected one of [None, 'ansi'], got {render_mode!r}")
        self.render_mode = render_mode
        s = self.scenario
        self.contexts = s.contexts
        self.action_space = spaces.Discrete(s.n_actions)
        self.observation_space = spaces.Box(0.0, 1.0, (s.contexts.feature_dim,), dtype=np.float32)
        self._expected = s.expected_reward.tolist()
        self._best = s.optimal_value.tolist()
        self._argbest = s.optimal_action.tolist()
        self._t = 0
        self._context = 0
        self._last: dict[str, Any] | None = None
        self._sim_rng = np.random.default_rng()

    # -- the round -------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            # Simulation access gets its own stream so it never disturbs the episode's.
            self._sim_rng = streams.stream(seed, streams.SIMULATION)
        self._t = 0
        self._last = None
        self._context = int(self.contexts.sample(self.np_random))
        return self.contexts.features[self._context].copy(), self._context_info()

    def step(self, action: Any):
        a = check_action(action, self.scenario.n_actions)
        s = self.scenario
        c = self._context
        latent, z, reward = s.draw(np.array([a]), np.array([c]), self.np_random)
        self._t += 1
        mu = self._expected[c][a]  # python floats: cheaper than numpy scalars on this path
        best = self._best[c]
        played = {
            "treatment": latent[0],
            "treatment_embedding": z[0],
            "expected_reward": mu,
            "optimal_action": self._argbest[c],
            "optimal_expected_reward": best,
            "regret": best - mu,
            "played_context": c,
        }
        self._last = {"action": a, "reward": float(reward[0]), **played}
        self._context = int(self.contexts.sample(self.np_random))
        obs = self.contexts.features[self._context].copy()
        return obs, float(reward[0]), False, self._t >= self.horizon, {**self._context_info(), **played}

    def _context_info(self) -> dict[str, Any]:
        return {"context": self.contexts.describe(self._context), "context_index": self._context}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self._last is None:
            return f"t={self._t} context={self.contexts.describe(self._context)}"
        last = self._last
        return (
            f"t={self._t} action={last['action']} reward={last['reward']:.3f} "
            f"expected={last['expected_reward']:.3f} regret={last['regret']:.3f}"
        )
