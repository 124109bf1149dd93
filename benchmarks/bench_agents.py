"""Agent speed: batched run_bandit vs a Python loop of single-environment runs, and per-round cost.

Run: ``python benchmarks/bench_agents.py [--single-runs N] [--table-only]``. Prints ratios
measured in this one run (compare ratios, not absolute times).

(a) run_bandit with 250 replications, K = 40, d = 3, T = 1000 for poGAMBITTS,
    foGAMBITTS, StdTS and LinTS, against the same agents run one replication at a
    time on single environments (all 250 by default; ``--single-runs N`` times N
    of them and scales up). Goal: >= 30x.
(b) per-round cost (act + env step + update, 250 replications) as K and d grow.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

from agents import FoGAMBITTS, LinearTS, PoGAMBITTS, StandardTS, run_bandit
from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv

AGENTS = {"poGAMBITTS": PoGAMBITTS, "foGAMBITTS": FoGAMBITTS, "StdTS": StandardTS, "LinTS": LinearTS}


def single_loop(runs: int, horizon: int, n_actions: int) -> dict[str, float]:
    out = {}
    for name, cls in AGENTS.items():
        tic = time.perf_counter()
        for rep in range(runs):
            env = gym.make(ENV_ID, n_actions=n_actions, max_episode_steps=horizon)
            agent = cls.from_env(env, seed=rep)
            obs, _ = env.reset(seed=rep)
            for _ in range(horizon):
                a = agent.act(obs)
                nobs, r, _, _, info = env.step(a)
                agent.update(obs, a, r, info)
                obs = nobs
        out[name] = time.perf_counter() - tic
    return out


def per_round(make_agent, reps: int = 250, rounds: int = 100, warmup: int = 0, **env_kwargs) -> float:
    """Seconds per round of act + step + update for ``make_agent(vector_env)``, timed after ``warmup``."""
    venv = GeneratorMediatedVectorEnv(num_envs=reps, **env_kwargs)
    agent = make_agent(venv)
    obs, _ = venv.reset(seed=0)
    for t in range(warmup + rounds):
        if t == warmup:
            tic = time.perf_counter()
        a = agent.act(obs)
        nobs, r, _, _, info = venv.step(a)
        agent.update(obs, a, r, info)
        obs = nobs
    return (time.perf_counter() - tic) / rounds


def build(cls):
    kwargs = {"n_offline": 100} if cls is PoGAMBITTS else {}
    return lambda env: cls.from_env(env, seed=0, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--single-runs", type=int, default=250)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    reps, horizon, K = 250, 1000, 40
    if not args.table_only:
        res = run_bandit(ENV_ID, AGENTS, horizon=horizon, replications=reps, seed=0,
                         env_kwargs={"n_actions": K}, progress=False)
        single = single_loop(args.single_runs, horizon, K)
        scale = reps / args.single_runs
        print(f"(a) {reps} replications, K={K}, d=3, T={horizon} (single loop: {args.single_runs} runs"
              f"{'' if scale == 1 else f', scaled x{scale:g}'})")
        print(f"{'agent':12s} {'run_bandit s':>13s} {'single loop s':>14s} {'speed-up':>9s}")
        for name in AGENTS:
            b, s = res.seconds[name], single[name] * scale
            print(f"{name:12s} {b:13.2f} {s:14.1f} {s / b:8.0f}x")
        tb, ts = sum(res.seconds.values()), sum(single.values()) * scale
        print(f"{'all four':12s} {tb:13.2f} {ts:14.1f} {ts / tb:8.0f}x   (goal >= 30x)")
    print("(b) per-round cost in ms (act + step + update, 250 replications)")
    print(f"{'agent':12s} " + " ".join(f"{f'K={k},d={d}':>12s}" for k in (5, 40, 200) for d in (3, 20)))
    for name, cls in AGENTS.items():
        cells = [per_round(build(cls), n_actions=k, embedding_dim=d) * 1e3 for k in (5, 40, 200) for d in (3, 20)]
        print(f"{name:12s} " + " ".join(f"{c:12.2f}" for c in cells))


if __name__ == "__main__":
    main()
