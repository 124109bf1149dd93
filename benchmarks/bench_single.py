"""Single-replication speed: one agent's act + update against one CartPole-v1 step.

Run: ``python benchmarks/bench_single.py [--rounds N] [--repeats N]``. Prints, from this one run, the
per-round cost of ``act`` + ``update`` of each agent used on its own (one replication,
the SB3-style loop ``a = agent.act(obs); env.step(a); agent.update(...)``) at K = 5,
d = 3, the cost of one ``CartPole-v1`` step, and their ratio. Goal: at most 5x a
CartPole step for StdTS and poGAMBITTS, 10x for foGAMBITTS and LinTS.

On a shared machine the load changes from second to second, so the CartPole step and every
agent are timed in ``--repeats`` interleaved blocks and each cost is the fastest of its
blocks (the least disturbed); the ratios compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import math
import time

import gymnasium as gym
import numpy as np

from agents import FoGAMBITTS, LinearTS, PoGAMBITTS, StandardTS
from gambit_gym import ENV_ID

AGENTS = {"StdTS": (StandardTS, 5.0), "poGAMBITTS": (PoGAMBITTS, 5.0),
          "foGAMBITTS": (FoGAMBITTS, 10.0), "LinTS": (LinearTS, 10.0)}


def cartpole_step(rounds: int) -> float:
    """Seconds per ``CartPole-v1`` step (through ``gym.make``'s wrappers, resetting when an episode ends)."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(2, size=rounds)
    tic = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - tic) / rounds


def agent_round(cls, rounds: int, warmup: int = 200, **env_kwargs) -> float:
    """Seconds per round of ``act`` + ``update`` (the environment's step excluded), after ``warmup`` rounds."""
    env = gym.make(ENV_ID, max_episode_steps=warmup + rounds + 1, **env_kwargs)
    agent = cls.from_env(env, seed=0)
    obs, _ = env.reset(seed=0)
    spent = 0.0
    for t in range(warmup + rounds):
        tic = time.perf_counter()
        a = agent.act(obs)
        spent_act = time.perf_counter() - tic
        nobs, r, _, _, info = env.step(a)
        tic = time.perf_counter()
        agent.update(obs, a, r, info)
        if t >= warmup:
            spent += spent_act + time.perf_counter() - tic
        obs = nobs
    return spent / rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="timed rounds per agent and block (2000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved blocks; the fastest counts (3)")
    args = parser.parse_args(argv)
    step = math.inf
    cost = dict.fromkeys(AGENTS, math.inf)
    for _ in range(args.repeats):
        step = min(step, cartpole_step(10 * args.rounds))
        for name, (cls, _) in AGENTS.items():
            cost[name] = min(cost[name], agent_round(cls, args.rounds, n_actions=5, embedding_dim=3))
    print(f"CartPole-v1 step: {step * 1e6:.1f} us (fastest of {args.repeats} blocks, as every cost below)")
    print("| agent (R = 1, K = 5, d = 3) | act + update (us) | x CartPole step | goal |")
    print("|---|---|---|---|")
    for name, (_, goal) in AGENTS.items():
        ratio = cost[name] / step
        print(f"| {name} | {cost[name] * 1e6:.1f} | {ratio:.1f} | <= {goal:g} {'ok' if ratio <= goal else 'MISSED'} |")


if __name__ == "__main__":
    main()
