"""The arms-large experiment (K up to 200) and its finding: decided from the numbers by the stated criteria."""

import tomllib

import pytest

from agents.experiments import Experiment, check_findings, load_experiment, load_results, run_experiments
from agents.experiments.beyond.arms_large import grows_up_to_k200
from agents.experiments.config import BEYOND_DIR
from tests._experiments import write_config

CLAIM = grows_up_to_k200.claim
KS = (10, 20, 50, 100, 200)


def small():
    return load_experiment("arms-large").with_overrides(horizon=10, replications=5)


def decide(tmp_path, finals):
    """The finding's decision from results with these final regrets: ``finals[K][agent]``."""
    exp = small()
    write_config(tmp_path, exp, {f"n_actions={k}": v for k, v in finals.items()})
    (result,) = [f for f in check_findings(load_results(tmp_path)) if f.claim == CLAIM]
    return result


def test_the_experiment_sweeps_k_up_to_200_with_the_four_agents():
    exp = load_experiment("arms-large")
    assert exp.definition()["env"]["variant"] == "synthetic"
    configs = exp.configs()
    assert [c.config_id for c in configs] == [f"n_actions={k}" for k in KS]
    assert all(set(c.agents) == {"poGAMBITTS", "foGAMBITTS", "StdTS", "LinTS"} for c in configs)


def test_growing_advantages_are_reproduced(tmp_path):
    finals = {k: {"poGAMBITTS": 50, "foGAMBITTS": 100, "StdTS": 100 + 10 * k, "LinTS": 120 + 8 * k} for k in KS}
    result = decide(tmp_path, finals)
    assert result.status == "reproduced"
    assert "StdTS - poGAMBITTS: K=10: +150.0, K=20: +250.0" in result.evidence


def test_a_gambitts_agent_falling_behind_makes_it_partly_reproduced(tmp_path):
    """foGAMBITTS losing ground to both baselines as K grows (its advantage shrinks): partly reproduced."""
    finals = {k: {"poGAMBITTS": 50, "foGAMBITTS": 100 + 20 * k, "StdTS": 100 + 10 * k, "LinTS": 100 + 10 * k}
              for k in KS}
    result = decide(tmp_path, finals)
    assert result.status == "partly reproduced"
    assert "StdTS - foGAMBITTS" in result.evidence and "does not grow" in result.evidence


def test_an_advantage_within_the_noise_does_not_grow(tmp_path):
    """A rank correlation of 1 is not enough: the K=200 advantage must beat the K=10 one by 1.96 SE."""
    finals = {k: {"poGAMBITTS": 50, "foGAMBITTS": 50, "StdTS": 100 + k / 1000, "LinTS": 100 + k / 1000} for k in KS}
    result = decide(tmp_path, finals)
    assert result.status == "not reproduced"
    assert "Spearman rho 1.00" in result.evidence


def test_a_missing_agent_leaves_its_pairs_out(tmp_path):
    """Run without foGAMBITTS: decided from poGAMBITTS's two pairs, the other two named as undecided."""
    data = tomllib.loads((BEYOND_DIR / "arms-large.toml").read_text(encoding="utf-8"))
    del data["agents"]["foGAMBITTS"]
    exp = Experiment.from_dict(data).with_overrides(horizon=10, replications=5)
    finals = {f"n_actions={k}": {"poGAMBITTS": 50, "StdTS": 100 + 10 * k, "LinTS": 100 + 10 * k} for k in KS}
    write_config(tmp_path, exp, finals)
    (result,) = [f for f in check_findings(load_results(tmp_path)) if f.claim == CLAIM]
    assert result.status == "reproduced"
    assert "undecided foGAMBITTS vs StdTS: 0 values of n_actions in arms-large" in result.evidence


@pytest.mark.slow
def test_a_short_real_run_is_decided(tmp_path):
    """The real agents at K up to 200 for 30 rounds: the run finishes and the finding is decided."""
    exp = load_experiment("arms-large").with_overrides(horizon=30, replications=2)
    run_experiments([exp], tmp_path, backend="serial", progress=False)
    (result,) = [f for f in check_findings(load_results(tmp_path)) if f.claim == CLAIM]
    assert result.status != "undecided", result.evidence
