"""Agents under a safety layer: filter-aware vs naive banks, the harm-budgeted agents, the harm metric."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import gambit_gym  # noqa: F401  (registers the environment)
from agents import FoGAMBITTS, PoGAMBITTS, StandardTS, run_bandit
from agents.safety import BudgetedPoGAMBITTS, BudgetedStandardTS, HarmRecorder, NaivePoGAMBITTS

# A filter on z1 that sends the neutral fallback (embedding 0, reward = the intercept) for half of all
# treatments, far more often for the prompts with a high z1: the raw generator overrates them.
SAFETY = {"checks": [{"type": "threshold", "dimension": "z1", "above_quantile": 0.5}], "attempts": 1,
          "on_reject": "fallback", "fallback": {"reward": 80.0, "embedding": [0.0, 0.0, 0.0]}, "harm": "z2"}
ENV = {"coefficients": [1.0, 1.0, 0.0], "context_effect_sd": 0.0, "safety": SAFETY}


def _venv(n=3, **kwargs):
    venv = gym.make_vec("GeneratorMediated-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        **{**ENV, **kwargs})
    venv.reset(seed=0)
    return venv


def test_filter_aware_bank_is_the_delivered_mean_and_the_naive_bank_the_raw_one():
    venv = _venv()
    scenario = venv.unwrapped.scenario
    aware = PoGAMBITTS.from_env(venv, seed=1, n_offline=4000)
    naive = NaivePoGAMBITTS.from_env(venv, seed=1, n_offline=4000)
    np.testing.assert_allclose(aware.treatment_means[0], scenario.mean_embedding(), atol=0.08)
    np.testing.assert_allclose(naive.treatment_means[0], scenario.inner.mean_embedding(), atol=0.08)
    # the filter moves the bank means by far more than their error
    assert np.abs(scenario.mean_embedding() - scenario.inner.mean_embedding()).max() > 0.5


def test_without_a_check_the_filter_aware_and_the_naive_bank_are_the_same():
    # Simulation through a layer that passes everything draws exactly what the raw generator draws.
    venv = _venv(2, safety={**SAFETY, "checks": []})
    aware = PoGAMBITTS.from_env(venv, seed=4, n_offline=30)
    naive = NaivePoGAMBITTS.from_env(venv, seed=4, n_offline=30)
    np.testing.assert_array_equal(aware.treatment_means, naive.treatment_means)


@pytest.mark.slow
def test_naive_bank_has_more_regret_than_the_filter_aware_one():
    res = run_bandit("GeneratorMediated-v0", {"aware": PoGAMBITTS, "naive": NaivePoGAMBITTS}, horizon=600,
                     replications=12, seed=0, env_kwargs=ENV, progress=False)
    aware, naive = res.cumulative_regret["aware"][:, -1], res.cumulative_regret["naive"][:, -1]
    se = np.sqrt(aware.var(ddof=1) / len(aware) + naive.var(ddof=1) / len(naive))
    assert naive.mean() - aware.mean() > 4 * se, (aware.mean(), naive.mean())


@pytest.mark.slow
def test_budgeted_agent_keeps_its_violation_rate_within_its_level_on_a_long_run():
    # The best delivered prompt (0) has mean harm 0.54 > the budget 0.3; prompts 1 and 2 fit it.
    budget, level = 0.3, 0.05
    scenario = _venv(1).unwrapped.scenario
    assert scenario.expected_harm[:, scenario.optimal_action[0]].mean() > budget
    rec = HarmRecorder()
    run_bandit("GeneratorMediated-v0", {"budgeted": (BudgetedPoGAMBITTS, {"harm_budget": budget}),
                                        "free": PoGAMBITTS}, horizon=2000, replications=16, seed=0,
               env_kwargs=ENV, progress=False, callback=rec)
    assert rec.violation_rate("budgeted", budget)[-1] <= level
    assert rec.expected_harm("budgeted")[:, -500:].mean() <= budget
    assert rec.violation_rate("free", budget)[-1] > 0.5  # the budget binds: unrestricted TS breaks it


def test_with_no_action_within_budget_the_least_harmful_is_played():
    venv = _venv(4)
    obs, _ = venv.reset(seed=0)
    for budget in (-1e9, 0.3):
        agent = BudgetedStandardTS.from_env(venv, seed=0, harm_budget=budget)
        for _ in range(30):
            actions = agent.act(obs)
            next_obs, rewards, _, _, info = venv.step(actions)
            agent.update(obs, actions, rewards, info)
            obs = next_obs
        ctx, x = agent.contexts.index(obs), obs
        scores = agent._sample_scores(ctx, x, np.random.default_rng(7))
        # the same draws by hand: the reward model's scores, then one harm per action
        rng = np.random.default_rng(7)
        plain = StandardTS._sample_scores(agent, ctx, x, rng)
        harm = agent.harm_posterior.sample(rng, agent._rows[:, None], agent._action_cells(ctx))
        fits = harm <= budget
        for row in range(4):
            if fits[row].any():
                np.testing.assert_array_equal(scores[row], np.where(fits[row], plain[row], -np.inf))
            else:
                assert np.isfinite(scores[row]).sum() == 1 and scores[row].argmax() == harm[row].argmin()
        if budget < 0:
            assert not fits.any()


def test_budgeted_agent_restores_its_harm_model_and_needs_a_budget():
    venv = _venv(2)
    agent = BudgetedPoGAMBITTS.from_env(venv, seed=0, harm_budget=0.3, n_offline=50)
    obs, _ = venv.reset(seed=0)
    for _ in range(20):
        actions = agent.act(obs)
        next_obs, rewards, _, _, info = venv.step(actions)
        agent.update(obs, actions, rewards, info)
        obs = next_obs
    state = agent.state_dict()
    assert any(name.startswith("harm.") for name in state["state"])
    copy = BudgetedPoGAMBITTS.from_env(venv, seed=5, harm_budget=0.3, n_offline=50)
    copy.load_state_dict(state)
    np.testing.assert_array_equal(copy.act(obs), agent.act(obs))
    with pytest.raises(TypeError, match="harm_budget is required"):
        BudgetedStandardTS.from_env(venv, seed=0)
    plain = gym.make_vec("GeneratorMediated-v0", num_envs=2, vectorization_mode="vector_entry_point")
    obs, _ = plain.reset(seed=0)
    unsafe = BudgetedStandardTS.from_env(plain, seed=0, harm_budget=0.0)
    actions = unsafe.act(obs)
    _, rewards, _, _, info = plain.step(actions)
    with pytest.raises(KeyError, match="info\\['harm'\\]"):
        unsafe.update(obs, actions, rewards, info)


def test_harm_recorder_metrics_by_hand():
    rec = HarmRecorder()
    res = run_bandit("GeneratorMediated-v0", {"fo": FoGAMBITTS, "std": StandardTS}, horizon=25, replications=6,
                     seed=2, env_kwargs=ENV, progress=False, callback=rec, block_size=4)
    assert res.cumulative_regret["fo"].shape == (6, 25)
    harm = rec._get("std", "harm")
    assert harm.shape == (6, 25) and not np.isnan(harm).any()
    by_hand = np.cumsum(harm, axis=1) / np.arange(1, 26)
    np.testing.assert_allclose(rec.cumulative_mean_harm("std"), by_hand)
    np.testing.assert_array_equal(rec.violation_rate("std", 0.1), (by_hand > 0.1).mean(axis=0))
    assert 0.0 < rec.fallback_rate("std") < 1.0
    with pytest.raises(KeyError, match="no rounds recorded for 'nobody'"):
        rec.violation_rate("nobody", 0.0)


@pytest.mark.slow
def test_budgeted_agent_keeps_its_stated_level_in_the_safety_experiment():
    """The safety experiment's own config (cached-LLM, emotiveness as harm, budget 0.2, T = 1000) at 10
    replications: the budgeted agent ends over budget in at most its stated share of replications, measured by
    the experiment's harm metric; unrestricted poGAMBITTS ends over it in most (the budget binds)."""
    import dataclasses

    from agents.experiments import load_experiment
    from agents.experiments.beyond.safety import VIOLATION_LEVEL
    from agents.experiments.runner import run_config

    exp = load_experiment("safety").with_overrides(replications=10)
    config = next(c for c in exp.configs() if c.config_id == "filter=none")
    assert config.horizon == 1000 and config.agents["budgeted"]["harm_budget"] == 0.2
    config = dataclasses.replace(config, agents={k: config.agents[k] for k in ("budgeted", "poGAMBITTS")})
    result = run_config(config)
    budgeted, free = (result[a]["metrics"]["harm.violation"][:, -1] for a in ("budgeted", "poGAMBITTS"))
    assert budgeted.mean() <= VIOLATION_LEVEL, budgeted
    assert free.mean() > 0.5, free
    # the violation is the realised cumulative mean harm over the budget, as the metric's own series says
    harm = result["budgeted"]["metrics"]["harm.mean"]
    np.testing.assert_array_equal(result["budgeted"]["metrics"]["harm.violation"], (harm > 0.2).astype(float))
