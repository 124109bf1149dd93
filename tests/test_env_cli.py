"""The environment's command line, ``gambit_gym.cli``: ``describe`` and ``cache info``, and how it mounts."""

import argparse

import pytest

from gambit_gym.cli import add_commands, build_parser, main
from gambit_gym.scenarios import make_scenario
from gambit_gym.scenarios.cached_llm import bundled_cache_path


@pytest.mark.parametrize(
    ("argv", "variant"),
    [([], "synthetic"), (["--variant", "misspecified", "-o", "view=projection", "-o", "embedding_dim=2"],
                         "misspecified"), (["--variant", "cached-llm", "--option", "outcome=mlp"], "cached-llm")],
)
def test_describe_prints_the_instance_and_its_oracle_table(argv, variant, capsys):
    assert main(["describe", *argv]) == 0
    out = capsys.readouterr().out
    assert f'"variant": "{variant}"' in out and "embedding R^2" in out
    assert "expected reward mu(a, x)" in out
    rows = out.split("columns: actions; * = optimal):\n", 1)[1].splitlines()
    assert len(rows) == 12 and all(row.count("*") == 1 for row in rows)


def test_describe_rows_are_the_exact_expected_rewards(capsys):
    assert main(["describe", "-o", "n_actions=3", "-o", "problem_seed=4"]) == 0
    rows = capsys.readouterr().out.split("* = optimal):\n", 1)[1].splitlines()
    mu = make_scenario(n_actions=3, problem_seed=4).expected_reward
    for row, expected in zip(rows, mu):
        values = [float(v.rstrip("*")) for v in row.split()[-3:]]
        assert values == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--variant", "nope"], "variant: expected one of"), (["-o", "n_actions=0"], "n_actions"),
     (["-o", "colour=red"], "unknown option")],
)
def test_describe_bad_arguments_exit_2_naming_the_parameter(argv, message, capsys):
    assert main(["describe", *argv]) == 2
    assert message in capsys.readouterr().err


def test_describe_rejects_an_option_without_a_value():
    with pytest.raises(SystemExit, match="--option: expected key=value"):
        main(["describe", "-o", "n_actions"])


def test_cache_info_on_the_bundled_cache(capsys):
    assert main(["cache", "info", str(bundled_cache_path()), "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "4800 messages, 40 prompts x 12 contexts (10-10 per cell)" in out
    assert "generator: smollm2-135m-instruct" in out and "embedder: all-MiniLM-L6-v2 (384-d)" in out
    assert "dimensions separate their poles better than chance" in out
    assert len([line for line in out.splitlines() if line.startswith("  [")]) == 2


def test_cache_info_on_a_missing_file_exits_2(tmp_path, capsys):
    assert main(["cache", "info", str(tmp_path / "none.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_only_the_environment_commands_and_they_mount_on_any_parser():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"describe", "cache"}
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cache", "info", "x.npz"])
    assert args.path == "x.npz" and callable(args.func)
