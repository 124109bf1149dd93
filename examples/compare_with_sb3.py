"""PPO, A2C and DQN (Stable-Baselines3) beside the bandit agents, measured the same way.

Every agent plays the bundled cached-LLM environment (SmolLM2 messages, K = 5
prompts, 3-D linear outcome, lowest noise) for T = 1000 rounds. The SB3
algorithms train online with their own ``learn()`` loop, one fresh model per
replication, as contextual bandits (gamma = 0, small rollouts, rewards
standardised with running statistics: ``agents.sb3.SB3_SETTINGS``); their
pseudo-regret is recorded by ``gambit_gym.wrappers.RecordRegret``. The bandit
agents, including the user-written epsilon-greedy agent of
``examples/custom_agent.py``, run through ``run_bandit``. Prints mean +- SE of
the final cumulative regret and writes one plot.

    python examples/compare_with_sb3.py [--replications 20] [--out results/compare_with_sb3.png]
"""

import argparse
import importlib.util
from pathlib import Path

from agents import FoGAMBITTS, PoGAMBITTS, StandardTS, run_bandit
from gambit_gym import ENV_ID

spec = importlib.util.spec_from_file_location("custom_agent", Path(__file__).with_name("custom_agent.py"))
custom_agent = importlib.util.module_from_spec(spec)
spec.loader.exec_module(custom_agent)

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--replications", type=int, default=20)
parser.add_argument("--horizon", type=int, default=1000)
parser.add_argument("--seed", type=int, default=323)
parser.add_argument("--out", default="results/compare_with_sb3.png")
args = parser.parse_args()

agents = {
    "poGAMBITTS": (PoGAMBITTS, {"n_offline": 500}),
    "foGAMBITTS": FoGAMBITTS,
    "StdTS": StandardTS,
    "epsilon-greedy (custom)": custom_agent.EpsilonGreedy,
    "PPO": "sb3:PPO",
    "A2C": "sb3:A2C",
    "DQN": "sb3:DQN",
}
env_kwargs = {"variant": "cached-llm", "outcome": "linear-3d", "n_actions": 5, "noise_level": 0}
result = run_bandit(ENV_ID, agents, horizon=args.horizon, replications=args.replications,
                    seed=args.seed, env_kwargs=env_kwargs)
print(result.table())
print("seconds: " + ", ".join(f"{name} {s:.0f}" for name, s in result.seconds.items()))
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
result.plot(args.out, title=f"cached-LLM env, K=5: bandit agents vs SB3, {args.replications} replications")
print(f"plot written to {args.out}")
