"""Ensemble GAMBITTS robustness on the bundled cached-LLM environment (issue: the paper's ensemble
blew up on the MLP outcome and at d = 3 and d = 20).

Run: ``python benchmarks/ensemble_robustness.py [--replications 50]``. T = 1000, lowest noise level.
Prints mean +- SE of the final cumulative regret for each case:

* ``mlp``: the non-linear outcome; ensemble vs standard TS (goal: lower).
* ``linear-3d``: ensemble vs poGAMBITTS (goal: within a stated factor).
* ``d=20``: linear-3d outcome, working embedding = all 20 style scores; ensemble vs poGAMBITTS.
"""

from __future__ import annotations

import argparse

from agents import EnsembleGAMBITTS, PoGAMBITTS, StandardTS, run_bandit
from gambit_gym import ENV_ID
from gambit_gym.cache import DIMENSION_NAMES

CASES = {
    "mlp": {"variant": "cached-llm", "outcome": "mlp"},
    "linear-3d": {"variant": "cached-llm", "outcome": "linear-3d"},
    "d=20": {"variant": "cached-llm", "outcome": "linear-3d", "working_embedding": list(DIMENSION_NAMES)},
}
AGENTS = {"EnsembleGAMBITTS": EnsembleGAMBITTS, "poGAMBITTS": PoGAMBITTS, "StdTS": StandardTS}


def run_case(name: str, replications: int, seed: int = 323):
    return run_bandit(ENV_ID, AGENTS, horizon=1000, replications=replications, seed=seed,
                      env_kwargs=CASES[name], progress=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replications", type=int, default=50)
    args = parser.parse_args()
    for name in CASES:
        s = run_case(name, args.replications).summary()
        cells = "  ".join(f"{a} {v['mean']:7.2f} +- {v['se']:5.2f}" for a, v in s.items())
        ratio = s["EnsembleGAMBITTS"]["mean"] / s["poGAMBITTS"]["mean"]
        print(f"{name:10s} {cells}   ensemble/po = {ratio:.2f}")


if __name__ == "__main__":
    main()
