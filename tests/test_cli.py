"""The ``gambit-gym`` console script (``agents.cli``): the environment's commands and the experiment commands."""

import subprocess
import sys
from pathlib import Path

import pytest

from agents.cli import main as cli
from agents.experiments import PAPER_ORDER
from tests._experiments import EXPLODING_TOML, slow_definition, write_config


def test_cli_lists_runs_and_reports(tmp_path, capsys):
    assert cli(["experiment", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in PAPER_ORDER)
    definition = slow_definition(tmp_path)
    assert cli(["experiment", "run", str(definition), "--replications", "2", "--horizon", "20", "--backend",
                "serial", "--quiet", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"1 experiment(s), 6 config(s) -> {tmp_path / 'r'}/ (backend: serial)\n")
    assert out.endswith(f"resume: 6 config file(s) in {tmp_path / 'r' / 'resume'}\n"
                        f"next: gambit-gym experiment report {tmp_path / 'r'}\n")
    assert cli(["experiment", "report", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").exists()
    # a sweep of one's own: no findings, only where the report is
    assert capsys.readouterr().out == f"report written to {tmp_path / 'r' / 'report.md'}\n"
    assert cli(["experiment", "run", "nonexistent.toml", "--out", str(tmp_path / "r")]) == 2
    assert "no such experiment file" in capsys.readouterr().err


def test_cli_report_prints_each_finding_and_why_one_is_undecided(tmp_path, capsys):
    from agents.experiments import load_experiment

    noise = load_experiment("noise-linear").with_overrides(horizon=10, replications=5)
    write_config(tmp_path, noise, {f"noise_level={i}": {"poGAMBITTS": 10 + 20 * i, "StdTS": 100 + 10 * i}
                                   for i in range(5)})
    (tmp_path / "noise-linear" / "noise_level=0.csv").unlink()
    assert cli(["experiment", "report", str(tmp_path), "--no-plots"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "[undecided] poGAMBITTS has much lower regret than standard TS at low noise: "
        "no finished config noise_level=0 in noise-linear",
        "[reproduced] poGAMBITTS's advantage shrinks as the reward noise sigma_Y grows",
        f"report written to {tmp_path / 'report.md'}",
    ]
    assert cli(["experiment", "report", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_cli_exit_codes_for_failed_configs_and_bad_options(tmp_path, capsys):
    definition = tmp_path / "exploding.toml"
    definition.write_text(EXPLODING_TOML)
    assert cli(["experiment", "run", str(definition), "--backend", "serial", "--quiet",
                "--out", str(tmp_path)]) == 1
    assert "tiny/n_actions=5: RuntimeError: boom" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "tiny").glob("*.csv")] == ["n_actions=3.csv"]
    assert cli(["experiment", "run", "arms", "--replications", "0", "--out", str(tmp_path)]) == 2
    assert "replications: expected an integer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli(["experiment", "run", "arms", "--backend", "slurm"])
    assert exc.value.code == 2 and "invalid choice: 'slurm'" in capsys.readouterr().err


def test_cli_mounts_the_environment_commands(capsys):
    assert cli(["describe", "--option", "n_actions=3"]) == 0
    assert "expected reward mu(a, x)" in capsys.readouterr().out
    assert cli(["describe", "--variant", "no-such-variant"]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_the_installed_console_script(tmp_path):
    """``gambit-gym`` as installed by pip (``[project.scripts]``): one parser with every command."""
    script = Path(sys.executable).with_name("gambit-gym")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable}: pip install -e . installs it")
    helped = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "{describe,cache,experiment,sanity}" in helped.stdout
    described = subprocess.run([script, "describe"], capture_output=True, text=True, check=True)
    assert "expected reward mu(a, x)" in described.stdout
    listed = subprocess.run([script, "experiment", "list"], capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines()[0].startswith("arms ")
    missing = subprocess.run([script, "experiment", "report", str(tmp_path)], capture_output=True, text=True)
    assert missing.returncode == 2 and "no experiment folders" in missing.stderr
