"""Quick start: a random policy and the oracle policy on the default environment.

Prints each policy's cumulative pseudo-regret over one episode of 1000 rounds,
run on 100 environments at once through the vector environment.
"""

import gymnasium as gym
import numpy as np

import gambit_gym
from agents.results import standard_error

venv = gym.make_vec(gambit_gym.ENV_ID, num_envs=100, vectorization_mode="vector_entry_point")
rng = np.random.default_rng(0)
for policy in ("random", "oracle"):
    obs, info = venv.reset(seed=0)
    regret = np.zeros(venv.num_envs)
    for _ in range(venv.unwrapped.horizon):
        if policy == "random":
            actions = rng.integers(venv.single_action_space.n, size=venv.num_envs)
        else:
            actions = venv.unwrapped.expected_rewards(info["context_index"]).argmax(axis=1)
        obs, reward, terminated, truncated, info = venv.step(actions)
        regret += info["regret"]
    print(f"{policy:>7}: cumulative regret after 1000 rounds = {regret.mean():8.2f} "
          f"+- {standard_error(regret):.2f} (SE)")
