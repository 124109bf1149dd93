"""Experiment definitions: the paper's named experiments, TOML files, sweeps and their errors."""

import gymnasium as gym
import pytest

from agents.experiments import PAPER_ORDER, Experiment, ExperimentError, load_experiment, named_experiments, report
from agents.experiments import config as config_module
from agents.experiments.beyond import FINDINGS as BEYOND_FINDINGS
from agents.experiments.config import BEYOND_DIR, PAPER_DIR, resolve_agent_type
from agents.experiments.findings import FindingCheck
from agents.experiments.paper import FINDINGS
from gambit_gym import ENV_ID
from tests._experiments import ROOT, TINY


def test_named_experiments_cover_the_papers_grid():
    exps = named_experiments()
    beyond = sorted(p.stem for p in BEYOND_DIR.glob("*.toml"))
    assert list(exps) == [*PAPER_ORDER, *beyond] and len(PAPER_ORDER) == 9
    for name in ("arms", "noise-linear", "noise-mlp", "dims", "simulation-access"):
        assert any(a["type"] == "EnsembleGAMBITTS" for a in exps[name].agents.values()), name
    assert [c.params["n_actions"] for c in exps["arms"].configs()] == ["3", "5", "15", "30", "40"]
    assert [len(c.env["working_embedding"]) for c in exps["dims"].configs()] == [3, 5, 10, 15, 20]
    assert exps["long-horizon"].horizon == 10_000 and exps["long-horizon"].env["n_actions"] == 40
    assert all(exps[name].horizon >= 1000 and exps[name].replications == 250 for name in PAPER_ORDER)


def test_experiments_beyond_the_paper_come_after_it_alphabetically(tmp_path, monkeypatch):
    """beyond/<name>.toml is discovered, listed after the paper's grid by name, and loadable by name."""
    for name in ("zeta", "alpha"):
        (tmp_path / f"{name}.toml").write_text(
            f'name = "{name}"\nhorizon = 5\nreplications = 1\nseed = 0\n[env]\nvariant = "synthetic"\n'
            '[agents.StdTS]\ntype = "StandardTS"\n')
    monkeypatch.setattr(config_module, "BEYOND_DIR", tmp_path)
    assert list(named_experiments()) == [*PAPER_ORDER, "alpha", "zeta"]
    assert load_experiment("zeta").name == "zeta" and load_experiment("arms").name == "arms"
    with pytest.raises(ExperimentError, match="'alpha', 'zeta'"):
        load_experiment("nonesuch")
    (tmp_path / "arms.toml").write_text((PAPER_DIR / "arms.toml").read_text())
    with pytest.raises(ExperimentError, match="has the name of the paper's"):
        named_experiments()


def test_findings_beyond_the_paper_are_checked_by_the_report():
    assert list(report.FINDINGS) == [*FINDINGS, *BEYOND_FINDINGS]
    assert all(isinstance(f, FindingCheck) for f in BEYOND_FINDINGS)
    for f in BEYOND_FINDINGS:
        module = f.check.__module__.rsplit(".", 1)[-1]
        assert (BEYOND_DIR / f"{module.replace('_', '-')}.toml").is_file(), f.claim


@pytest.mark.parametrize("name", PAPER_ORDER)
def test_every_named_config_makes_its_environment(name):
    for config in load_experiment(name).configs():
        env = gym.make(ENV_ID, max_episode_steps=config.horizon, **config.env)
        env.reset(seed=0)
        if "working_embedding" in config.env:
            assert env.unwrapped.embedding_dim == len(config.env["working_embedding"])


def test_each_finding_sits_beside_an_experiment_it_reads():
    """paper/<name>.py (with '-' written '_') holds the findings of <name>.toml, which each finding reads."""
    modules = {p.stem for p in PAPER_DIR.glob("*.py") if p.stem != "__init__"}
    assert modules == {"noise_linear", "arms", "long_horizon", "misspecification_1d", "hedged", "noise_mlp"}
    assert all(isinstance(f, FindingCheck) for f in FINDINGS) and len({f.claim for f in FINDINGS}) == 7
    for f in FINDINGS:
        module = f.check.__module__.rsplit(".", 1)[-1]
        assert module.replace("_", "-") in f.reads and set(f.reads) <= set(PAPER_ORDER), f.claim
        assert (PAPER_DIR / f"{module.replace('_', '-')}.toml").is_file()
    assert next(f for f in FINDINGS if "foGAMBITTS" in f.claim).reads == ("arms", "long-horizon")


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        ({"horizon": "long"}, "horizon"),
        ({"horizon": 0}, "horizon"),
        ({"seed": -1}, "seed"),
        ({"block_size": 2.5}, "block_size"),
        ({"replicates": 5}, "replicates"),
        ({"agents": {"x": {"type": "NoSuchAgent"}}}, "agents.x.type"),
        ({"agents": {"x": {"n_offline": 3}}}, "agents.x.type"),
        ({"agents": {"x": {"type": "sb3:SAC"}}}, "agents.x.type"),
        ({"sweep": {"agents.nobody.n_offline": [1, 2]}}, "agents.nobody.n_offline"),
        ({"sweep": {"env.n_actions": []}}, "env.n_actions"),
        ({"sweep": {"K": {"set": "env.n_actions", "values": [3, 5], "labels": ["a"]}}}, "sweep.K.labels"),
        ({"sweep": {"K": {"set": "env.n_actions", "values": [3], "step": 1}}}, "sweep.K.step"),
        ({"sweep": {"horizon": [10, 20]}}, "horizon"),
    ],
)
def test_malformed_definition_names_the_bad_key(edit, key):
    with pytest.raises(ExperimentError, match=key.replace(".", r"\.")):
        Experiment.from_dict({**TINY, **edit})


def test_malformed_toml_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nhorizon = 10\nreplications = 2\n[env]\n[agents.a]\ntype = "StandardTS"\n'
                    '[sweep]\n"env.n_actions" = 3\n')
    with pytest.raises(ExperimentError, match=r"bad\.toml.*env\.n_actions"):
        load_experiment(path)
    path.write_text('name = "bad"\nhorizon = 10\nreplications = 0\n[env]\n[agents.a]\ntype = "StandardTS"\n')
    with pytest.raises(ExperimentError, match=r"bad\.toml: replications: expected an integer in \[1, inf\], got 0"):
        load_experiment(path)
    path.write_text("name = [unclosed")
    with pytest.raises(ExperimentError, match="not valid TOML"):
        load_experiment(path)
    with pytest.raises(ExperimentError, match="neither a named experiment"):
        load_experiment("no-such-experiment")


def test_overrides_are_checked_and_leave_the_original_alone():
    exp = Experiment.from_dict(TINY)
    short = exp.with_overrides(horizon=7, seed=3)
    assert (short.horizon, short.replications, short.seed) == (7, 3, 3) and exp.horizon == 40
    with pytest.raises(ExperimentError, match="horizon: expected an integer"):
        exp.with_overrides(horizon=2.0)
    with pytest.raises(ExperimentError, match="seed"):
        exp.with_overrides(seed=-1)


def test_sweep_long_form_sets_several_keys_with_labels():
    exp = Experiment.from_dict({**TINY, "sweep": {"M": {"set": ["agents.po.n_offline", "agents.ens.n_offline"],
                                                        "values": [10, 30], "labels": ["small", "big"]}}})
    configs = exp.configs()
    assert [c.config_id for c in configs] == ["M=small", "M=big"]
    assert configs[1].agents["po"]["n_offline"] == 30 and configs[1].agents["ens"]["n_offline"] == 30


def test_sb3_agents_are_named_by_algorithm():
    exp = Experiment.from_dict({**TINY, "agents": {"ppo": {"type": "sb3:PPO", "n_steps": 8}}})
    assert resolve_agent_type(exp.agents["ppo"]["type"]) == "sb3:PPO"  # run_bandit runs it by name
    assert resolve_agent_type("StandardTS").__name__ == "StandardTS"
    with pytest.raises(ExperimentError, match="cannot import"):
        resolve_agent_type("no_such_module:Agent")


def test_configs_that_would_share_a_file_are_refused():
    with pytest.raises(ExperimentError, match="same results file"):
        Experiment.from_dict({**TINY, "sweep": {"L": {"set": "env.n_actions", "values": [3, 4],
                                                      "labels": ["a b", "a_b"]}}}).configs()
    with pytest.raises(ExperimentError, match="results column"):
        Experiment.from_dict({**TINY, "sweep": {"agent": {"set": "env.n_actions", "values": [3, 4]}}})


def test_the_example_sweep_file_is_valid():
    exp = load_experiment(ROOT / "examples" / "my_sweep.toml")
    exp.validate()
    assert [c.config_id for c in exp.configs()][:2] == ["n_actions=3,noise_level=0", "n_actions=3,noise_level=2"]
