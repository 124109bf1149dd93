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
    assert "domain: mhealth" in out and "outcome presets: linear-1d, linear-3d, linear-3d-context, mlp" in out
    assert "generator: smollm2-135m-instruct" in out and "embedder: all-MiniLM-L6-v2 (384-d)" in out
    assert "18/20 dimensions separate their poles better than chance" in out
    rows = _info_rows(out)
    assert len(rows) == 20 and rows["vision"][2] == "0.77" and rows["actionability"][2] == "0.40"
    assert all(0 < float(row[0]) < 1 for row in rows.values())
    assert len([line for line in out.splitlines() if line.startswith("  [")]) == 2


def _info_rows(out):
    """``cache info``'s table: dimension -> [eta^2, "AUC", AUC or "-", bar]."""
    lines = [line.split() for line in out.splitlines() if line.startswith("  ") and " eta^2 " in line]
    return {words[0]: words[2:] for words in lines}


def test_cache_info_reads_each_dimensions_own_column_when_prompts_come_in_another_order(tmp_path, capsys):
    """Prompts target c then a (declared a, b, c): c's score separates c+ from c- (AUC 1), a's separates
    a+ from a- the wrong way round (AUC 0); b has no pole prompts, so no AUC, but an eta^2 like any."""
    from gambit_gym.cache.embedder import pole_separation_auc, prompt_variance_share
    from tests._domains import handmade_cache

    cache = handmade_cache(tmp_path / "h.npz")
    auc = pole_separation_auc(cache.style_scores, cache.prompt_index, cache.prompts, cache.style_dimensions)
    assert auc == {"a": 0.0, "c": 1.0}
    eta = prompt_variance_share(cache.style_scores, cache.prompt_index)
    assert eta[0] > 0.9 and eta[2] > 0.9 and eta[1] < 0.5
    assert main(["cache", "info", str(tmp_path / "h.npz")]) == 0
    out = capsys.readouterr().out
    rows = _info_rows(out)
    assert rows["a"][:3] == [f"{eta[0]:5.3f}".strip(), "AUC", "0.00"] and rows["c"][2] == "1.00"
    assert rows["b"] == [f"{eta[1]:.3f}", "AUC", "-"]
    assert "1/2 dimensions separate their poles better than chance" in out
    assert "domain: handmade" in out and "contexts: none (one context)" in out


def test_cache_info_never_crashes_without_pole_prompts(tmp_path, capsys):
    from tests._domains import handmade_cache

    handmade_cache(tmp_path / "plain.npz", prompt_ids=["plain", "c+"])  # c+ alone: no pole pair anywhere
    assert main(["cache", "info", str(tmp_path / "plain.npz")]) == 0
    out = capsys.readouterr().out
    assert "no dimension has prompts at both of its poles" in out and len(_info_rows(out)) == 3


def test_describe_prints_the_domain(capsys):
    assert main(["describe", "--variant", "cached-llm", "-o", "domain=study_nudges", "-o", "n_actions=None"]) == 0
    out = capsys.readouterr().out
    assert '"domain": "study_nudges"' in out and "domain: study_nudges" in out
    assert "prompts (6): warm, stern, playful, serious, urgent, relaxed" in out and "contexts: deadline (2)" in out


def test_cache_build_refuses_options_that_do_not_apply(tmp_path, capsys):
    out = str(tmp_path / "x.npz")
    assert main(["cache", "build", "--from-texts", "m.csv", "--out", out]) == 2
    assert "gambit-gym cache import --domain FILE m.csv" in capsys.readouterr().err
    assert main(["cache", "build", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "3", "--out", out]) == 2
    assert "--base-url, --timeout: only for --generator openai" in capsys.readouterr().err
    assert main(["cache", "build", "--domain", str(tmp_path / "none.toml"), "--out", out]) == 2
    assert "none.toml: no such domain file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cache", "import", "m.csv", "--out", out, "--per-cell", "3"])
    assert "unrecognized arguments: --per-cell 3" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cache_info_on_a_missing_file_exits_2(tmp_path, capsys):
    assert main(["cache", "info", str(tmp_path / "none.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_only_the_environment_commands_and_they_mount_on_any_parser():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"describe", "cache"}
    cache = next(a for a in sub.choices["cache"]._actions if isinstance(a, argparse._SubParsersAction))
    assert set(cache.choices) == {"build", "import", "info"}
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cache", "info", "x.npz"])
    assert args.path == "x.npz" and callable(args.func)
