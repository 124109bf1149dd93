"""R generator-mediated bandits stepped at once with array operations.

This is the batched form used by ``gym.make_vec(..., vectorization_mode=
"vector_entry_point")`` and by :func:`agents.run_bandit`. Every sub-environment
shares the problem instance and runs on one random stream, so a seed fixes the
whole batch; there is no Python loop over sub-environments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gambit_gym import streams
from gambit_gym.env import ScenarioAccess
from gambit_gym.scenarios import Scenario, make_scenario
from gambit_gym.validation import check_int


class GeneratorMediatedVectorEnv(ScenarioAccess, VectorEnv):
    """``num_envs`` independent copies of :class:`~gambit_gym.env.GeneratorMediatedEnv`.

    Spaces, rewards and info keys are those of the single environment, batched
    along a leading axis of length ``num_envs`` (``info["treatment_embedding"]``
    has shape ``(num_envs, d)``; ``info["context"]`` maps each factor to an
    array of levels). Each info key ``k`` comes with the Gymnasium mask
    ``info["_k"]`` (all ``True``: every sub-environment reports every key).

    Autoreset: ``AutoresetMode.NEXT_STEP`` (Gymnasium's default). All
    sub-environments start together and truncate together after ``horizon``
    steps; the ``step`` after that resets them (its actions are ignored, its
    rewards are 0 and its info holds only the new contexts).

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> venv = gym.make_vec("GeneratorMediated-v0", num_envs=8, vectorization_mode="vector_entry_point")
        >>> obs, info = venv.reset(seed=0)
        >>> obs, rewards, terminated, truncated, info = venv.step(venv.action_space.sample())
        >>> obs.shape, info["regret"].shape
        ((8, 7), (8,))
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, variant: str = "synthetic", horizon: int = 1000, **options: Any):
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.scenario: Scenario = make_scenario(variant, **options)
        self.horizon = check_int("horizon", horizon, 1)
        s = self.scenario
        self.contexts = s.contexts
        self.single_action_space = spaces.Discrete(s.n_actions)
        self.single_observation_space = spaces.Box(0.0, 1.0, (s.contexts.feature_dim,), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.render_mode = None
        self._rng = np.random.default_rng()
        self._sim_rng = np.random.default_rng()
        self._contexts = np.zeros(self.num_envs, dtype=np.int64)
        self._t = 0
        self._needs_reset = True
        self._mask = np.ones(self.num_envs, dtype=bool)
        self._mask.setflags(write=False)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            seed = check_int("seed", seed, 0)
            self._rng = np.random.default_rng(seed)
            self._sim_rng = streams.stream(seed, streams.SIMULATION)
        self._t = 0
        self._needs_reset = False
        self._contexts = self.contexts.sample(self._rng, self.num_envs)
        return self.contexts.features[self._contexts].copy(), self._context_info()

    @property
    def np_random(self) -> np.random.Generator:  # the one stream all sub-environments share
        return self._rng

    def step(self, actions: Any):
        if self._needs_reset:
            obs, info = self.reset()
            zeros = np.zeros(self.num_envs, dtype=bool)
            return obs, np.zeros(self.num_envs), zeros, zeros.copy(), info
        acts = self._check_actions(actions)
        s = self.scenario
        ctx = self._contexts
        latent, z, rewards = s.draw(acts, ctx, self._rng)
        self._t += 1
        expected = s.expected_reward[ctx, acts]
        best = s.optimal_value[ctx]
        played = {
            "treatment": latent,
            "treatment_embedding": z,
            "expected_reward": expected,
            "optimal_action": s.optimal_action[ctx],
            "optimal_expected_reward": best,
            "regret": best - expected,
            "played_context": ctx,
        }
        truncated = self._t >= self.horizon
        self._needs_reset = truncated
        self._contexts = self.contexts.sample(self._rng, self.num_envs)
        info = self._context_info()
        for key, value in played.items():
            info[key] = value
            info["_" + key] = self._mask
        obs = self.contexts.features[self._contexts].copy()
        return (
            obs,
            rewards,
            np.zeros(self.num_envs, dtype=bool),
            np.full(self.num_envs, truncated),
            info,
        )

    def _check_actions(self, actions: Any) -> np.ndarray:
        acts = np.asarray(actions)
        K = self.scenario.n_actions
        if acts.shape != (self.num_envs,) or not np.issubdtype(acts.dtype, np.integer):
            raise ValueError(
                f"actions: expected an integer array of shape ({self.num_envs},) with values in "
                f"[0, {K - 1}], got {acts.dtype} array of shape {acts.shape}"
            )
        if acts.min() < 0 or acts.max() >= K:
            bad = acts[(acts < 0) | (acts >= K)]
            raise ValueError(f"actions: expected values in [0, {K - 1}], got {bad[:5].tolist()}")
        return acts

    def _context_info(self) -> dict[str, Any]:
        return {
            "context": self.contexts.describe(self._contexts),
            "_context": self._mask,
            "context_index": self._contexts.copy(),
            "_context_index": self._mask,
        }
