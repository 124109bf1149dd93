"""The documentation: its code runs, it agrees with the files it shows, and the CLI help it embeds is complete."""

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.cli import build_parser
from gambit_gym import __version__

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: A fenced block and the line before it: a Python block runs unless that line is ``<!-- skip-test: why -->``;
#: a block of any language after ``<!-- write-file: NAME -->`` is written to NAME first (a file the page shows).
FENCED_BLOCK = re.compile(r"(?:^(?P<before>[^\n]*)\n)?^```(?P<lang>[\w-]*)\n(?P<code>[\s\S]*?)^```", re.MULTILINE)
WRITE_FILE = re.compile(r"^<!-- write-file: (?P<name>[\w.-]+) -->$")
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def python_blocks(path: Path) -> list[str]:
    """The page's code that is meant to run, in order: its Python blocks, and code writing the files it shows."""
    code = []
    for m in FENCED_BLOCK.finditer(path.read_text(encoding="utf-8")):
        before = m.group("before") or ""
        if written := WRITE_FILE.match(before):
            code.append(f"open({written['name']!r}, 'w', encoding='utf-8').write({m.group('code')!r})\n")
        elif m.group("lang") == "python" and "skip-test" not in before:
            code.append(m.group("code"))
    return code


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(DOCS / p)])
def test_every_python_block_of_the_docs_runs(page, tmp_path):
    """Each page's blocks run in order, in one fresh interpreter, in an empty folder (files they write land there)."""
    script = tmp_path / "page.py"
    script.write_text("\n\n".join(python_blocks(DOCS / page)), encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, f"{page}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


def test_the_readme_shows_the_example_sweep_file_as_it_is():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / "examples" / "my_sweep.toml").read_text(encoding="utf-8")
    assert f"```toml\n{example}```" in readme


def test_the_bring_your_own_output_tutorial_shows_the_readmes_domain_file():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = (DOCS / "tutorials" / "own-generator.md").read_text(encoding="utf-8")
    shown = re.search(r"^<!-- write-file: my_domain.toml -->\n```toml\n([\s\S]*?)^```", page, re.MULTILINE)
    assert shown and f"```toml\n{shown.group(1)}```" in readme


def test_nothing_cites_a_spec_the_repository_does_not_have():
    files = [ROOT / "README.md", *DOCS.rglob("*.md"), *ROOT.glob("examples/*.py"),
             *ROOT.glob("gambit_gym/**/*.py"), *ROOT.glob("agents/**/*.py")]
    citing = [str(f.relative_to(ROOT)) for f in files if re.search(r"\bSPEC\b", f.read_text(encoding="utf-8"))]
    assert citing == []


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (command path, parser) under ``parser``, itself included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def test_every_cli_option_has_help_and_every_command_an_example():
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"gambit-gym {' '.join(path)} {action.dest}: no help text"
        leaf = not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        if leaf or not path:
            assert parser.epilog and "gambit-gym" in parser.epilog, f"gambit-gym {' '.join(path)}: no example"


def test_top_level_help_is_plain_text_and_version_is_the_package_version(capsys):
    parser = build_parser()
    text = parser.format_help()
    assert "``" not in text and ":func:" not in text and "examples:" in text
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"gambit-gym {__version__}\n"


def test_the_docs_render_restructuredtext_roles_as_markdown():
    spec = importlib.util.spec_from_file_location("griffe_rst", DOCS / "griffe_rst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.markdown("A :class:`~agents.results.BanditResult`, :func:`agents.run_bandit`::") == (
        "A `BanditResult`, `agents.run_bandit`:")
    args = "Args:\n    a, b: the prior.\n    Other arguments as X.\n\nReturns:\n    y"
    assert module.continue_remarks(args) == (
        "Args:\n    a, b: the prior.\n        Other arguments as X.\n\nReturns:\n    y")


def test_report_without_matplotlib_says_to_pass_no_plots(tmp_path):
    from agents.experiments import load_experiment
    from tests._experiments import write_config

    noise = load_experiment("noise-linear").with_overrides(horizon=10, replications=5)
    write_config(tmp_path, noise, {f"noise_level={i}": {"poGAMBITTS": 10 + i, "StdTS": 100 + i} for i in range(5)})
    # a Python where matplotlib cannot be imported, as without the plots extra
    code = ("import sys; sys.modules['matplotlib'] = None; from agents.cli import main; "
            f"raise SystemExit(main(['experiment', 'report', {str(tmp_path)!r}] + sys.argv[1:]))")
    without = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert without.returncode == 2 and "Traceback" not in without.stderr
    assert 'pip install "gambit-gym[plots]"' in without.stderr and "--no-plots" in without.stderr
    plain = subprocess.run([sys.executable, "-c", code, "--no-plots"], capture_output=True, text=True, cwd=ROOT)
    assert plain.returncode == 0 and (tmp_path / "report.md").exists()
