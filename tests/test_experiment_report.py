"""The report: loading results, tables and plots, and the findings declared beside the paper's experiments."""

import tomllib

import numpy as np
import pytest

from agents.experiments import (
    Experiment,
    FindingCheck,
    Undecidable,
    check_findings,
    finding,
    load_experiment,
    load_results,
    named_experiments,
    run_experiments,
    write_report,
)
from agents.experiments.config import PAPER_DIR
from agents.experiments.findings import experiment
from agents.experiments.report import FINDINGS  # the paper's findings, then those beyond it
from agents.experiments.runner import config_table, metric_rounds, read_columns
from tests._experiments import ROOT, TINY, write_config

LOW_NOISE = "poGAMBITTS has much lower regret than standard TS at low noise"
SHRINKS = "poGAMBITTS's advantage shrinks as the reward noise sigma_Y grows"
GROWS = "poGAMBITTS's advantage over standard TS grows with the number of prompts K"
FO_PAYS = "foGAMBITTS pays for learning 12 x K treatment models and needs long horizons when K is large"
HEDGING = "hedging (prompt dummies in the reward model) recovers part of the loss under misspecification"


def _small(name: str, **edits) -> Experiment:
    """A paper experiment, small, with some of its TOML's top-level keys replaced."""
    data = tomllib.loads((PAPER_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    return Experiment.from_dict({**data, **edits}).with_overrides(horizon=10, replications=5)


def _findings(root) -> dict:
    return {f.claim: f for f in check_findings(load_results(root))}


def test_findings_are_decided_from_the_numbers(tmp_path):
    noise = _small("noise-linear")
    good = {f"noise_level={i}": {"poGAMBITTS": 10 + 20 * i, "StdTS": 100 + 10 * i, "foGAMBITTS": 90,
                                 "ensemble": 50} for i in range(5)}
    write_config(tmp_path / "good", noise, good)
    findings = _findings(tmp_path / "good")
    assert findings[LOW_NOISE].status == "reproduced"
    assert findings[SHRINKS].status == "reproduced"
    # findings that read only other experiments are not listed
    assert set(findings) == {LOW_NOISE, SHRINKS}

    bad = {k: {**v, "poGAMBITTS": 120} for k, v in good.items()}
    write_config(tmp_path / "bad", noise, bad)
    findings = _findings(tmp_path / "bad")
    assert findings[LOW_NOISE].status == "not reproduced"


def test_report_reads_partial_and_foreign_results_without_crashing(tmp_path):
    """An 'arms' experiment of a user's own (no K sweep, other labels), a missing config and a stray CSV:
    the findings that read them are undecided and say why."""
    own = Experiment.from_dict({**TINY, "name": "arms", "sweep": {}})
    write_config(tmp_path, own, {"default": {"po": 10, "StdTS": 20}})
    (tmp_path / "arms" / "notes.csv").write_text("a,b\n1,2\n")
    hedged = _small("hedged")
    write_config(tmp_path, hedged, {f"embedding={e}": {"poGAMBITTS": 10, "poGAMBITTS-hedged": 5, "StdTS": 20}
                                    for e in ("true", "correlated", "unrelated")})
    (tmp_path / "hedged" / "embedding=unrelated.csv").unlink()
    findings = _findings(tmp_path)
    assert set(findings) == {GROWS, FO_PAYS, HEDGING}
    assert all(f.status == "undecided" for f in findings.values())
    assert findings[GROWS].evidence == "missing agent poGAMBITTS in arms (config default has po, StdTS)"
    assert findings[FO_PAYS].evidence == ("missing agent foGAMBITTS in arms (config default has po, StdTS); "
                                          "experiment long-horizon not in these results")
    assert findings[HEDGING].evidence == "no finished config embedding=unrelated in hedged"
    text = write_report(tmp_path).read_text()
    assert "| **undecided** | missing agent poGAMBITTS in arms" in text


def test_undecidable_findings_say_why(tmp_path):
    """Too few values of a swept parameter, a parameter not swept, a finished config missing: each named."""
    arms = _small("arms")
    write_config(tmp_path, arms, {f"n_actions={k}": {a: 10 for a in arms.agents} for k in (3, 5, 15, 30, 40)})
    for k in (5, 15, 30, 40):
        (tmp_path / "arms" / f"n_actions={k}.csv").unlink()
    noise = _small("noise-linear", sweep={"env.noise_level": [1, 2]})
    write_config(tmp_path, noise, {f"noise_level={i}": {a: 10 for a in noise.agents} for i in (1, 2)})
    findings = _findings(tmp_path)
    assert findings[GROWS].evidence == "only one value of n_actions in arms with poGAMBITTS and StdTS (needs 3)"
    assert findings[FO_PAYS].evidence == ("only one value of n_actions in arms with poGAMBITTS and foGAMBITTS "
                                          "(needs 2); experiment long-horizon not in these results")
    assert findings[LOW_NOISE].evidence == "no finished config noise_level=0 in noise-linear"
    assert findings[SHRINKS].evidence == "2 values of noise_level in noise-linear with poGAMBITTS and StdTS (needs 3)"
    assert {f.status for f in findings.values()} == {"undecided"}


def test_a_renamed_agent_label_is_named(tmp_path):
    """A label renamed in a TOML leaves its finding undecided, naming the label the finding needs."""
    agents = {("po" if label == "poGAMBITTS" else label): spec
              for label, spec in load_experiment("noise-linear").agents.items()}
    renamed = _small("noise-linear", agents=agents, sweep={"env.noise_level": [0, 1, 2]})
    write_config(tmp_path, renamed, {f"noise_level={i}": {a: 10 for a in agents} for i in range(3)})
    findings = _findings(tmp_path)
    missing = "missing agent poGAMBITTS in noise-linear (config noise_level=0 has po, foGAMBITTS, ensemble, StdTS)"
    assert findings[LOW_NOISE].evidence == findings[SHRINKS].evidence == missing


def _metric_series(exp: Experiment, level) -> dict:
    """Per config and agent, the series the experiment's safety metrics write, each constant at
    ``level(i, agent, series)`` (``i`` the config's index in the grid); the series of other metrics (``agent``,
    ``simulation_queries``) depend on the agent and the environment, and are left out."""
    names = {"harm": ["harm.mean", "harm.expected", "harm.violation"], "fallback_rate": ["fallback_rate"],
             "delivered_rate": ["delivered_rate"], "feasible_regret": ["feasible_regret"]}
    scalars = {"harm": "harm.budget", "feasible_regret": "feasible_regret.budget"}
    shape = (exp.replications, len(metric_rounds(exp.horizon)))
    out = {}
    for i, config in enumerate(exp.configs()):
        out[config.config_id] = {}
        for agent in config.agents:
            series = {name: np.full(shape, float(level(i, agent, name)))
                      for metric in exp.metrics for name in names.get(metric, [])}
            series.update({scalars[m]: 0.2 for m in exp.metrics if m in scalars})
            out[config.config_id][agent] = series
    return out


def write_with_metrics(root, exp: Experiment, finals: dict, metrics: dict) -> None:
    """``write_config``'s results plus each agent's metric series (``metrics``: config -> agent -> series)."""
    write_config(root, exp, finals)
    for config in exp.configs():
        path = root / exp.name / config.filename
        cols = read_columns(path)
        result = {}
        for agent in config.agents:
            mine = cols["agent"] == agent
            stat, value = cols["statistic"][mine], cols["value"][mine]
            result[agent] = {"mean": value[stat == "mean"], "se": value[stat == "se"], "final": value[stat == "final"],
                             "seconds": 0.0, "metrics": metrics[config.config_id][agent]}
        path.write_text(config_table(config, result))


def _safety_level(violation_budgeted):
    """Metric levels for the safety findings: the budgeted agent over budget in a share ``violation_budgeted(i)``
    of replications, the others always; rounds without the generated message growing with the grid index."""
    def level(i, agent, name):
        if name == "harm.violation":
            return violation_budgeted(i) if agent == "budgeted" else 1.0
        if name == "fallback_rate":
            return 0.1 * i
        if name == "delivered_rate":
            return 1.0 - 0.05 * i
        return 0.3
    return level


def test_every_paper_finding_is_decided_from_the_paper_experiments(tmp_path):
    """Results shaped by the shipped TOMLs (their labels, their sweeps, their metrics) decide every finding: a
    label renamed in a TOML and not in its finding fails here."""
    for exp in named_experiments().values():
        small = exp.with_overrides(horizon=10, replications=5)
        finals = {c.config_id: {a: 10 + 5 * i + 20 * j for j, a in enumerate(c.agents)}
                  for i, c in enumerate(small.configs())}
        if small.metrics:
            write_with_metrics(tmp_path, small, finals, _metric_series(small, _safety_level(lambda i: 0.0)))
        else:
            write_config(tmp_path, small, finals)
    findings = check_findings(load_results(tmp_path))
    assert [f.claim for f in findings] == [f.claim for f in FINDINGS]
    undecided = {f.claim: f.evidence for f in findings if f.status == "undecided"}
    assert not undecided


def test_a_users_own_sweep_gets_no_findings(tmp_path):
    exp = load_experiment(ROOT / "examples" / "my_sweep.toml").with_overrides(horizon=10, replications=5)
    write_config(tmp_path, exp, {c.config_id: {"poGAMBITTS": 10, "StdTS": 20} for c in exp.configs()})
    assert check_findings(load_results(tmp_path)) == []
    text = write_report(tmp_path, plots=False).read_text()
    assert "## my_sweep" in text and "finding" not in text and "| n_actions=3,noise_level=0 |" in text


def test_a_check_reads_only_the_experiments_it_declares(tmp_path):
    write_config(tmp_path, _small("hedged"), {f"embedding={e}": {"poGAMBITTS": 10, "poGAMBITTS-hedged": 5,
                                                                  "StdTS": 20} for e in ("true", "correlated",
                                                                                         "unrelated")})

    @finding("reads hedged but looks at arms", reads=("hedged",))
    def sneaky(results):
        experiment(results, "hedged")
        return "reproduced", f"{experiment(results, 'arms').name}"

    [result] = check_findings(load_results(tmp_path), [sneaky])
    assert (result.status, result.evidence) == ("undecided", "experiment arms not in these results")
    with pytest.raises(TypeError, match="reads"):
        finding("no experiments", reads="hedged")


def test_a_bug_in_a_check_propagates(tmp_path):
    """Only Undecidable means 'cannot decide'; any other error is a bug and is raised."""
    write_config(tmp_path, _small("hedged"), {f"embedding={e}": {"poGAMBITTS": 10, "poGAMBITTS-hedged": 5,
                                                                  "StdTS": 20} for e in ("true", "correlated",
                                                                                         "unrelated")})
    results = load_results(tmp_path)

    def buggy(res):
        return "reproduced", str(res["hedged"].configs[0].agents["no such label"])

    with pytest.raises(KeyError, match="no such label"):
        check_findings(results, [FindingCheck("a buggy check", ("hedged",), buggy)])
    with pytest.raises(ZeroDivisionError):
        check_findings(results, [FindingCheck("another", ("hedged",), lambda res: ("reproduced", str(1 / 0)))])
    with pytest.raises(ValueError, match="status"):
        check_findings(results, [FindingCheck("a made-up status", ("hedged",), lambda res: ("not run", ""))])

    def cannot(res):
        raise Undecidable("because")

    assert check_findings(results, [FindingCheck("undecidable", ("hedged",), cannot)])[0].evidence == "because"


BUDGET_KEPT = ("the harm-budgeted agent keeps the realised mean harm within its budget (at most 5% of replications "
               "over budget at the horizon) where unrestricted poGAMBITTS breaks it")
FALLBACKS = ("a stricter filter means more rounds without the generated message: the share of rounds that send the "
             "fallback (or nothing) grows with the filter's strictness")


def test_safety_findings_read_the_violation_and_fallback_rates(tmp_path):
    exp = load_experiment("safety").with_overrides(horizon=10, replications=4)
    finals = {c.config_id: {a: 10 for a in c.agents} for c in exp.configs()}
    cases = {"kept": (lambda i: 0.0, "reproduced"), "edge": (lambda i: 0.05, "reproduced"),
             "once": (lambda i: 0.5 if i == 3 else 0.0, "partly reproduced"),
             "never": (lambda i: 0.25, "not reproduced")}
    for name, (violation, status) in cases.items():
        write_with_metrics(tmp_path / name, exp, finals, _metric_series(exp, _safety_level(violation)))
        findings = _findings(tmp_path / name)
        assert findings[BUDGET_KEPT].status == status, findings[BUDGET_KEPT].evidence
        assert findings[FALLBACKS].status == "reproduced"
    evidence = _findings(tmp_path / "once")[BUDGET_KEPT].evidence
    assert "filter=fallback-0.5: budgeted 50.0% +- 0.0% vs poGAMBITTS 100.0%" in evidence
    fallbacks = _findings(tmp_path / "once")[FALLBACKS].evidence
    assert "fallback: rounds without the generated message (fallback_rate + 1 - delivered_rate, mean over agents) " \
           "0% rejected: 0.0%, 10% rejected: 15.0%, 30% rejected: 30.0%, 50% rejected: 45.0% (Spearman rho 1.00)" \
           in fallbacks

    # fallbacks falling with strictness in one mode: partly; the budget binding nowhere: undecided
    def shrinking(i, agent, name):
        if name == "harm.violation":
            return 0.0
        if name == "fallback_rate":
            return 0.1 * (4 - i) if 1 <= i <= 3 else 0.0
        return 1.0 - 0.05 * i if name == "delivered_rate" else 0.3

    write_with_metrics(tmp_path / "odd", exp, finals, _metric_series(exp, shrinking))
    findings = _findings(tmp_path / "odd")
    assert findings[FALLBACKS].status == "partly reproduced"
    assert findings[BUDGET_KEPT].status == "undecided"
    assert findings[BUDGET_KEPT].evidence.startswith("the budget binds in no finished config of safety")

    # results without metrics (an older run): undecided, saying what is missing
    write_config(tmp_path / "old", exp, finals)
    findings = _findings(tmp_path / "old")
    assert findings[BUDGET_KEPT].evidence == ("no harm.violation series for budgeted in safety (config filter=none); "
                                              "run it with its metrics (safety.toml's [metrics.*])")
    assert findings[FALLBACKS].status == "undecided"
    text = write_report(tmp_path / "once", plots=False).read_text()
    assert "| config | agent | harm.mean | harm.expected | harm.violation | fallback_rate | delivered_rate | " \
           "feasible_regret | harm.budget | feasible_regret.budget | harm.excess |" in text
    assert "| filter=fallback-0.5 | budgeted | 0.3 +- 0 | 0.3 +- 0 | 0.5 +- 0 | 0.3 +- 0 | 0.85 +- 0 | 0.3 +- 0 | " \
           "0.2 | 0.2 | 0.1 +- 0 |" in text


@pytest.mark.slow
def test_report_writes_plots_and_tables_from_a_real_run(tmp_path):
    exp = Experiment.from_dict(TINY)
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    path = write_report(tmp_path)
    text = path.read_text()
    assert "## tiny" in text and "| n_actions=3 |" in text
    assert "| finding | this run | evidence |" not in text  # a sweep of one's own: no paper findings
    assert (tmp_path / "regret_tiny.png").stat().st_size > 10_000
    assert (tmp_path / "final_tiny.png").stat().st_size > 10_000


def test_report_plots_a_two_parameter_sweep(tmp_path):
    exp = Experiment.from_dict({**TINY, "agents": {"StdTS": {"type": "StandardTS"}},
                                "sweep": {"env.n_actions": [3, 5], "env.noise_level": [0, 4]}})
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    write_report(tmp_path)
    assert len(load_results(tmp_path)["tiny"].configs) == 4
    assert (tmp_path / "final_tiny.png").stat().st_size > 10_000


def test_report_of_the_paper_experiments_lists_their_findings(tmp_path):
    write_config(tmp_path, _small("noise-mlp"), {f"noise_level={i}": {"poGAMBITTS": 10, "foGAMBITTS": 10,
                                                                       "ensemble": 5, "StdTS": 50} for i in range(5)})
    text = write_report(tmp_path, plots=False).read_text()
    assert "## The paper's findings, checked against this run" in text
    assert "| (gambit-gym, not the paper) the ensemble beats standard TS on the non-linear outcome at the lowest " \
           "noise | **reproduced** | noise-mlp, level 0: ensemble 5.0 +- 0.4 vs StdTS 50.0 +- 0.4 |" in text
