"""Wrappers: record pseudo-regret whatever drives the environment.

``RecordRegret`` reads ``info["regret"]`` after every step, so any loop that
calls ``step`` (a hand-written one, Stable-Baselines3's ``learn()`` through its
``DummyVecEnv``, ...) leaves a per-episode regret trace that converts to the
same :class:`agents.BanditResult`-shaped arrays as ``run_bandit``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class RecordRegret(gym.Wrapper):
    """Keep the pseudo-regret of every step, grouped by episode.

    Attributes:
        episodes: finished episodes, each a float array of per-step regret.
        current: the per-step regret of the episode in progress.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = RecordRegret(gym.make("GeneratorMediated-v0", horizon=5))
        >>> _ = env.reset(seed=0)
        >>> for _ in range(5):
        ...     _ = env.step(0)
        >>> env.cumulative_regret().shape
        (1, 5)
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episodes: list[np.ndarray] = []
        self.current: list[float] = []

    def reset(self, **kwargs: Any):
        if self.current:
            self.episodes.append(np.asarray(self.current, dtype=np.float64))
            self.current = []
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "regret" not in info:
            raise KeyError(
                "RecordRegret: the wrapped environment's info has no 'regret' key; wrap a GeneratorMediated-v0 "
                f"environment (got info keys {sorted(info)})"
            )
        self.current.append(float(info["regret"]))
        if terminated or truncated:
            self.episodes.append(np.asarray(self.current, dtype=np.float64))
            self.current = []
        return obs, reward, terminated, truncated, info

    def cumulative_regret(self, horizon: int | None = None, include_current: bool = False) -> np.ndarray:
        """Cumulative regret per episode, ``(n_episodes, horizon)``.

        ``horizon`` defaults to the shortest recorded episode; longer episodes are cut to it.
        """
        runs = list(self.episodes) + ([np.asarray(self.current)] if include_current and self.current else [])
        if not runs:
            raise ValueError("RecordRegret: no episode recorded yet")
        length = min(len(r) for r in runs) if horizon is None else int(horizon)
        if any(len(r) < length for r in runs):
            raise ValueError(f"horizon: {length} is longer than a recorded episode ({min(len(r) for r in runs)})")
        return np.cumsum(np.stack([r[:length] for r in runs]), axis=1)
