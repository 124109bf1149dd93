"""The report: loading results, tables and plots, and the findings declared beside the paper's experiments."""

import tomllib

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


def test_every_paper_finding_is_decided_from_the_paper_experiments(tmp_path):
    """Results shaped by the shipped TOMLs (their labels, their sweeps) decide every finding: a label renamed
    in a TOML and not in its finding fails here."""
    for exp in named_experiments().values():
        small = exp.with_overrides(horizon=10, replications=5)
        finals = {c.config_id: {a: 10 + 5 * i + 20 * j for j, a in enumerate(c.agents)}
                  for i, c in enumerate(small.configs())}
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
