"""Domains: a world of prompts, contexts, style dimensions, filters and outcome models, declared in a TOML file.

A domain file says everything the cached-LLM environment and the cache commands
need to know about one application; nothing of it is hard-coded. The package
ships ``mhealth`` (the paper's step-count nudges, :file:`mhealth.toml`) and
``study_nudges`` (reminders from an online course, :file:`study_nudges.toml`);
:func:`load_domain` reads those by name or any file by path. A cache records the
domain it was built with, so ``gym.make(..., variant="cached-llm",
cache_path=...)`` finds its outcome presets without the file.

The keys (only ``name``, ``prompts`` and ``[styles]`` are required; an unknown
key is an error, so a typo never passes silently)::

    name = "my_domain"                  # letters, digits, "_", "-", "."
    description = "..."                 # what the world is, in words
    cache = "my_cache.npz"              # optional: its cache, relative to this file
    default_outcome = "engagement"      # optional: the outcome preset used when none is named
    prompts = [                         # the actions; a plain string is just an id
        { id = "warm", dimension = "warmth", pole = 1 },      # dimension/pole: the style it targets
        { id = "cold", dimension = "warmth", pole = -1, instruction = "Write a {deadline} reminder..." },
        "label-3",
    ]                                   # other string keys of a prompt are template fields

    [generation]                        # only needed to generate (gambit-gym cache build)
    system = "You write ..."            # optional system message
    template = "Write ... {id} ... {deadline}"   # a prompt's instruction unless it has its own;
                                        # fields: {id}, the prompt's own fields, every context factor
    [generation.example]                # optional worked example shown before each request
    prompt = { id = "cheerful" }        # its template fields
    context = { deadline = "in a week" }  # the phrase for each context factor
    reply = "..."
    [[generation.more_examples]]        # optional further worked examples, shown only to generators that
    prompt = { id = "calm" }            # ask for more than one (base models prompted few-shot)
    context = { deadline = "in a month" }
    reply = "..."

    [[contexts]]                        # zero or more factors; none = one context, observed as the
    name = "deadline"                   # constant feature 1.0
    levels = ["tomorrow", "next week"]
    phrases = ["due tomorrow", "due next week"]   # optional: how the instruction says each level
    unknown = "due soon"                # optional: the phrase when a cache is built without this factor

    [styles.warmth]                     # each style dimension: exemplar sentences of both poles ...
    positive = ["...", "..."]
    negative = ["...", "..."]
    [styles.helpfulness]                # ... or scores given with imported texts (score:helpfulness)
    given = true

    [filters.off-topic]                 # opt-in discard rules with their parameters (see
    keywords = ["course", "lesson"]     # gambit_gym.cache.filters.FILTER_PARAMETERS): emoji, repetition,
    [filters.length]                    # echo, placeholder, off-topic, length
    min_words = 6

    [outcomes.engagement]               # named outcome models on the standardised style scores
    dimensions = ["warmth"]             # linear (default type): intercept + coefficients . scores
    coefficients = [1.5]
    intercept = 30.0
    field_noise_sd = 12.0               # the residual sd in the field: the sd of noise level 4
    context_effects = { deadline = { tomorrow = 2.0, "next week" = 0.0 } }   # optional, per level
    [outcomes.nonlinear]
    type = "mlp"                        # a seeded one-hidden-layer ReLU network (weights: problem_seed)
    dimensions = ["warmth", "urgency"]
    hidden_units = 64                   # optional (64)
    spread_like = "engagement"          # per-message sd matched to a linear preset's, or spread = <sd>
    intercept = 30.0
    field_noise_sd = 12.0

    [calibrations.paper]                # optional named rescalings (env option calibration=...)
    style_sd = 0.4864                   # every standardised style score multiplied by this
    noise_levels = [0.7, 6.7, 12.6, 18.6, 24.6]   # the five noise-level sds instead of the default ones

Every error names the file, the key and what was expected.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from gambit_gym.cache.filters import TextFilters, check_filter_parameters, literal_segments
from gambit_gym.contexts import ContextSpace
from gambit_gym.validation import check_int

#: The folder of the shipped domain files (``<name>.toml``).
DOMAIN_DIR = Path(__file__).resolve().parent
#: The package's first domain. Caches written before domain files existed hold no domain record:
#: they were all built from the mHealth prompts, so they belong to it.
DEFAULT_DOMAIN = "mhealth"
#: The one context of a domain without context factors: observed as the constant feature 1.0.
SINGLE_CONTEXT: tuple[str, tuple[str, ...]] = ("context", ("all",))
#: Cap on a domain file's size (characters): it is configuration, read whole.
MAX_DOMAIN_CHARS = 4 * 2**20
OUTCOME_TYPES = ("linear", "mlp")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOP_KEYS = ("name", "description", "cache", "default_outcome", "prompts", "generation", "contexts", "styles",
             "filters", "outcomes", "calibrations")


class DomainError(ValueError):
    """A domain file (or a cache's domain record) is malformed; the message names the file and the key."""


# -- the parts of a domain -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ContextFactor:
    """One context factor: its levels and how an instruction says each (``phrases``; ``unknown`` if absent)."""

    name: str
    levels: tuple[str, ...]
    phrases: tuple[str, ...]
    unknown: str | None = None


@dataclass(frozen=True)
class StyleDimension:
    """A style dimension: exemplar sentences of its two poles, or ``given`` scores supplied on import."""

    name: str
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    given: bool = False
    description: str = ""


@dataclass(frozen=True)
class Prompt:
    """One action: ``id``; the ``dimension`` and ``pole`` (+1 / -1) it targets, if any; its own
    ``instruction`` template (None = the domain's); extra template ``fields``."""

    id: str
    dimension: str | None = None
    pole: float | None = None
    instruction: str | None = None
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def template_fields(self) -> dict[str, str]:
        """What a template may name for this prompt: ``id`` and its own fields."""
        return {"id": self.id, **dict(self.fields)}


@dataclass(frozen=True)
class OutcomeSpec:
    """A named outcome model on style dimensions (see the module docstring for the keys)."""

    name: str
    type: str
    dimensions: tuple[str, ...]
    intercept: float
    field_noise_sd: float
    coefficients: tuple[float, ...] = ()
    context_effects: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    hidden_units: int = 64
    spread_like: str | None = None
    spread: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Calibration:
    """A rescaling of the style scores (``style_sd``) with explicit noise-level sds."""

    name: str
    style_sd: float
    noise_levels: tuple[float, ...]
    description: str = ""


@dataclass(frozen=True)
class Example:
    """The worked example shown before each generation request."""

    prompt_fields: Mapping[str, str]
    context: Mapping[str, str]
    reply: str


@dataclass(frozen=True)
class Domain:
    """A parsed, validated domain file. Build one with :func:`load_domain`.

    Example:
        >>> d = load_domain("mhealth")
        >>> d.name, len(d.prompts), d.contexts.n_contexts, len(d.style_dimensions)
        ('mhealth', 40, 12, 20)
        >>> sorted(d.outcomes)
        ['linear-1d', 'linear-3d', 'linear-3d-context', 'mlp']
        >>> d.instruction(d.prompt("formal"), {"location": "work", "previous_day_steps": "0-4,999"})[-92:]
        'they took 0-4,999 steps yesterday and that they are at work. Make the message mildly formal.'
    """

    name: str
    description: str
    source: str
    text: str
    prompts: tuple[Prompt, ...]
    factors: tuple[ContextFactor, ...]
    styles: tuple[StyleDimension, ...]
    filters: Mapping[str, Mapping[str, Any]]
    outcomes: Mapping[str, OutcomeSpec]
    calibrations: Mapping[str, Calibration]
    default_outcome: str | None = None
    system: str | None = None
    template: str | None = None
    example: Example | None = None
    cache: Path | None = None
    more_examples: tuple[Example, ...] = ()

    # -- views -------------------------------------------------------------------------------------
    @property
    def prompt_ids(self) -> list[str]:
        return [p.id for p in self.prompts]

    @property
    def style_dimensions(self) -> list[str]:
        return [s.name for s in self.styles]

    @property
    def given_dimensions(self) -> list[str]:
        """The dimensions whose scores come with imported texts."""
        return [s.name for s in self.styles if s.given]

    @property
    def contexts(self) -> ContextSpace:
        """All the domain's contexts (one, :data:`SINGLE_CONTEXT`, if it declares no factor)."""
        if not self.factors:
            return ContextSpace((SINGLE_CONTEXT,))
        return ContextSpace(tuple((f.name, f.levels) for f in self.factors))

    @property
    def sha256(self) -> str:
        """Hash of the file's text: what a cache records to say which definition it was built with."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def prompt(self, prompt_id: str) -> Prompt:
        for p in self.prompts:
            if p.id == prompt_id:
                return p
        raise ValueError(f"prompt: unknown prompt {prompt_id!r} in domain {self.name!r}; expected one of "
                         f"{self.prompt_ids}")

    def factor(self, name: str) -> ContextFactor:
        for f in self.factors:
            if f.name == name:
                return f
        names = [f.name for f in self.factors]
        raise ValueError(f"context factor {name!r} is not one of domain {self.name!r}'s {names}")

    # -- generation --------------------------------------------------------------------------------
    def instruction(self, prompt: Prompt, context: Mapping[str, str]) -> str:
        """The prompt's instruction for a context ``{factor: level}``; a factor missing from ``context``
        is said with its ``unknown`` phrase."""
        template = prompt.instruction or self.template
        if template is None:
            raise ValueError(f"{self.source}: prompt {prompt.id!r} has no instruction: set [generation] template "
                             "or the prompt's instruction")
        phrases = {}
        for f in self.factors:
            if f.name in context:
                level = context[f.name]
                if level not in f.levels:
                    raise ValueError(f"context: {f.name}={level!r} is not one of {list(f.levels)}")
                phrases[f.name] = f.phrases[f.levels.index(level)]
            elif f.unknown is not None:
                phrases[f.name] = f.unknown
            else:
                raise ValueError(f"context: no level of factor {f.name!r}, which has no 'unknown' phrase")
        return template.format_map({**phrases, **prompt.template_fields})

    def messages(self, prompt: Prompt, context: Mapping[str, str], examples: int = 1) -> list[dict[str, str]]:
        """Chat messages for one generation request: system, up to ``examples`` worked examples (the
        example, then ``more_examples`` in order), then the instruction."""
        check_int("examples", examples, 0)
        out = [{"role": "system", "content": self.system}] if self.system else []
        shown = ([self.example] if self.example is not None else []) + list(self.more_examples)
        for ex in shown[:examples]:
            request = (prompt.instruction or self.template).format_map({**ex.context, **ex.prompt_fields})
            out += [{"role": "user", "content": request}, {"role": "assistant", "content": ex.reply}]
        return out + [{"role": "user", "content": self.instruction(prompt, context)}]

    def check_generation(self) -> None:
        """Raise :class:`DomainError` unless messages can be generated for every prompt."""
        missing = [p.id for p in self.prompts if not (p.instruction or self.template)]
        if missing:
            raise DomainError(f"{self.source}: prompts {missing} have no instruction; expected [generation] "
                              "template or an instruction for each prompt")
        if self.given_dimensions:
            raise DomainError(f"{self.source}: styles {self.given_dimensions} are given = true: their scores "
                              "come with imported texts, so this domain can only be imported (gambit-gym cache "
                              "import), not generated")

    def text_filters(self, names: Sequence[str] | None = None) -> TextFilters:
        """The domain's filters (all, or the ``names`` given), ready to run on messages."""
        chosen = list(self.filters) if names is None else list(names)
        unknown = [n for n in chosen if n not in self.filters]
        if unknown:
            raise ValueError(f"filters: {unknown} not declared in {self.source}; it declares "
                             f"{list(self.filters) or 'none'} (add a [filters.<name>] table)")
        sources = [self.system or "", self.example.reply if self.example else ""]
        sources += [ex.reply for ex in self.more_examples]
        for template in {p.instruction or self.template or "" for p in self.prompts}:
            sources += literal_segments(template)
        return TextFilters({n: self.filters[n] for n in chosen}, [s for s in sources if s])

    # -- outcomes ----------------------------------------------------------------------------------
    def outcome(self, spec: str | Mapping[str, Any] | None) -> OutcomeSpec:
        """A preset by name (None = ``default_outcome``) or an inline model given as a mapping with the
        keys of an ``[outcomes.<name>]`` table."""
        if spec is None:
            if self.default_outcome is None:
                raise ValueError(f"outcome: domain {self.name!r} has no default_outcome; name one of "
                                 f"{sorted(self.outcomes)} or give a model")
            spec = self.default_outcome
        if isinstance(spec, str):
            if spec not in self.outcomes:
                raise ValueError(f"outcome: unknown preset {spec!r} of domain {self.name!r}; expected one of "
                                 f"{sorted(self.outcomes)} or a model {{dimensions, coefficients, intercept, "
                                 f"field_noise_sd}} on the style dimensions {self.style_dimensions}")
            return self.outcomes[spec]
        if isinstance(spec, Mapping):
            return _outcome(_Reader("", error=ValueError), "outcome", "inline", dict(spec), self.style_dimensions,
                            self.factors, self.outcomes)
        raise ValueError(f"outcome: expected a preset name of domain {self.name!r} ({sorted(self.outcomes)}) or a "
                         f"model as a dict, got {spec!r}")

    def calibration(self, name: str) -> Calibration:
        if not isinstance(name, str) or name not in self.calibrations:
            raise ValueError(f"calibration: expected one of {sorted(self.calibrations)} (declared by domain "
                             f"{self.name!r}) or None, got {name!r}")
        return self.calibrations[name]

    # -- caches ------------------------------------------------------------------------------------
    def cache_problems(self, prompts: Sequence[Mapping[str, Any]], dimensions: Sequence[str],
                       factors: Sequence[Sequence[Any]]) -> list[str]:
        """How a cache's prompts, style dimensions and contexts disagree with this domain (empty: they fit).

        A cache may hold a subset of the domain's prompts and of its context levels (a factor left out
        is fine when the domain gives it an ``unknown`` phrase)."""
        problems = []
        known = {p.id: p for p in self.prompts}
        unknown = [p.get("id") for p in prompts if p.get("id") not in known]
        if unknown:
            problems.append(f"prompts {unknown[:10]} are not in domain {self.name!r}")
        for p in prompts:
            mine = known.get(p.get("id"))
            if mine is not None and (p.get("dimension"), p.get("pole")) != (mine.dimension, mine.pole):
                problems.append(f"prompt {mine.id!r} targets {p.get('dimension')!r}/{p.get('pole')!r}, the domain "
                                f"says {mine.dimension!r}/{mine.pole!r}")
        extra = [d for d in dimensions if d not in self.style_dimensions]
        if extra:
            problems.append(f"style dimensions {extra} are not in domain {self.name!r}")
        if not self.factors:
            if [[name, list(levels)] for name, levels in factors] != [[SINGLE_CONTEXT[0], list(SINGLE_CONTEXT[1])]]:
                problems.append(f"domain {self.name!r} has no context factors, the cache has {list(factors)}")
            return problems
        for name, levels in factors:
            mine = next((f for f in self.factors if f.name == name), None)
            if mine is None:
                problems.append(f"context factor {name!r} is not in domain {self.name!r}")
            elif set(levels) - set(mine.levels):
                problems.append(f"levels {sorted(set(levels) - set(mine.levels))} of factor {name!r} are not in "
                                f"domain {self.name!r}")
        return problems

    def summary(self) -> list[str]:
        """A few lines describing the domain (``gambit-gym describe`` and ``cache info`` print them)."""
        ctx = ", ".join(f"{f.name} ({len(f.levels)})" for f in self.factors) or "none (one context)"
        styles = ", ".join(s.name + (" (given)" if s.given else "") for s in self.styles)
        lines = [f"domain: {self.name} ({self.source})"]
        lines += [f"  {self.description}"] if self.description else []
        lines += [f"  prompts ({len(self.prompts)}): {', '.join(self.prompt_ids[:12])}"
                  + (" ..." if len(self.prompts) > 12 else ""),
                  f"  contexts: {ctx}", f"  style dimensions ({len(self.styles)}): {styles}",
                  f"  outcome presets: {', '.join(sorted(self.outcomes)) or 'none'}"
                  + (f" (default {self.default_outcome})" if self.default_outcome else ""),
                  f"  calibrations: {', '.join(sorted(self.calibrations)) or 'none'}",
                  f"  filters: {', '.join(self.filters) or 'none'}"]
        return lines


# -- loading -------------------------------------------------------------------------------------------
def shipped_domains() -> list[str]:
    """The names of the domains shipped in the package."""
    return sorted(p.stem for p in DOMAIN_DIR.glob("*.toml"))


def load_domain(spec: str | Path | Domain = DEFAULT_DOMAIN) -> Domain:
    """A shipped domain by name (``"mhealth"``), or a domain file by path; a :class:`Domain` is returned as is.

    Raises :class:`DomainError` naming the file, the key and what was expected.
    """
    if isinstance(spec, Domain):
        return spec
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise DomainError(f"domain: expected a shipped domain name ({shipped_domains()}) or a .toml file, "
                          f"got {spec!r}")
    path = Path(spec)
    if isinstance(spec, str) and spec in shipped_domains() and not path.exists():
        path = DOMAIN_DIR / f"{spec}.toml"
    if not path.is_file():
        raise DomainError(f"{spec}: no such domain file; the shipped domains are {shipped_domains()}")
    path = path.resolve()
    stat = path.stat()
    if stat.st_size > MAX_DOMAIN_CHARS:
        raise DomainError(f"{path}: {stat.st_size:,} bytes; expected a domain file of at most {MAX_DOMAIN_CHARS:,}")
    return _load_file(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load_file(path: str, mtime_ns: int, size: int) -> Domain:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DomainError(f"{path}: not UTF-8 text: {exc}") from None
    return domain_from_text(text, path, Path(path).parent)


@functools.lru_cache(maxsize=32)
def domain_from_text(text: str, source: str, folder: Path | None = None) -> Domain:
    """Parse and validate a domain file's text; ``source`` names it in errors, ``folder`` anchors ``cache``."""
    if not isinstance(text, str) or len(text) > MAX_DOMAIN_CHARS:
        raise DomainError(f"{source}: expected TOML text of at most {MAX_DOMAIN_CHARS:,} characters")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DomainError(f"{source}: not valid TOML: {exc}") from None
    return _parse(data, text, source, folder)


# -- parsing (every check names the file and the key) --------------------------------------------------
class _Reader:
    def __init__(self, source: str, error: type[Exception] = DomainError) -> None:
        self.source, self.error = source, error

    def fail(self, key: str, problem: str) -> NoReturn:
        raise self.error(f"{self.source}: {key}: {problem}" if self.source else f"{key}: {problem}")

    def expect(self, key: str, expected: str, got: Any) -> NoReturn:
        self.fail(key, f"expected {expected}, got {_show(got)}")

    def keys(self, key: str, table: Any, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
        if not isinstance(table, dict):
            self.expect(key, f"a table with keys {list(allowed)}", table)
        unknown = [k for k in table if k not in allowed]
        if unknown:
            self.fail(key, f"unknown key(s) {unknown}; expected keys among {list(allowed)}")
        missing = [k for k in required if k not in table]
        if missing:
            self.fail(key, f"missing key(s) {missing}")
        return table

    def string(self, key: str, value: Any, pattern: re.Pattern | None = None, what: str = "a non-empty string") -> str:
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)):
            self.expect(key, what, value)
        return value

    def strings(self, key: str, value: Any, distinct: bool = True, nonempty: bool = True) -> tuple[str, ...]:
        if (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)
                or (nonempty and not value) or (distinct and len(set(value)) != len(value))):
            what = "a non-empty list of " + ("distinct " if distinct else "") + "non-empty strings"
            self.expect(key, what, value)
        return tuple(value)

    def number(self, key: str, value: Any, minimum: float | None = None, strict: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.expect(key, "a finite number", value)
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            self.expect(key, f"a number {'>' if strict else '>='} {minimum}", value)
        return float(value)

    def template(self, key: str, value: Any, allowed: set[str]) -> str:
        text = self.string(key, value)
        for name in template_fields(text, lambda problem: self.fail(key, problem)):
            if name not in allowed:
                self.fail(key, f"unknown field {{{name}}}; expected fields among {sorted(allowed)} (write {{{{ and "
                               "}} for literal braces)")
        return text


def template_fields(template: str, fail: Any) -> list[str]:
    """The field names a ``str.format`` template uses; ``fail(problem)`` for anything but plain names."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        fail(f"not a valid template: {exc}")
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not _FIELD.fullmatch(name) or spec or conversion:
            fail(f"field {{{name}}} must be a plain name such as {{id}} (no index, attribute, format or conversion)")
        names.append(name)
    return names


def _parse(data: dict[str, Any], text: str, source: str, folder: Path | None) -> Domain:
    r = _Reader(source)
    r.keys("(top level)", data, _TOP_KEYS, required=("name", "prompts", "styles"))
    name = r.string("name", data["name"], _NAME, "a name of letters, digits, '_', '-' or '.'")
    description = r.string("description", data["description"]) if "description" in data else ""

    factors = _factors(r, data.get("contexts", []))
    factor_names = {f.name for f in factors}
    styles = _styles(r, data["styles"])
    dims = [s.name for s in styles]
    prompts = _prompts(r, data["prompts"], dims, factor_names)

    gen = r.keys("generation", data.get("generation", {}), ("system", "template", "example", "more_examples"))
    system = r.string("generation.system", gen["system"]) if "system" in gen else None
    template = None
    prompt_fields = [set(p.template_fields) for p in prompts]
    if "template" in gen:
        users = [f for p, f in zip(prompts, prompt_fields) if p.instruction is None] or [{"id"}]
        template = r.template("generation.template", gen["template"], set.intersection(*users) | factor_names)
    def parse_example(where: str, ex: Any) -> Example:
        ex = r.keys(where, ex, ("prompt", "context", "reply"), required=("reply",))
        ex_prompt = r.keys(f"{where}.prompt", ex.get("prompt", {}), list(ex.get("prompt", {})))
        ex_context = r.keys(f"{where}.context", ex.get("context", {}), sorted(factor_names))
        for key, table in (("prompt", ex_prompt), ("context", ex_context)):
            for k, v in table.items():
                r.string(f"{where}.{key}.{k}", v)
        example_fields = set(ex_prompt) | set(ex_context)
        for p in prompts:
            used = p.instruction or template
            if used is not None:
                missing = set(template_fields(used, lambda problem: None)) - example_fields
                if missing:
                    r.fail(where, f"lacks field(s) {sorted(missing)} used by the instruction of prompt {p.id!r}")
        return Example(dict(ex_prompt), dict(ex_context), r.string(f"{where}.reply", ex["reply"]))

    example = parse_example("generation.example", gen["example"]) if "example" in gen else None
    more = gen.get("more_examples", [])
    if not isinstance(more, list):
        r.fail("generation.more_examples", "must be a list of tables ([[generation.more_examples]])")
    if more and example is None:
        r.fail("generation.more_examples", "needs [generation.example] first")
    more_examples = tuple(parse_example(f"generation.more_examples[{i}]", ex) for i, ex in enumerate(more))

    filters = {}
    filter_table = r.keys("filters", data.get("filters", {}), list(data.get("filters", {})))
    for fname, params in filter_table.items():
        if not isinstance(params, dict):
            r.expect(f"filters.{fname}", "a table of the filter's parameters (may be empty)", params)
        try:
            filters[fname] = check_filter_parameters(fname, params)
        except ValueError as exc:
            r.fail(f"filters.{fname}", str(exc))
    for i, pattern in enumerate(filters.get("echo", {}).get("patterns", [])):
        template_fields(pattern, lambda problem, i=i: r.fail(f"filters.echo.patterns[{i}]", problem))

    outcomes: dict[str, OutcomeSpec] = {}
    table = r.keys("outcomes", data.get("outcomes", {}), list(data.get("outcomes", {})))
    # linear presets first: an MLP may match its spread to one of them
    for oname in sorted(table, key=lambda k: isinstance(table[k], dict) and table[k].get("type") == "mlp"):
        r.string(f"outcomes.{oname}", oname, _NAME, "a preset name of letters, digits, '_', '-' or '.'")
        outcomes[oname] = _outcome(r, f"outcomes.{oname}", oname, table[oname], dims, factors, outcomes)
    outcomes = {k: outcomes[k] for k in table}
    default_outcome = None
    if "default_outcome" in data:
        default_outcome = data["default_outcome"]
        if default_outcome not in outcomes:
            r.expect("default_outcome", f"one of the [outcomes] presets {sorted(outcomes)}", default_outcome)

    calibrations = {}
    cal_table = r.keys("calibrations", data.get("calibrations", {}), list(data.get("calibrations", {})))
    for cname, cal in cal_table.items():
        key = f"calibrations.{cname}"
        cal = r.keys(key, cal, ("description", "style_sd", "noise_levels"), required=("style_sd", "noise_levels"))
        levels = cal["noise_levels"]
        if (not isinstance(levels, list) or len(levels) < 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 for v in levels)
                or any(b < a for a, b in zip(levels, levels[1:]))):
            r.expect(f"{key}.noise_levels", "a non-decreasing list of noise sds >= 0, one per noise level", levels)
        calibrations[cname] = Calibration(cname, r.number(f"{key}.style_sd", cal["style_sd"], 0.0, strict=True),
                                          tuple(float(v) for v in levels),
                                          r.string(f"{key}.description", cal["description"])
                                          if "description" in cal else "")
    cache = None
    if "cache" in data:
        rel = r.string("cache", data["cache"])
        cache = (folder / rel).resolve() if folder is not None else None
    return Domain(name=name, description=description, source=source, text=text, prompts=prompts, factors=factors,
                  styles=styles, filters=filters, outcomes=outcomes, calibrations=calibrations,
                  default_outcome=default_outcome, system=system, template=template, example=example, cache=cache,
                  more_examples=more_examples)


def _factors(r: _Reader, value: Any) -> tuple[ContextFactor, ...]:
    if not isinstance(value, list):
        r.expect("contexts", "an array of [[contexts]] tables (name, levels, optional phrases and unknown)", value)
    out = []
    for i, f in enumerate(value):
        key = f"contexts[{i}]"
        f = r.keys(key, f, ("name", "levels", "phrases", "unknown"), required=("name", "levels"))
        name = r.string(f"{key}.name", f["name"], _FIELD, "a factor name of letters, digits and '_' (it is a "
                                                          "template field and a column of imported files)")
        if name in ("id", "prompt", "text") or any(name == g.name for g in out):
            r.fail(f"{key}.name", f"{name!r} is taken (by another factor, or 'id', 'prompt', 'text')")
        levels = r.strings(f"{key}.levels", f["levels"])
        phrases = r.strings(f"{key}.phrases", f["phrases"], distinct=False) if "phrases" in f else levels
        if len(phrases) != len(levels):
            r.fail(f"{key}.phrases", f"expected one phrase per level ({len(levels)}), got {len(phrases)}")
        unknown = r.string(f"{key}.unknown", f["unknown"]) if "unknown" in f else None
        out.append(ContextFactor(name, levels, phrases, unknown))
    return tuple(out)


def _styles(r: _Reader, value: Any) -> tuple[StyleDimension, ...]:
    if not isinstance(value, dict) or not value:
        r.expect("styles", "at least one [styles.<dimension>] table", value)
    out = []
    for name, s in value.items():
        key = f"styles.{name}"
        r.string(key, name, _NAME, "a dimension name of letters, digits, '_', '-' or '.'")
        s = r.keys(key, s, ("positive", "negative", "given", "description"))
        description = r.string(f"{key}.description", s["description"]) if "description" in s else ""
        given = s.get("given", False)
        if not isinstance(given, bool):
            r.expect(f"{key}.given", "true or false", given)
        if given:
            if "positive" in s or "negative" in s:
                r.fail(key, "a given dimension has no exemplars; remove positive/negative or given")
            out.append(StyleDimension(name, given=True, description=description))
            continue
        if "positive" not in s or "negative" not in s:
            r.fail(key, "expected positive and negative exemplar sentences, or given = true (scores supplied "
                        f"with imported texts as a score:{name} column)")
        out.append(StyleDimension(name, r.strings(f"{key}.positive", s["positive"], distinct=False),
                                  r.strings(f"{key}.negative", s["negative"], distinct=False), False, description))
    return tuple(out)


def _prompts(r: _Reader, value: Any, dims: list[str], factor_names: set[str]) -> tuple[Prompt, ...]:
    if not isinstance(value, list) or not value:
        r.expect("prompts", "a non-empty array of prompt ids or { id = ..., ... } tables", value)
    out, seen = [], set()
    for i, p in enumerate(value):
        key = f"prompts[{i}]"
        if isinstance(p, str):
            p = {"id": p}
        if not isinstance(p, dict):
            r.expect(key, 'a prompt id (a string: write "3", not 3) or a table { id = ..., ... }', p)
        if "id" not in p:
            r.fail(key, "missing key 'id'")
        pid = r.string(f"{key}.id", p["id"], what='a non-empty string (write "3", not 3)')
        if pid in seen:
            r.fail(f"{key}.id", f"{pid!r} is not unique; prompt ids must be distinct")
        seen.add(pid)
        dim, pole = p.get("dimension"), p.get("pole")
        if (dim is None) != (pole is None):
            r.fail(key, "give both dimension and pole (the style and the pole it targets), or neither")
        if dim is not None:
            if dim not in dims:
                r.expect(f"{key}.dimension", f"one of the [styles] dimensions {dims}", dim)
            pole = r.number(f"{key}.pole", pole)
            if pole == 0:
                r.expect(f"{key}.pole", "a non-zero number (+1 positive pole, -1 negative pole)", pole)
        fields = []
        for k, v in p.items():
            if k in ("id", "dimension", "pole", "instruction"):
                continue
            if not _FIELD.fullmatch(k) or k in factor_names:
                r.fail(f"{key}.{k}", "a template field name must be letters, digits and '_' and differ from the "
                                     f"context factors {sorted(factor_names)}")
            fields.append((k, r.string(f"{key}.{k}", v)))
        instruction = None
        if "instruction" in p:
            instruction = r.template(f"{key}.instruction", p["instruction"],
                                     {"id"} | {k for k, _ in fields} | factor_names)
        out.append(Prompt(pid, dim, pole, instruction, tuple(fields)))
    return tuple(out)


def _outcome(r: _Reader, key: str, name: str, o: Any, dims: Sequence[str], factors: Sequence[ContextFactor],
             presets: Mapping[str, OutcomeSpec]) -> OutcomeSpec:
    allowed = ("type", "description", "dimensions", "coefficients", "intercept", "field_noise_sd", "context_effects",
               "hidden_units", "spread_like", "spread")
    o = r.keys(key, o, allowed, required=("dimensions", "intercept", "field_noise_sd"))
    kind = o.get("type", "linear")
    if kind not in OUTCOME_TYPES:
        r.expect(f"{key}.type", f"one of {list(OUTCOME_TYPES)}", kind)
    used = r.strings(f"{key}.dimensions", o["dimensions"])
    unknown = [d for d in used if d not in dims]
    if unknown:
        r.fail(f"{key}.dimensions", f"unknown style dimension(s) {unknown}; the domain's are {list(dims)}")
    effects: dict[str, dict[str, float]] = {}
    table = o.get("context_effects", {})
    if not isinstance(table, dict):
        r.expect(f"{key}.context_effects", "a table {factor = {level = effect, ...}}", table)
    for fname, per_level in table.items():
        factor = next((f for f in factors if f.name == fname), None)
        if factor is None:
            r.fail(f"{key}.context_effects", f"unknown factor {fname!r}; the domain's factors are "
                                             f"{[f.name for f in factors]}")
        if not isinstance(per_level, dict) or set(per_level) != set(factor.levels):
            r.expect(f"{key}.context_effects.{fname}", f"one effect per level {list(factor.levels)}", per_level)
        effects[fname] = {lv: r.number(f"{key}.context_effects.{fname}.{lv}", per_level[lv]) for lv in factor.levels}
    spec = {"name": name, "type": kind, "dimensions": used, "intercept": r.number(f"{key}.intercept", o["intercept"]),
            "field_noise_sd": r.number(f"{key}.field_noise_sd", o["field_noise_sd"], 0.0),
            "context_effects": effects,
            "description": r.string(f"{key}.description", o["description"]) if "description" in o else ""}
    if kind == "linear":
        misplaced = [k for k in ("hidden_units", "spread_like", "spread") if k in o]
        if misplaced:
            r.fail(key, f"{misplaced} apply to type = \"mlp\" only")
        coef = o.get("coefficients")
        if not isinstance(coef, list) or len(coef) != len(used):
            r.expect(f"{key}.coefficients", f"{len(used)} numbers, one per dimension", coef)
        spec["coefficients"] = tuple(r.number(f"{key}.coefficients[{i}]", c) for i, c in enumerate(coef))
        return OutcomeSpec(**spec)
    if "coefficients" in o:
        r.fail(f"{key}.coefficients", "an MLP has seeded weights; give spread_like or spread instead")
    hidden = o.get("hidden_units", 64)
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        r.expect(f"{key}.hidden_units", "a positive integer", hidden)
    if ("spread_like" in o) == ("spread" in o):
        r.fail(key, "give exactly one of spread_like (a linear preset whose per-message spread to match) and "
                    "spread (the sd of the MLP's output over the cache's messages)")
    if "spread_like" in o:
        like = o["spread_like"]
        ref = presets.get(like) if isinstance(like, str) else None
        if ref is None or ref.type != "linear":
            linear = sorted(k for k, v in presets.items() if v.type == "linear")
            r.expect(f"{key}.spread_like", f"a linear preset among {linear}", like)
        if set(ref.dimensions) - set(used):
            r.fail(f"{key}.spread_like", f"preset {like!r} uses {list(ref.dimensions)}, not all among this model's "
                                         f"dimensions {list(used)}")
        spec["spread_like"] = like
    else:
        spec["spread"] = r.number(f"{key}.spread", o["spread"], 0.0, strict=True)
    spec["hidden_units"] = hidden
    return OutcomeSpec(**spec)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


__all__ = [
    "DEFAULT_DOMAIN",
    "DOMAIN_DIR",
    "SINGLE_CONTEXT",
    "Calibration",
    "ContextFactor",
    "Domain",
    "DomainError",
    "Example",
    "OutcomeSpec",
    "Prompt",
    "StyleDimension",
    "domain_from_text",
    "load_domain",
    "shipped_domains",
]
