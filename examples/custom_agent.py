"""Your own agent, two ways, run through run_bandit beside the built-in ones.

1. ``EpsilonGreedy`` needs no base class: anything with ``from_env``, ``act``,
   ``update`` and ``reset`` is an agent (the ``agents.Agent`` protocol). It
   works on a single environment (``gym.make``: acts on one observation,
   returns an ``int``) and on a vector one (one row per sub-environment).
2. ``BatchedEpsilonGreedy`` subclasses ``agents.BatchedAgent``: write the
   batched hooks once and get ``from_env`` on single and vector environments,
   input checks, ``action_probabilities`` and ``save`` / ``load`` for free.

    python examples/custom_agent.py
"""

import gymnasium as gym
import numpy as np

from agents import BatchedAgent, PoGAMBITTS, StandardTS, run_bandit
from gambit_gym import ENV_ID


class EpsilonGreedy:
    """Per-arm running means; explores with probability epsilon. Needs no base class."""

    def __init__(self, n_actions: int, n_envs: int | None, epsilon: float, seed) -> None:
        self.rng, self.epsilon, self.n_envs = np.random.default_rng(seed), epsilon, n_envs
        self.shape = (n_envs or 1, n_actions)  # one row per sub-environment; one row for a single env
        self.reset()

    @classmethod
    def from_env(cls, env, seed=None, epsilon: float = 0.1):
        base = env.unwrapped  # past gym.make's wrappers (TimeLimit, OrderEnforcing, ...)
        if isinstance(base, gym.vector.VectorEnv):
            return cls(base.single_action_space.n, base.num_envs, epsilon, seed)
        return cls(base.action_space.n, None, epsilon, seed)

    def reset(self) -> None:
        self.counts, self.means = np.zeros(self.shape), np.zeros(self.shape)

    def act(self, obs):
        greedy = np.where(self.counts == 0, np.inf, self.means).argmax(axis=1)
        explore = self.rng.random(len(greedy)) < self.epsilon
        actions = np.where(explore, self.rng.integers(self.shape[1], size=len(greedy)), greedy)
        return actions if self.n_envs else int(actions[0])

    def update(self, obs, action, reward, info) -> None:
        rows, action = np.arange(self.shape[0]), np.reshape(action, -1)
        self.counts[rows, action] += 1
        self.means[rows, action] += (np.reshape(reward, -1) - self.means[rows, action]) / self.counts[rows, action]


class BatchedEpsilonGreedy(BatchedAgent):
    """The same policy as a BatchedAgent: hooks on R rows; the base class does the rest."""

    needs_contexts = False  # one mean per arm, whatever the context

    def __init__(self, n_actions: int, obs_dim: int, epsilon: float = 0.1, **base) -> None:
        self.epsilon = epsilon
        super().__init__(n_actions, obs_dim, **base)

    def _init_state(self) -> None:
        self.counts = np.zeros((self.n_rows, self.n_actions))
        self.means = np.zeros((self.n_rows, self.n_actions))

    def _sample_scores(self, ctx, x, rng):
        # Each action's score in one random draw; the agent plays the argmax: with probability
        # epsilon a uniform random score (a uniform action), else the running means (unplayed arms first).
        explore = rng.random(self.n_rows) < self.epsilon
        greedy = np.where(self.counts == 0, np.inf, self.means)
        return np.where(explore[:, None], rng.random((self.n_rows, self.n_actions)), greedy)

    def _update(self, ctx, x, a, y, z) -> None:
        self.counts[self._rows, a] += 1
        self.means[self._rows, a] += (y - self.means[self._rows, a]) / self.counts[self._rows, a]

    def _state(self):
        return {"counts": self.counts.copy(), "means": self.means.copy()}

    def _load_state(self, state) -> None:
        self.counts, self.means = state["counts"], state["means"]


if __name__ == "__main__":
    env = gym.make(ENV_ID)  # one environment: both agents act on one observation at a time
    for cls in (EpsilonGreedy, BatchedEpsilonGreedy):
        agent = cls.from_env(env, seed=0)
        obs, info = env.reset(seed=0)
        for _ in range(100):
            action = agent.act(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            agent.update(obs, action, reward, info)
            obs = next_obs
        print(f"{cls.__name__} on one environment: action {action} ({type(action).__name__})")
    agents = {"epsilon-greedy": EpsilonGreedy, "batched epsilon-greedy": BatchedEpsilonGreedy,
              "StdTS": StandardTS, "poGAMBITTS": PoGAMBITTS}
    print(run_bandit(ENV_ID, agents, horizon=1000, replications=50, seed=0).table())
