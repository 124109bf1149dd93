"""examples/pogambitts_minimal.py, the one-file poGAMBITTS, is the library's PoGAMBITTS.

With the same seed it plays the same actions as ``agents.PoGAMBITTS`` (same priors, same bank,
same random draws in the same order), and on independent seeds its regret is the library's within
noise and far below standard Thompson sampling's.
"""

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents import PoGAMBITTS, StandardTS, run_bandit
from gambit_gym import ENV_ID

ROOT = Path(__file__).resolve().parents[1]


def load_example():
    spec = importlib.util.spec_from_file_location("pogambitts_minimal", ROOT / "examples" / "pogambitts_minimal.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


minimal = load_example()


def library_regret(env: gym.Env, horizon: int, seed: int) -> np.ndarray:
    """The library's PoGAMBITTS in the same loop the example uses: cumulative pseudo-regret."""
    agent = PoGAMBITTS.from_env(env, seed=seed, n_offline=500)
    obs, info = env.reset(seed=seed)
    regret = np.empty(horizon)
    for t in range(horizon):
        action = agent.act(obs)
        next_obs, reward, _, _, info = env.step(action)
        agent.update(obs, action, reward, info)
        obs = next_obs
        regret[t] = info["regret"]
    return np.cumsum(regret)


def standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values)))


@pytest.mark.parametrize("env_kwargs", [{}, {"variant": "misspecified"}])
def test_same_seed_reproduces_the_library_agent_exactly(env_kwargs):
    # Same bank draws, then per round one gamma and p normals, as agents.PoGAMBITTS draws them;
    # only the linear algebra differs (full solve vs Cholesky rank-one updates), far below any tie.
    for seed in range(4):
        ours = minimal.run(gym.make(ENV_ID, **env_kwargs), horizon=300, seed=seed, n_offline=500)
        theirs = library_regret(gym.make(ENV_ID, **env_kwargs), horizon=300, seed=seed)
        assert np.array_equal(ours, theirs), f"seed {seed}: regret {ours[-1]:.3f} vs library {theirs[-1]:.3f}"


def test_regret_matches_the_library_and_beats_standard_ts_on_independent_seeds():
    replications, horizon = 30, 400
    # Seeds 0..29 for the example; run_bandit spawns its own independent streams from seed 2024.
    ours = np.array([minimal.run(gym.make(ENV_ID), horizon, seed, 500)[-1] for seed in range(replications)])
    result = run_bandit(ENV_ID, {"poGAMBITTS": PoGAMBITTS, "StdTS": StandardTS}, horizon=horizon,
                        replications=replications, seed=2024, progress=False)
    library = result.cumulative_regret["poGAMBITTS"][:, -1]
    standard = result.cumulative_regret["StdTS"][:, -1]
    z_same = (ours.mean() - library.mean()) / np.hypot(standard_error(ours), standard_error(library))
    assert abs(z_same) < 3.5, f"example {ours.mean():.1f} vs library {library.mean():.1f}: z = {z_same:.2f}"
    for name, regret in (("example", ours), ("library", library)):
        z_better = (standard.mean() - regret.mean()) / np.hypot(standard_error(standard), standard_error(regret))
        assert z_better > 4, f"{name} {regret.mean():.1f} vs StdTS {standard.mean():.1f}: z = {z_better:.2f}"


def test_run_returns_a_nondecreasing_cumulative_regret_and_rejects_bad_arguments():
    regret = minimal.run(gym.make(ENV_ID, n_actions=3), horizon=50, seed=1, n_offline=20)
    assert regret.shape == (50,) and np.all(np.diff(regret) >= 0) and regret[0] >= 0
    for name, kwargs in (("horizon", {"horizon": 0}), ("seed", {"seed": -1}), ("n_offline", {"n_offline": 0}),
                         ("horizon", {"horizon": 2.5})):
        arguments = {"horizon": 10, "seed": 0, "n_offline": 5, **kwargs}
        with pytest.raises((TypeError, ValueError), match=name):
            minimal.run(gym.make(ENV_ID), **arguments)


def test_main_prints_the_final_cumulative_regret(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["pogambitts_minimal.py", "--horizon", "120", "--seed", "3", "--n-offline", "50"])
    minimal.main()
    expected = minimal.run(gym.make(ENV_ID, max_episode_steps=120), horizon=120, seed=3, n_offline=50)[-1]
    assert capsys.readouterr().out == f"poGAMBITTS: cumulative regret after 120 rounds = {expected:.2f}\n"
