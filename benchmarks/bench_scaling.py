"""Per-round cost of every agent as the number of prompts K and the embedding dimension d grow.

Run: ``python benchmarks/bench_scaling.py [--replications 1] [--seconds 0.3]``. Times ``act`` +
``update`` (the environment's step excluded) on the default synthetic environment after a
warm-up (past the ensemble's 100 uniform rounds), for K in 5..200 and d in 3..20, and prints
for each agent the growth exponent of the cost in K (the log-log slope from K = 50 to 200, at
the largest d) measured in this one run.

What to expect: a linear TS round on p features costs at least O(p^2) (a rank-one update of
the p x p Cholesky factor and two triangular solves) plus scoring the K actions. For
poGAMBITTS p = d + F + 1 (F = 7 context features) does not grow with K, so its round is
O(K n d + d^2) with n bank draws per action (the O(K d + d^2) floor of a linear TS round with
the bank's draws summarised per action); foGAMBITTS adds an O(d^2) treatment update and
O(K d^2) sampling; StdTS is O(K). LinTS has one feature per action, p = K + F + 1, so it is
O(K^2), and O(K^2 F^2) with interactions (p = K (F + 1) + F + 1).
"""

from __future__ import annotations

import argparse
import math
import time

import gymnasium as gym

from agents import EnsembleGAMBITTS, FoGAMBITTS, LinearTS, PoGAMBITTS, StandardTS
from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv

AGENTS = {
    "StdTS": (StandardTS, {}),
    "LinTS": (LinearTS, {}),
    "LinTS+interactions": (LinearTS, {"interactions": True}),
    "poGAMBITTS": (PoGAMBITTS, {}),
    "foGAMBITTS": (FoGAMBITTS, {}),
    "ensemble (M=10)": (EnsembleGAMBITTS, {"n_members": 10}),
}
KS = (5, 20, 50, 100, 200)
DS = (3, 10, 20)


def round_cost(cls, kwargs, replications: int, seconds: float, warmup: int = 110, **env_kwargs) -> float:
    """Seconds per round of ``act`` + ``update`` after ``warmup`` rounds, timed for about ``seconds``."""
    if replications == 1:  # the single-environment path (an SB3-style loop)
        env = gym.make(ENV_ID, max_episode_steps=10**6, **env_kwargs)
    else:
        env = GeneratorMediatedVectorEnv(num_envs=replications, max_episode_steps=10**6, **env_kwargs)
    agent = cls.from_env(env, seed=0, **kwargs)
    obs, _ = env.reset(seed=0)
    spent, rounds, t = 0.0, 0, 0
    while t < warmup or (spent < seconds or rounds < 5):
        tic = time.perf_counter()
        a = agent.act(obs)
        lap = time.perf_counter() - tic
        nobs, r, _, _, info = env.step(a)
        tic = time.perf_counter()
        agent.update(obs, a, r, info)
        lap += time.perf_counter() - tic
        if t >= warmup:
            spent, rounds = spent + lap, rounds + 1
        obs, t = nobs, t + 1
    return spent / rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=1, help="replications stepped together (1)")
    parser.add_argument("--seconds", type=float, default=0.3, help="timed seconds per cell (0.3)")
    parser.add_argument("--agents", nargs="*", default=list(AGENTS), help="agents to time (all)")
    args = parser.parse_args(argv)
    try:
        import numba  # noqa: F401  (the ensemble's CPU kernels)
    except ImportError:
        args.agents = [a for a in args.agents if not a.startswith("ensemble")]
    print(f"per-round cost in ms (act + update, {args.replications} replication(s), step excluded)")
    cols = [(k, d) for d in DS for k in KS]
    print("| agent | " + " | ".join(f"K={k} d={d}" for k, d in cols) + " | growth in K (50 -> 200, d=20) |")
    print("|---|" + "---|" * (len(cols) + 1))
    for name in args.agents:
        cls, kwargs = AGENTS[name]
        cost = {(k, d): round_cost(cls, kwargs, args.replications, args.seconds, n_actions=k, embedding_dim=d)
                for k, d in cols}
        slope = math.log(cost[200, DS[-1]] / cost[50, DS[-1]]) / math.log(200 / 50)
        print(f"| {name} | " + " | ".join(f"{cost[c] * 1e3:.3f}" for c in cols) + f" | K^{slope:.2f} |", flush=True)


if __name__ == "__main__":
    main()
