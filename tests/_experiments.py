"""Shared pieces of the experiment tests: a tiny definition, results written with chosen numbers."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from agents.experiments import Experiment
from agents.experiments.runner import config_table
from agents.results import standard_error

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny", "horizon": 40, "replications": 3, "seed": 5,
    "env": {"variant": "synthetic"},
    "agents": {"po": {"type": "PoGAMBITTS", "n_offline": 20}, "StdTS": {"type": "StandardTS"},
               "ens": {"type": "EnsembleGAMBITTS", "n_members": 3, "warmup": 10, "batch_size": 8}},
    "sweep": {"env.n_actions": [3, 5]},
}


def csv_texts(folder: Path) -> dict[str, str]:
    """Every results file's text without its wall-time rows (the only values that may differ)."""
    return {p.name: "".join(line for line in p.read_text().splitlines(keepends=True) if ",seconds," not in line)
            for p in sorted(folder.glob("*.csv"))}


def slow_definition(tmp_path: Path) -> Path:
    """A six-config sweep of cheap agents that takes a few seconds: long enough to interrupt."""
    path = tmp_path / "sweep.toml"
    path.write_text(textwrap.dedent("""
        name = "resume"
        horizon = 400
        replications = 20
        seed = 11
        [env]
        variant = "synthetic"
        [agents.LinTS]
        type = "LinearTS"
        [agents.StdTS]
        type = "StandardTS"
        [sweep]
        "env.n_actions" = [3, 4, 5, 6, 7, 8]
    """))
    return path


def write_config(root: Path, exp: Experiment, finals: dict[str, dict[str, float]], T: int = 10) -> None:
    """Results with chosen final regrets (to pin down the report's decisions)."""
    folder = root / exp.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.json").write_text(json.dumps(exp.definition(), default=str))
    for config in exp.configs():
        result = {}
        for agent, level in finals[config.config_id].items():
            final = level + np.linspace(-1, 1, config.replications)
            reg = np.outer(final, np.arange(1, T + 1) / T)
            result[agent] = {"mean": reg.mean(0), "se": standard_error(reg, axis=0), "final": final,
                             "seconds": 0.0}
        (folder / config.filename).write_text(config_table(config, result))


#: A sweep whose config with five prompts fails at run time (``tests._experiments:ExplodingAgent``).
EXPLODING_TOML = """
name = "tiny"
horizon = 40
replications = 3
seed = 5
[env]
variant = "synthetic"
[agents.x]
type = "tests._experiments:ExplodingAgent"
[sweep]
"env.n_actions" = [3, 5]
"""


class ExplodingAgent:
    """Fails on five prompts only: one config of a sweep breaks at run time, after validation."""

    def __init__(self, env):
        self.env = env

    @classmethod
    def from_env(cls, env, seed=None):
        return cls(env)

    def reset(self):
        pass

    def act(self, obs):
        if self.env.single_action_space.n == 5:
            raise RuntimeError("boom")
        return np.zeros(self.env.num_envs, dtype=np.int64)

    def update(self, obs, action, reward, info):
        pass
