"""Wrappers: record pseudo-regret whatever drives the environment; standardise rewards for a learner.

``RecordRegret`` reads ``info["regret"]`` after every step, so any loop that
calls ``step`` (a hand-written one, Stable-Baselines3's ``learn()`` through its
``DummyVecEnv``, ...) leaves a per-episode regret trace that converts to the
same :class:`agents.BanditResult`-shaped arrays as ``run_bandit``.

``StandardizeReward`` passes a learner ``(r - mean) / sd`` with the running
statistics of the rewards seen before, for learners tuned for unit-scale
rewards (Stable-Baselines3's defaults); :class:`RunningStandardizer` is the
same computation for R rows at once (``gambit_gym.sb3.SB3VecEnv`` uses it).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class RunningStandardizer:
    """``(r - mean) / sd`` per row, with the running mean and (population) sd of that row's earlier rewards.

    The first reward of a row is passed as 0 (nothing seen yet), the second as
    ``r - mean`` (one reward has no spread); the sd is floored at 1e-6. The
    statistics are Welford's, in float64, updated after each reward is scaled,
    so a scaled reward never uses its own value.

    Example:
        >>> std = RunningStandardizer(2)
        >>> std(np.array([80.0, 10.0])).tolist(), std(np.array([82.0, 12.0])).tolist()
        ([0.0, 0.0], [2.0, 2.0])
        >>> std(np.array([84.0, 8.0])).tolist()
        [3.0, -3.0]
    """

    def __init__(self, n_rows: int = 1) -> None:
        self.count = 0
        self.mean = np.zeros(n_rows)
        self.m2 = np.zeros(n_rows)

    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        r = np.asarray(rewards, dtype=np.float64)
        if r.shape != self.mean.shape:
            raise ValueError(f"rewards: expected shape {self.mean.shape}, got {r.shape}")
        if self.count == 0:
            scaled = np.zeros_like(r)
        else:
            sd = np.sqrt(self.m2 / self.count) if self.count > 1 else np.ones_like(r)
            scaled = (r - self.mean) / np.maximum(sd, 1e-6)
        self.count += 1
        delta = r - self.mean
        self.mean = self.mean + delta / self.count
        self.m2 = self.m2 + delta * (r - self.mean)
        return scaled


class StandardizeReward(gym.Wrapper):
    """Pass the learner ``(r - mean) / sd`` with the running mean and sd of the rewards seen before.

    The first reward is passed as 0 (nothing seen yet); the sd is floored at 1e-6.
    The statistics run across episodes (they describe the environment, not an
    episode) and use no oracle knowledge; ``info`` (with the pseudo-regret) is
    untouched, so a :class:`RecordRegret` inside or outside records the same.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = StandardizeReward(gym.make("GeneratorMediated-v0"))
        >>> _ = env.reset(seed=0)
        >>> env.step(0)[1]
        0.0
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.standardizer = RunningStandardizer(1)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        scaled = float(self.standardizer(np.array([float(reward)]))[0])
        return obs, scaled, terminated, truncated, info


class RecordRegret(gym.Wrapper):
    """Keep the pseudo-regret of every step, grouped by episode.

    Attributes:
        episodes: finished episodes, each a float array of per-step regret.
        current: the per-step regret of the episode in progress.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = RecordRegret(gym.make("GeneratorMediated-v0", max_episode_steps=5))
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
