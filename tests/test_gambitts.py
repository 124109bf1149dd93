"""poGAMBITTS and foGAMBITTS: the offline bank, the treatment cells, regret against standard TS."""

import gymnasium as gym
import numpy as np
import pytest

from agents import FoGAMBITTS, PoGAMBITTS, StandardTS, run_bandit
from agents.gambitts import offline_treatment_draws
from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv
from tests._agents import TINY_ENSEMBLES, build, needs_ensemble


class RecordingSimulator:
    """Wraps an env's ``sample_treatments``; records each call's (action, context, n)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, action, context, n, rng):
        self.calls.append((action, context, n))
        return self.inner(action, context, n, rng)


def test_offline_draws_go_context_by_context_then_action_by_action():
    sim = RecordingSimulator(gym.make(ENV_ID).unwrapped.sample_treatments)
    cells = [(c, a, draws.shape) for c, a, draws in offline_treatment_draws(sim, 2, 3, 4, 5, 3,
                                                                              np.random.default_rng(0))]
    assert cells == [(c, a, (2, 5, 3)) for c in range(3) for a in range(4)]
    assert sim.calls == [(a, c, 10) for c in range(3) for a in range(4)]  # one call of R * n per cell


def test_po_bank_is_the_mean_of_each_rows_own_draws():
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = PoGAMBITTS.from_env(venv, seed=4, n_offline=6)
    rng = np.random.default_rng(4)  # the agent's stream, from the start: the bank is its first draw
    R, C, K, d = 2, venv.contexts.n_contexts, 5, venv.embedding_dim
    want = np.empty((R, C, K, d))
    for c, a, draws in offline_treatment_draws(venv.sample_treatments, R, C, K, 6, d, rng):
        want[:, c, a] = draws.mean(axis=1)
    assert np.array_equal(agent.treatment_means, want)
    assert not np.array_equal(want[0], want[1])  # replications draw their own banks


@needs_ensemble
def test_po_and_ensemble_banks_draw_in_the_same_order():
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    po_sim, ens_sim = RecordingSimulator(venv.sample_treatments), RecordingSimulator(venv.sample_treatments)
    PoGAMBITTS.from_env(venv, seed=0, n_offline=8, simulator=po_sim)
    cls, kwargs = TINY_ENSEMBLES["ensemble-po"]
    cls.from_env(venv, seed=0, simulator=ens_sim, **kwargs)
    assert po_sim.calls == ens_sim.calls and len(po_sim.calls) == venv.contexts.n_contexts * 5


def test_given_treatment_means_replace_the_bank():
    env = gym.make(ENV_ID)
    contexts, C = env.unwrapped.contexts, env.unwrapped.contexts.n_contexts
    means = np.arange(C * 5 * 3, dtype=float).reshape(C, 5, 3)
    agent = PoGAMBITTS(n_actions=5, obs_dim=7, contexts=contexts, embedding_dim=3, treatment_means=means, n_envs=2)
    assert np.array_equal(agent.treatment_means, np.broadcast_to(means, (2, C, 5, 3)))
    with pytest.raises(ValueError, match="treatment_means"):
        PoGAMBITTS(n_actions=5, obs_dim=7, contexts=contexts, embedding_dim=3, treatment_means=means[:1])


def test_fo_learns_the_treatment_of_the_played_context_and_action_only():
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    agent = build(FoGAMBITTS, venv, 0)
    obs, _ = venv.reset(seed=0)
    a = np.array([4, 0, 2])
    _, r, _, _, info = venv.step(a)
    agent.update(obs, a, r, info)
    K, C, rows = 5, venv.contexts.n_contexts, np.arange(3)
    cells = venv.contexts.index(obs) * K + a
    want = np.ones((3, C * K))
    want[rows, cells] = 2.0  # kappa0 = 1, plus one observation
    assert np.array_equal(agent.treatment.kappa, want)
    # the posterior mean of the treatment moved half way to the observed embedding (kappa0 = 1, mu0 = 0)
    assert np.allclose(agent.treatment.mean[rows, cells], info["treatment_embedding"] / 2)


def test_headline_pogambitts_at_most_half_of_standard_ts():
    """Default synthetic instance, K = 5, lowest noise, T = 1000, 50 replications."""
    res = run_bandit(ENV_ID, {"poGAMBITTS": PoGAMBITTS, "StdTS": StandardTS}, horizon=1000,
                     replications=50, seed=323, progress=False)
    s = res.summary()
    print(f"\npoGAMBITTS {s['poGAMBITTS']['mean']:.1f} +- {s['poGAMBITTS']['se']:.1f}, "
          f"StdTS {s['StdTS']['mean']:.1f} +- {s['StdTS']['se']:.1f}")
    assert s["poGAMBITTS"]["mean"] <= 0.5 * s["StdTS"]["mean"]


def test_po_and_fo_play_the_argmax_of_their_sampled_scores_drawn_in_the_documented_order():
    """poGAMBITTS: theta ~ posterior, scored on the bank means; foGAMBITTS: theta, then one treatment mean per
    action; the action is the argmax (the same draws as before scores were split from acting)."""
    venv = GeneratorMediatedVectorEnv(num_envs=4)
    for agent in (PoGAMBITTS.from_env(venv, seed=1, n_offline=10), FoGAMBITTS.from_env(venv, seed=1)):
        obs, _ = venv.reset(seed=3)
        a = agent.act(obs)
        _, r, _, _, info = venv.step(a)
        agent.update(obs, a, r, info)
        obs, _ = venv.reset(seed=4)
        ctx, rows = venv.contexts.index(obs), np.arange(4)
        twin = np.random.default_rng()
        twin.bit_generator.state = agent.rng.bit_generator.state
        theta = agent.model.posterior.sample(twin)
        if isinstance(agent, PoGAMBITTS):
            means = agent.treatment_means[rows, ctx]
        else:
            means = agent.treatment.sample_mean(twin, rows[:, None], ctx[:, None] * 5 + np.arange(5))
        assert np.array_equal(agent.act(obs), agent._score(theta, means).argmax(axis=1))
        assert agent.rng.bit_generator.state == twin.bit_generator.state
