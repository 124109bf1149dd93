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

from gambit_gym._validation import check_int
from gambit_gym.scenarios import Scenario, make_scenario

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

    Each round a context X_t is drawn, the agent picks a prompt A_t, the
    generator produces a treatment G_t ~ P(G | A_t, X_t), the agent sees its
    working embedding Z_t = h(G_t), and the reward is
    Y_t = f(Z*_t, X_t) + eps_t with eps_t ~ N(0, sigma_Y^2).

    ## Action Space
    ``Discrete(n_actions)``: the index of the prompt.

    ## Observation Space
    ``Box(0, 1, (n_context_features,), float32)``: the context of the coming
    round, one one-hot block per context factor (default: location in
    {home, work, other} then previous-day steps in 4 buckets, 7 features,
    12 contexts).

    ## Rewards
    A Python ``float``: the outcome Y_t (default scale ~80, sqrt daily steps).

    ## Episode End
    ``terminated`` is always ``False``; ``truncated`` becomes ``True`` after
    ``horizon`` steps.

    ## Info
    ``reset`` and ``step`` return ``context`` ({factor: level}) and
    ``context_index`` of the coming round. ``step`` adds, for the round just
    played: ``treatment`` (the raw treatment: the latent vector Z* for the
    synthetic variants, the message text for "cached-llm"), ``treatment_embedding`` (the working embedding Z,
    shape ``(d,)``), ``expected_reward`` mu(A_t, X_t), ``optimal_action``,
    ``optimal_expected_reward`` max_a mu(a, X_t) and ``regret``
    (pseudo-regret, >= 0, exactly 0 for an optimal action); ``played_context``
    is the context index of that round.

    ## Arguments
    ``variant``: "synthetic" (default), "misspecified" (see
    :mod:`gambit_gym.scenarios` for their options, e.g. ``n_actions``,
    ``embedding_dim``, ``outcome``, ``noise_level``, ``reward_noise_sd``,
    ``problem_seed``) or "cached-llm" (real LLM messages replayed from a
    treatment cache; see :func:`gambit_gym.cached.cached_llm`: ``cache_path``,
    ``outcome``, ``n_actions``, ``prompts``, ``working_embedding``,
    ``noise_level``). ``horizon``: steps per episode (1000).

    ## Simulation access and oracle
    ``sample_treatments(action, context, n, rng=None)`` draws ``n`` working
    embeddings from the generator without touching the episode's random
    stream; ``expected_rewards(context)`` returns mu(a, x) for every a, exactly.

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
            self._sim_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
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
