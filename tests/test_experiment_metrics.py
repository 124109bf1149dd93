"""Per-round metrics of experiments: each series against a direct computation from run_bandit's rounds, the
config key's errors, the results file round trip and the report's metrics table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents import StandardTS, run_bandit
from agents.experiments import Experiment, ExperimentError, load_results, read_results, run_experiments, write_report
from agents.experiments.metrics import METRICS, MetricsRecorder, check_metrics, feasible_best
from agents.experiments.runner import config_table, metric_rounds, run_config
from agents.logged import Round
from agents.run import make_vector_env
from agents.safety import BudgetedStandardTS

# A filter on z1 with the neutral fallback for half the treatments (as in test_safety_agents), harm = z2.
SAFETY = {"checks": [{"type": "threshold", "dimension": "z1", "above_quantile": 0.5}], "attempts": 1,
          "on_reject": "fallback", "fallback": {"reward": 80.0, "embedding": [0.0, 0.0, 0.0]}, "harm": "z2"}
WITHHOLD = {**{k: v for k, v in SAFETY.items() if k != "fallback"}, "on_reject": "withhold", "no_message_reward": 79.0}
ENV = {"coefficients": [1.0, 1.0, 0.0], "context_effect_sd": 0.0, "safety": SAFETY}
BUDGET = 0.3
ALL = {"harm": {"budget": BUDGET}, "fallback_rate": {}, "delivered_rate": {}, "feasible_regret": {"budget": BUDGET},
       "agent": {}, "simulation_queries": {}}


class CountingTS(StandardTS):
    """Standard TS that reports how many rounds each row has learned from, and asks the environment's current
    generator for two treatments per row each round (counted by the environment's ``current_queries``)."""

    @classmethod
    def from_env(cls, env, seed=None, **kwargs):
        agent = super().from_env(env, seed=seed, **kwargs)
        agent.env = env
        return agent

    def _init_state(self):
        super()._init_state()
        self.learned = np.zeros(self.n_rows)

    def act(self, obs):
        for row in range(self.n_rows):
            self.env.unwrapped.sample_treatments(0, 0, 2, current=True, replication=row)
        return super().act(obs)

    def update(self, obs, action, reward, info):
        super().update(obs, action, reward, info)
        self.learned += 1

    def diagnostics(self):
        return {"learned": self.learned.copy(), "half": self.learned / 2}


class Rounds:
    """A plain callback keeping what the metrics read, per agent: ``(replications, T)`` arrays."""

    def __init__(self, replications, horizon):
        self.shape, self.data = (replications, horizon), {}

    def __call__(self, step: Round):
        store = self.data.setdefault(step.agent_name, {})
        for key in ("harm", "expected_harm", "fallback", "delivered", "played_context", "expected_reward"):
            store.setdefault(key, np.full(self.shape, np.nan))[step.replications, step.t] = step.info[key]


def _by_hand_feasible_best(reward, harm, budget):
    """The best budget-feasible reward per context, one context at a time."""
    out = []
    for r, h in zip(reward, harm):
        fits = [a for a in range(len(r)) if h[a] <= budget]
        if not fits:
            fits = [a for a in range(len(r)) if h[a] == h.min()]
        out.append(max(r[a] for a in fits))
    return np.array(out)


def test_every_series_matches_a_direct_computation_from_the_rounds():
    T, R = 150, 5  # beyond 100 rounds: the log grid of regret_rounds
    rec = MetricsRecorder(ALL, horizon=T, replications=R, budgets={"budgeted": 0.25, "counting": None})
    rounds = Rounds(R, T)

    def both(step):
        rec(step)
        rounds(step)

    res = run_bandit("GeneratorMediated-v0", {"counting": CountingTS,
                                              "budgeted": (BudgetedStandardTS, {"harm_budget": 0.25})},
                     horizon=T, replications=R, seed=3, env_kwargs=ENV, progress=False, callback=both, block_size=3)
    at = metric_rounds(T) - 1
    t = np.arange(1, T + 1)
    env = make_vector_env("GeneratorMediated-v0", 1, T, ENV)
    scenario = env.unwrapped.scenario
    for agent, budget in (("counting", BUDGET), ("budgeted", 0.25)):  # the agent's own budget comes first
        got, d = rec.results(agent), rounds.data[agent]
        mean_harm = np.cumsum(d["harm"], axis=1) / t
        np.testing.assert_allclose(got["harm.mean"], mean_harm[:, at], rtol=1e-12)
        np.testing.assert_allclose(got["harm.expected"], (np.cumsum(d["expected_harm"], axis=1) / t)[:, at],
                                   rtol=1e-12)
        np.testing.assert_array_equal(got["harm.violation"], (mean_harm[:, at] > budget).astype(float))
        assert got["harm.budget"] == budget and got["feasible_regret.budget"] == budget
        np.testing.assert_allclose(got["fallback_rate"], (np.cumsum(d["fallback"], axis=1) / t)[:, at])
        np.testing.assert_allclose(got["delivered_rate"], (np.cumsum(d["delivered"], axis=1) / t)[:, at])
        best = _by_hand_feasible_best(scenario.expected_reward, scenario.expected_harm, budget)
        per_round = best[d["played_context"].astype(int)] - d["expected_reward"]
        np.testing.assert_allclose(got["feasible_regret"], np.cumsum(per_round, axis=1)[:, at], atol=1e-9)
    # the filter sends the fallback in some rounds and never withholds
    assert 0 < rec.results("counting")["fallback_rate"][:, -1].mean() < 1
    assert (rec.results("counting")["delivered_rate"] == 1).all()
    # the agent's diagnostics when it acted at each recorded round: it had learned from the rounds before
    counting = rec.results("counting")
    np.testing.assert_array_equal(counting["agent.learned"], np.broadcast_to(at, (R, len(at))))
    np.testing.assert_array_equal(counting["agent.half"], np.broadcast_to(at / 2, (R, len(at))))
    # two current-generator queries per row each round, counted by the environment since its reset
    np.testing.assert_array_equal(counting["simulation_queries"], np.broadcast_to(2 * (at + 1), (R, len(at))))
    budgeted = rec.results("budgeted")
    assert not any(k.startswith("agent.") for k in budgeted)  # no diagnostics(): nothing recorded
    np.testing.assert_array_equal(budgeted["simulation_queries"], 0)
    # the metrics only watch: the same run without them gives the same regrets
    plain = run_bandit("GeneratorMediated-v0", {"counting": CountingTS,
                                                "budgeted": (BudgetedStandardTS, {"harm_budget": 0.25})},
                       horizon=T, replications=R, seed=3, env_kwargs=ENV, progress=False, block_size=3)
    for agent in ("counting", "budgeted"):
        np.testing.assert_array_equal(plain.cumulative_regret[agent], res.cumulative_regret[agent])


def test_feasible_regret_is_the_regret_when_every_action_fits_and_withholding_shows_in_the_delivered_rate():
    T, R = 40, 4
    rec = MetricsRecorder({"feasible_regret": {"budget": 1e9}, "delivered_rate": {}, "fallback_rate": {}}, T, R)
    env = {**ENV, "safety": WITHHOLD}
    res = run_bandit("GeneratorMediated-v0", {"std": StandardTS}, horizon=T, replications=R, seed=1, env_kwargs=env,
                     progress=False, callback=rec)
    got = rec.results("std")
    np.testing.assert_allclose(got["feasible_regret"], res.cumulative_regret["std"][:, rec.columns], atol=1e-9)
    assert (got["fallback_rate"] == 0).all() and got["delivered_rate"][:, -1].mean() < 1


def test_feasible_best_falls_back_on_the_least_harmful_action():
    reward = np.array([[5.0, 4.0, 3.0, 1.0], [5.0, 4.0, 3.0, 1.0], [5.0, 4.0, 3.0, 1.0]])
    harm = np.array([[0.5, 0.2, 0.1, 0.0], [0.9, 0.8, 0.7, 0.7], [0.1, 0.1, 0.1, 0.1]])
    np.testing.assert_array_equal(feasible_best(reward, harm, 0.2), [4.0, 3.0, 5.0])
    np.testing.assert_array_equal(feasible_best(reward, harm, 0.2), _by_hand_feasible_best(reward, harm, 0.2))
    with pytest.raises(ValueError, match="one shape"):
        feasible_best(reward, harm[:, :2], 0.2)


def test_metrics_that_the_environment_cannot_give_are_skipped_or_refused():
    rec = MetricsRecorder(["simulation_queries", "agent"], horizon=3, replications=2)
    info = {"regret": np.zeros(2)}
    rows = np.arange(2)
    for t in range(3):  # an environment without current_queries and an agent without diagnostics()
        rec(Round("a", object(), t, rows, np.zeros((2, 1)), np.zeros(2), np.zeros(2), info, object()))
    assert rec.results("a") == {}
    with pytest.raises(KeyError, match="no rounds recorded for 'b'"):
        rec.results("b")

    class BadDiagnostics:
        def diagnostics(self):
            return {"x": np.zeros(5)}

    with pytest.raises(ValueError, match=r"diagnostics\(\)\['x'\] has shape \(5,\); expected \(2,\)"):
        rec(Round("a", BadDiagnostics(), 0, rows, np.zeros((2, 1)), np.zeros(2), np.zeros(2), info, object()))


def test_bad_metrics_get_clear_errors():
    allowed = str(sorted(METRICS))
    with pytest.raises(ValueError, match=f"unknown metric 'harms'; allowed: {allowed}".replace("[", r"\[")):
        check_metrics(["harms"])
    with pytest.raises(ValueError, match=r"metrics.harm.budgt: unknown option; options of 'harm': \['budget'\]"):
        check_metrics({"harm": {"budgt": 0.2}})
    with pytest.raises(ValueError, match=r"metrics.fallback_rate.budget: unknown option; options of 'fallback_rate': "
                                         r"\[\]"):
        check_metrics({"fallback_rate": {"budget": 0.2}})
    with pytest.raises(TypeError, match="metrics.harm.budget: expected a real number"):
        check_metrics({"harm": {"budget": "low"}})
    with pytest.raises(ValueError, match="listed twice"):
        check_metrics(["harm", "harm"])
    with pytest.raises(ValueError, match="expected a list of metric names or a table"):
        check_metrics("harm")
    with pytest.raises(ValueError, match="metrics.feasible_regret: needs a budget"):
        MetricsRecorder(["feasible_regret"], horizon=5, replications=2)

    base = {"name": "m", "horizon": 5, "replications": 2, "env": ENV, "agents": {"std": {"type": "StandardTS"}}}
    with pytest.raises(ExperimentError, match=r"<dict>: metrics: unknown metric 'harms'; allowed: \['agent'"):
        Experiment.from_dict({**base, "metrics": ["harms"]})
    with pytest.raises(ExperimentError, match="<dict>: metrics: unknown metric {'name': 'harm'}"):
        Experiment.from_dict({**base, "metrics": [{"name": "harm"}]})
    with pytest.raises(ExperimentError, match="<dict>: metrics.harm.budget: expected a real number"):
        Experiment.from_dict({**base, "metrics": {"harm": {"budget": [0.2]}}})
    # needs a budget: the agent has none of its own, the metric none either
    with pytest.raises(ExperimentError, match="config default: metrics.feasible_regret: agent 'std' has no "
                                              "harm_budget; give the metric a budget"):
        Experiment.from_dict({**base, "metrics": ["feasible_regret"]}).validate(check_memory=False)
    with pytest.raises(ExperimentError, match="config default: metrics.harm: needs an environment with a safety "
                                              "layer"):
        Experiment.from_dict({**base, "env": {}, "metrics": ["harm"]}).validate(check_memory=False)
    no_harm = {**ENV, "safety": {k: v for k, v in SAFETY.items() if k != "harm"}}
    with pytest.raises(ExperimentError, match="metrics.harm: needs a safety layer whose 'harm' is defined"):
        Experiment.from_dict({**base, "env": no_harm, "metrics": ["harm"]}).validate(check_memory=False)
    # an agent's own harm_budget is enough for feasible_regret
    budgeted = {"b": {"type": "agents.safety:BudgetedStandardTS", "harm_budget": 0.2}}
    Experiment.from_dict({**base, "agents": budgeted, "metrics": ["feasible_regret"]}).validate(check_memory=False)


def _experiment(**edits):
    return Experiment.from_dict({
        "name": "safe", "horizon": 120, "replications": 3, "seed": 4, "env": ENV,
        "agents": {"std": {"type": "StandardTS"}, "budgeted": {"type": "agents.safety:BudgetedStandardTS",
                                                               "harm_budget": 0.25}},
        "metrics": {"harm": {"budget": BUDGET}, "fallback_rate": {}, "feasible_regret": {"budget": BUDGET}},
        "sweep": {"mode": {"set": "env.safety", "values": [SAFETY, WITHHOLD], "labels": ["fallback", "withhold"]}},
        **edits})


def test_results_file_round_trip_and_report(tmp_path):
    exp = _experiment()
    files = run_experiments([exp], tmp_path, backend="serial", progress=False)["safe"]
    direct = run_config(exp.configs()[0])
    rows = read_results(files[0])
    stats = {r["statistic"] for r in rows}
    assert {"harm.mean", "harm.expected", "harm.violation", "harm.budget", "fallback_rate", "feasible_regret",
            "feasible_regret.budget", "regret", "mean"} <= stats
    budget_rows = [r for r in rows if r["statistic"] == "harm.budget"]
    assert [(r["agent"], r["round"], r["replication"], r["value"]) for r in budget_rows] == \
        [("std", None, None, BUDGET), ("budgeted", None, None, 0.25)]
    n_rounds = len(metric_rounds(120))
    assert sum(r["statistic"] == "harm.mean" for r in rows) == 2 * 3 * n_rounds
    loaded = load_results(tmp_path)["safe"].configs[0]
    for agent in ("std", "budgeted"):
        curve = loaded.agents[agent]
        assert list(curve.metrics) == list(direct[agent]["metrics"])
        for name, values in direct[agent]["metrics"].items():
            np.testing.assert_array_equal(curve.metrics[name], values)  # written with repr: exact
        np.testing.assert_array_equal(curve.metric_rounds, metric_rounds(120))
        np.testing.assert_array_equal(curve.metric("harm.excess"), curve.metrics["harm.mean"] - curve.metrics[
            "harm.budget"])
        np.testing.assert_array_equal(curve.metric_final("harm.violation"), curve.metrics["harm.violation"][:, -1])
        # the regret rows are what they were
        np.testing.assert_array_equal(curve.regret, direct[agent]["regret"])
    with pytest.raises(KeyError, match="no series 'nope'"):
        loaded.agents["std"].metric("nope")
    with pytest.raises(ValueError, match="one number"):
        loaded.agents["std"].metric_final("harm.budget")
    assert json.loads((tmp_path / "safe" / "experiment.json").read_text())["metrics"] == exp.metrics

    text = write_report(tmp_path, plots=False).read_text()
    assert "| config | agent | harm.mean | harm.expected | harm.violation | harm.budget | fallback_rate |" in text
    std = loaded.agents["std"]
    last = std.metrics["harm.mean"][:, -1]
    se = last.std(ddof=1) / np.sqrt(len(last))
    assert f"| mode=fallback | std | {last.mean():.4g} +- {se:.2g} |" in text

    # a changed metrics list is a changed definition: refused on resume, like any other
    with pytest.raises(ExperimentError, match="changed: metrics"):
        run_experiments([_experiment(metrics=["harm"])], tmp_path, backend="serial", progress=False)


def test_without_metrics_files_and_definitions_are_as_before(tmp_path):
    exp = _experiment(metrics=[])
    assert "metrics" not in exp.definition()
    config = exp.configs()[0]
    result = run_config(config)
    assert all("metrics" not in r for r in result.values())
    text = config_table(config, result)
    assert {line.split(",")[4] for line in text.splitlines()[1:]} == {"mean", "se", "final", "seconds", "regret"}
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    assert all(not c.metrics for cfg in load_results(tmp_path)["safe"].configs for c in cfg.agents.values())
    assert "| config | agent |" not in write_report(tmp_path, plots=False).read_text()
