"""A second world: reminders from an online course, from its domain file to agents' regret.

The package ships two domains. ``study_nudges`` (``gambit_gym/domains/study_nudges.toml``) is
the small one: an online course reminds a learner who has not opened it this week; 6 prompts ask
for one pole of warmth, playfulness or urgency; the context is when the next assignment is due
(tomorrow or next week). Its cache holds 96 SmolLM2-135M-Instruct messages (8 per cell), built by

    gambit-gym cache build --domain study_nudges --generator smollm2 --per-cell 8 --seed 0 \\
        --out gambit_gym/data/study_nudges_smollm2.npz

Its outcome presets are illustrative (minutes studied, not fitted to data). This script prints the
domain, a message of each prompt and the exact expected rewards, then runs poGAMBITTS, foGAMBITTS
and standard Thompson sampling (per arm, and per context and arm: here the best prompt depends on the
deadline) on all 6 prompts and prints their final cumulative regret.

    python examples/second_domain.py [--replications 50] [--horizon 1000] [--outcome minutes] [--out regret.png]
"""

import argparse

import gymnasium as gym

from agents import FoGAMBITTS, PoGAMBITTS, StandardTS, run_bandit
from gambit_gym import ENV_ID
from gambit_gym.domains import load_domain

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--replications", type=int, default=50, help="independent runs per agent (default: 50)")
parser.add_argument("--horizon", type=int, default=1000, help="rounds per run (default: 1000)")
parser.add_argument("--seed", type=int, default=0, help="root seed of the runs (default: 0)")
parser.add_argument("--outcome", default="minutes", help="an outcome preset of the domain (default: minutes)")
parser.add_argument("--out", help="also write the regret plot here (needs the plots extra)")
args = parser.parse_args()

domain = load_domain("study_nudges")
print("\n".join(domain.summary()))
env_kwargs = {"variant": "cached-llm", "domain": "study_nudges", "n_actions": None, "outcome": args.outcome}
env = gym.make(ENV_ID, **env_kwargs)
scenario = env.unwrapped.scenario
cache = scenario.cache
print(f"\ncache: {cache.path} ({cache.n_texts} messages); a message of each prompt:")
for p, pid in enumerate(cache.prompt_ids):
    print(f"  [{pid}] {cache.texts[(cache.prompt_index == p).argmax()]}")
print(f"\nexact expected reward of each prompt (outcome {args.outcome!r}, noise sd {scenario.noise_sd:.3f}):")
for c in range(scenario.contexts.n_contexts):
    row = "  ".join(f"{pid} {mu:6.3f}" for pid, mu in zip(scenario.prompt_ids, scenario.expected_reward[c]))
    print(f"  deadline {scenario.contexts.describe(c)['deadline']:9s}  {row}")

agents = {"poGAMBITTS": PoGAMBITTS, "foGAMBITTS": FoGAMBITTS, "StdTS": StandardTS,
          "StdTS per context": (StandardTS, {"contextual": True})}
result = run_bandit(ENV_ID, agents, horizon=args.horizon, replications=args.replications, seed=args.seed,
                    env_kwargs=env_kwargs)
print()
print(result.table())
if args.out:
    result.plot(args.out, title=f"study_nudges (SmolLM2 messages, K=6), {args.replications} replications")
    print(f"plot written to {args.out}")
