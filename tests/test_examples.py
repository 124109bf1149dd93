"""The examples run as users would run them."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents import StandardTS, run_bandit
from gambit_gym import ENV_ID

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_agent_runs_beside_builtin_agents():
    custom = load("custom_agent")
    res = run_bandit(ENV_ID, {"eps": custom.EpsilonGreedy, "StdTS": StandardTS},
                     horizon=300, replications=10, seed=0, progress=False)
    reg = res.cumulative_regret["eps"]
    assert reg.shape == (10, 300) and np.all(np.diff(reg, axis=1) >= 0)


def test_quickstart_prints_random_and_oracle_regret():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True,
                         text=True, check=True).stdout
    assert "random" in out and "oracle: cumulative regret after 1000 rounds =     0.00" in out


@pytest.mark.slow
def test_headline_compares_all_agents_on_the_cached_llm_env(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "headline.py"), "--replications", "3",
                          "--horizon", "150", "--out", str(tmp_path / "h.png")], capture_output=True, text=True,
                         check=True).stdout
    for agent in ("poGAMBITTS", "foGAMBITTS", "ensemble", "StdTS", "LinTS"):
        assert f"| {agent} |" in out
    assert (tmp_path / "h.png").stat().st_size > 10_000
