"""Environment speed: single-env step vs CartPole, vector env vs SyncVectorEnv.

Run: ``python benchmarks/bench_env.py``. Prints absolute times and the ratios
measured in this one run (compare ratios; absolute times depend on the machine).
Goals: (a) step time <= 2x CartPole-v1's; (b) vector throughput >= 50x SyncVectorEnv's.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from gambit_gym import ENV_ID


def time_steps(env: gym.Env, n: int) -> float:
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(env.action_space.n, size=n)
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return (time.perf_counter() - start) / n


def time_vector(venv: gym.vector.VectorEnv, n: int) -> float:
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(n):
        venv.step(rng.integers(venv.single_action_space.n, size=venv.num_envs))
    return (time.perf_counter() - start) / (n * venv.num_envs)


def main(n: int = 20_000, num_envs: int = 256, vec_steps: int = 200) -> None:
    ours = min(time_steps(gym.make(ENV_ID), n) for _ in range(3))
    cart = min(time_steps(gym.make("CartPole-v1"), n) for _ in range(3))
    print(f"(a) step: {ENV_ID} {ours * 1e6:.1f} us, CartPole-v1 {cart * 1e6:.1f} us, "
          f"ratio {ours / cart:.2f}x (goal <= 2x)")
    vec = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point")
    sync = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync")
    t_vec = min(time_vector(vec, vec_steps) for _ in range(3))
    t_sync = min(time_vector(sync, max(vec_steps // 10, 5)) for _ in range(3))
    print(f"(b) per env-step with {num_envs} envs: vector {t_vec * 1e6:.2f} us, SyncVectorEnv "
          f"{t_sync * 1e6:.2f} us, speed-up {t_sync / t_vec:.0f}x (goal >= 50x)")


if __name__ == "__main__":
    main()
