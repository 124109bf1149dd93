"""A user's own agent, epsilon-greedy, run through run_bandit beside the built-in ones."""
import numpy as np

from agents import PoGAMBITTS, StandardTS, run_bandit
from gambit_gym import ENV_ID


class EpsilonGreedy:
    """Per-arm running means; explores with probability epsilon. Needs no base class."""

    def __init__(self, n_envs: int, n_actions: int, epsilon: float, seed) -> None:
        self.rng, self.epsilon = np.random.default_rng(seed), epsilon
        self.shape = (n_envs, n_actions)
        self.reset()

    @classmethod
    def from_env(cls, env, seed=None, epsilon: float = 0.1):
        return cls(env.num_envs, env.single_action_space.n, epsilon, seed)

    def reset(self) -> None:
        self.counts, self.means = np.zeros(self.shape), np.zeros(self.shape)

    def act(self, obs):
        greedy = np.where(self.counts == 0, np.inf, self.means).argmax(axis=1)
        explore = self.rng.random(len(greedy)) < self.epsilon
        return np.where(explore, self.rng.integers(self.shape[1], size=len(greedy)), greedy)

    def update(self, obs, action, reward, info) -> None:
        rows = np.arange(len(action))
        self.counts[rows, action] += 1
        self.means[rows, action] += (reward - self.means[rows, action]) / self.counts[rows, action]


if __name__ == "__main__":
    agents = {"epsilon-greedy": EpsilonGreedy, "StdTS": StandardTS, "poGAMBITTS": PoGAMBITTS}
    print(run_bandit(ENV_ID, agents, horizon=1000, replications=50, seed=0).table())
