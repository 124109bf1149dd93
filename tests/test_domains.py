"""Domain files: the shipped ones, what they declare, validation that names file and key, and the README's
walk-through from a CSV of your own to a regret plot."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from gambit_gym.cache import load_cache
from gambit_gym.domains import DOMAIN_DIR, DomainError, domain_from_text, load_domain, shipped_domains
from gambit_gym.scenarios.cached_llm import cache_domain

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
name = "m"
prompts = ["a", "b"]

[styles.s]
positive = ["Yes."]
negative = ["No."]
"""


# -- the shipped domains ---------------------------------------------------------------------------------
def test_shipped_domains_load_and_their_caches_fit_them():
    assert shipped_domains() == ["mhealth", "study_nudges"]
    for name in shipped_domains():
        domain = load_domain(name)
        assert domain.name == name and Path(domain.source) == DOMAIN_DIR / f"{name}.toml"
        assert load_domain(DOMAIN_DIR / f"{name}.toml") is domain  # loaded once per file version
        cache = load_cache(domain.cache)
        assert cache_domain(cache).name == name
        assert set(cache.prompt_ids) == set(domain.prompt_ids) and cache.style_dimensions == domain.style_dimensions


def test_the_mhealth_domain_asks_for_the_papers_messages():
    """The requests are those that generated the bundled cache, word for word."""
    d = load_domain("mhealth")
    messages = d.messages(d.prompt("not actionable"), {"location": "other", "previous_day_steps": "more than 15,000"})
    assert messages == [
        {"role": "system", "content": "You write push notifications for a step-counting mobile health app. Reply "
                                      "with the notification text only: no greeting line, no quotes, no explanations."},
        {"role": "user", "content": "Write a single 2-3 sentence app message encouraging the user to take more steps "
                                    "today. Mention that they took about 3,000 steps yesterday and that they are at "
                                    "the park. Make the message mildly cheerful."},
        {"role": "assistant", "content": "Yesterday you walked about 3,000 steps, a solid start! You're at the park "
                                         "right now, so why not add one extra lap on the path before you head off?"},
        {"role": "user", "content": "Write a single 2-3 sentence app message encouraging the user to take more steps "
                                    "today. Mention that they took more than 15,000 steps yesterday and that they are "
                                    "out and about (not at home or work). Make the message mildly not actionable."},
    ]
    # a cache built without the step factor says "an unknown number of" steps (the tiny test build does)
    assert "they took an unknown number of steps yesterday and that they are at home" in d.instruction(
        d.prompt("formal"), {"location": "home"})
    assert [(p.id, p.dimension, p.pole) for p in d.prompts[:4]] == [
        ("optimistic", "optimism", 1), ("pessimistic", "optimism", -1), ("formal", "formality", 1),
        ("informal", "formality", -1)]
    assert d.contexts.n_contexts == 12 and d.contexts.describe(5) == {"location": "work",
                                                                      "previous_day_steps": "5,000-9,999"}


def test_the_mhealth_domain_holds_the_papers_outcome_models():
    d = load_domain("mhealth")
    lin = d.outcomes["linear-3d"]
    assert (lin.dimensions, lin.coefficients, lin.intercept, lin.field_noise_sd) == (
        ("optimism", "formality", "severity"), (0.35232, -0.49944, -0.15796), 82.83602, 24.5712)
    assert d.outcomes["linear-1d"].coefficients == (-0.13961,) and d.outcomes["mlp"].field_noise_sd == 24.3797
    effects = d.outcomes["linear-3d-context"].context_effects
    assert effects["location"] == {"home": -0.035, "work": 0.035, "other": 0.0}
    assert list(effects["previous_day_steps"].values()) == [0.026 * k for k in range(4)]
    assert d.default_outcome == "linear-3d" and d.calibrations["paper"].style_sd == pytest.approx((0.70978 / 3) ** 0.5)


def test_the_synthetic_variants_take_their_defaults_from_the_mhealth_domain():
    from gambit_gym.scenarios import make_scenario

    s = make_scenario("synthetic")
    assert s.contexts.factors == load_domain("mhealth").contexts.factors
    assert s.noise_levels[-1] == load_domain("mhealth").outcomes["linear-3d"].field_noise_sd


def test_domain_filters_reject_copies_and_run_only_when_listed():
    d = load_domain("mhealth")
    filters = d.text_filters()
    assert filters.names == ["emoji", "repetition", "echo", "placeholder", "off-topic", "length"]
    copy = "Great news! Yesterday you walked about 3,000 steps, a solid start! You're at the park right now."
    assert filters.reason(copy, {"id": "optimistic"}) == "echo"
    assert filters.reason("Take a walk after lunch today, it will lift your mood nicely.", {"id": "formal"}) is None
    assert d.text_filters(["length"]).reason("Walk.") == "length" and d.text_filters([]).reason("Walk.") is None


# -- validation: the file, the key, what was expected ----------------------------------------------------
BROKEN = [
    ('name = "m"', "name = 3", r"name: expected a name of letters, digits, '_', '-' or '.', got int 3"),
    ('prompts = ["a", "b"]', "prompts = [3]", r"prompts\[0\]: expected a prompt id \(a string: write \"3\", not 3\)"),
    ('prompts = ["a", "b"]', 'prompts = ["a", "a"]', r"prompts\[1\].id: 'a' is not unique"),
    ('prompts = ["a", "b"]', 'prompts = [{ id = "a", dimension = "x", pole = 1 }]',
     r"prompts\[0\].dimension: expected one of the \[styles\] dimensions \['s'\], got str 'x'"),
    ('prompts = ["a", "b"]', 'prompts = [{ id = "a", dimension = "s" }]',
     r"prompts\[0\]: give both dimension and pole"),
    ('prompts = ["a", "b"]', 'promts = ["a"]\nprompts = ["a"]', r"\(top level\): unknown key\(s\) \['promts'\]"),
    ('negative = ["No."]', "", r"styles.s: expected positive and negative exemplar sentences, or given = true"),
    ('negative = ["No."]', 'negative = ["No."]\n[filters.profanity]', r"filters.profanity: unknown filter 'profanity'"),
    ('negative = ["No."]', 'negative = ["No."]\n[filters.off-topic]', r"filters.off-topic: keywords: required"),
    ('negative = ["No."]', 'negative = ["No."]\n[filters.length]\nmin_words = 0',
     r"filters.length: min_words: expected a positive integer"),
    ('negative = ["No."]', 'negative = ["No."]\n[generation]\ntemplate = "Write {tone}."',
     r"generation.template: unknown field \{tone\}; expected fields among \['id'\]"),
    ('negative = ["No."]', 'negative = ["No."]\n[generation]\ntemplate = "Write {id.__class__}."',
     r"generation.template: field \{id.__class__\} must be a plain name"),
    ('negative = ["No."]', 'negative = ["No."]\n[outcomes.o]\ndimensions = ["s"]\ncoefficients = [1, 2]\n'
                           'intercept = 0\nfield_noise_sd = 1',
     r"outcomes.o.coefficients: expected 1 numbers, one per dimension"),
    ('negative = ["No."]', 'negative = ["No."]\n[outcomes.o]\ndimensions = ["t"]\ncoefficients = [1]\n'
                           'intercept = 0\nfield_noise_sd = 1',
     r"outcomes.o.dimensions: unknown style dimension\(s\) \['t'\]; the domain's are \['s'\]"),
    ('negative = ["No."]', 'negative = ["No."]\n[outcomes.o]\ndimensions = ["s"]\ncoefficients = [1]\n'
                           'intercept = 0\nfield_noise_sd = -1', r"outcomes.o.field_noise_sd: expected a number >= 0"),
    ('negative = ["No."]', 'negative = ["No."]\n[outcomes.o]\ntype = "mlp"\ndimensions = ["s"]\nintercept = 0\n'
                           'field_noise_sd = 1', r"outcomes.o: give exactly one of spread_like .* and spread"),
    ('name = "m"', 'name = "m"\ndefault_outcome = "o"', r"default_outcome: expected one of the \[outcomes\] presets"),
    ('negative = ["No."]', 'negative = ["No."]\n[[contexts]]\nname = "place"\nlevels = ["a", "b"]\nphrases = ["x"]',
     r"contexts\[0\].phrases: expected one phrase per level \(2\), got 1"),
    ('negative = ["No."]', 'negative = ["No."]\n[[contexts]]\nname = "text"\nlevels = ["a"]',
     r"contexts\[0\].name: 'text' is taken"),
    ('negative = ["No."]', 'negative = ["No."]\n[[contexts]]\nname = "place"\nlevels = ["a", "b"]\n'
                           '[outcomes.o]\ndimensions = ["s"]\ncoefficients = [1]\nintercept = 0\nfield_noise_sd = 1\n'
                           'context_effects = { place = { a = 1.0 } }',
     r"outcomes.o.context_effects.place: expected one effect per level \['a', 'b'\]"),
    ('negative = ["No."]', 'negative = ["No."]\n[calibrations.c]\nstyle_sd = 1\nnoise_levels = [2, 1]',
     r"calibrations.c.noise_levels: expected a non-decreasing list"),
    ('name = "m"', 'name = "m', r"not valid TOML"),
]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN, ids=[m[:40] for _, _, m in BROKEN])
def test_a_broken_domain_file_is_an_error_naming_the_file_and_the_key(tmp_path, old, new, message):
    path = tmp_path / "broken.toml"
    assert MINIMAL.count(old) == 1
    path.write_text(MINIMAL.replace(old, new))
    with pytest.raises(DomainError, match=re.escape(str(path.resolve())) + ": " + message):
        load_domain(path)


def test_loading_names_what_is_missing():
    with pytest.raises(DomainError, match=r"nope.toml: no such domain file; the shipped domains are \['mhealth'"):
        load_domain("nope.toml")
    with pytest.raises(DomainError, match="expected a shipped domain name"):
        load_domain(3)
    d = domain_from_text(MINIMAL.replace('["Yes."]\nnegative = ["No."]', "[]\nnegative = []").replace(
        "[styles.s]\npositive = []\nnegative = []", "[styles.s]\ngiven = true"), "given.toml")
    with pytest.raises(DomainError, match=r"given.toml: prompts \['a', 'b'\] have no instruction"):
        d.check_generation()
    with pytest.raises(DomainError, match=r"styles \['s'\] are given = true: .* can only be imported"):
        domain_from_text(d.text + '\n[generation]\ntemplate = "Write {id}."\n', "given.toml").check_generation()


def test_a_domain_without_contexts_has_one_constant_context():
    d = domain_from_text(MINIMAL, "m.toml")
    assert d.contexts.n_contexts == 1 and d.contexts.features.tolist() == [[1.0]]
    assert d.cache_problems([{"id": "a", "dimension": None, "pole": None}], ["s"], [["context", ["all"]]]) == []
    assert d.cache_problems([{"id": "z"}], ["s", "t"], [["place", ["x"]]]) == [
        "prompts ['z'] are not in domain 'm'", "style dimensions ['t'] are not in domain 'm'",
        "domain 'm' has no context factors, the cache has [['place', ['x']]]"]


# -- the README: from a CSV of your own to a regret plot -------------------------------------------------
SECTION = "## Bring your own generator output"


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n([\s\S]*?)^```", text, flags=re.MULTILINE)


def run_walk_through(readme: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run the README section's steps in ``folder``: its domain file, its Python and its commands, in order."""
    from gambit_gym.cli import main as cli

    assert SECTION in readme, f"README.md lacks the section {SECTION!r}"
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    (toml,) = fenced_blocks(section, "toml")
    make_csv, run_agents = fenced_blocks(section, "python")
    (commands,) = fenced_blocks(section, "bash")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    (folder / "my_domain.toml").write_text(toml, encoding="utf-8")
    exec(compile(make_csv, "README: make the CSV", "exec"), {})
    for line in commands.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "gambit-gym" and cli(argv[1:]) == 0, line
    namespace: dict = {}
    exec(compile(run_agents, "README: run the agents", "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_the_readme_walk_through_runs_on_the_domain_file_it_shows(tmp_path, monkeypatch):
    namespace = run_walk_through((ROOT / "README.md").read_text(encoding="utf-8"), tmp_path, monkeypatch)
    cache = load_cache(tmp_path / "my_cache.npz")
    domain = cache_domain(cache)
    assert domain.name == "my_messages" and domain.text == (tmp_path / "my_domain.toml").read_text(encoding="utf-8")
    assert cache.prompt_ids == ["upbeat", "formal", "3"] and cache.contexts.n_contexts == 1
    assert cache.n_texts == 3 * 120
    regret = namespace["result"].cumulative_regret
    assert set(regret) == {"poGAMBITTS", "foGAMBITTS", "StdTS"} and all(np.all(r >= 0) for r in regret.values())
    assert (tmp_path / "my_regret.png").stat().st_size > 0


@pytest.mark.slow
def test_the_second_domain_example_runs(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "examples" / "second_domain.py"), "--replications", "3",
                           "--horizon", "100", "--out", str(tmp_path / "regret.png")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "domain: study_nudges" in done.stdout and "deadline tomorrow" in done.stdout
    for agent in ("poGAMBITTS", "foGAMBITTS", "StdTS"):
        assert f"| {agent} |" in done.stdout
    assert (tmp_path / "regret.png").stat().st_size > 10_000
