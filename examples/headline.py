"""The headline comparison: GAMBITTS against standard and linear Thompson sampling on real LLM messages.

Runs poGAMBITTS, foGAMBITTS, ensemble GAMBITTS (when the ``torch`` extra is
installed), standard TS and linear TS on the bundled cached-LLM environment
(``GeneratorMediated-v0`` with ``variant="cached-llm"``: 4,800 SmolLM2 messages,
K = 5 prompts, the paper's 3-D linear outcome on the messages' style scores,
lowest noise level) for T = 1000 rounds and 50 replications, prints mean +- SE
of the final cumulative pseudo-regret, and writes the regret plot.

    python examples/headline.py [--replications 50] [--out results/headline.png]
"""

import argparse
import importlib.util
from pathlib import Path

from agents import FoGAMBITTS, LinearTS, PoGAMBITTS, StandardTS, run_bandit
from gambit_gym import ENV_ID

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--replications", type=int, default=50)
parser.add_argument("--horizon", type=int, default=1000)
parser.add_argument("--seed", type=int, default=323)
parser.add_argument("--out", default="results/headline.png")
args = parser.parse_args()

agents = {"poGAMBITTS": (PoGAMBITTS, {"n_offline": 500}), "foGAMBITTS": FoGAMBITTS}
if importlib.util.find_spec("torch") is not None:
    from agents import EnsembleGAMBITTS

    agents["ensemble"] = EnsembleGAMBITTS
else:
    print('ensemble GAMBITTS skipped: pip install "gambit-gym[torch]" to include it')
agents.update({"StdTS": StandardTS, "LinTS": LinearTS})
env_kwargs = {"variant": "cached-llm", "outcome": "linear-3d", "n_actions": 5, "noise_level": 0}
result = run_bandit(ENV_ID, agents, horizon=args.horizon, replications=args.replications,
                    seed=args.seed, env_kwargs=env_kwargs)
print(result.table())
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
result.plot(args.out, title=f"cached-LLM env (SmolLM2 messages, K=5), {args.replications} replications")
print(f"plot written to {args.out}")
