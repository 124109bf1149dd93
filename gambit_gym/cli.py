"""``gambit-gym``: the environment's command line (describe an instance; build and inspect caches).

    gambit-gym describe [--variant V] [--option key=value ...]   the instance and its oracle table
    gambit-gym cache build [--domain FILE] --generator smollm2 --per-cell 10 --out my_cache.npz
    gambit-gym cache build --generator openai --base-url URL --model NAME --per-cell 50 --out my_cache.npz
    gambit-gym cache import --domain my_domain.toml messages.csv --out my_cache.npz
    gambit-gym cache info my_cache.npz

:func:`add_commands` adds these commands to any argparse subparsers object, so
the ``gambit-gym`` entry point (``agents.cli``) mounts them next to the
experiment commands; ``python -m gambit_gym.cli`` runs them alone.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from gambit_gym.domains import DEFAULT_DOMAIN, shipped_domains
from gambit_gym.scenarios import VARIANTS, make_scenario
from gambit_gym.version import __version__


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["n_actions=40", "outcome=mlp"]`` -> ``{"n_actions": 40, "outcome": "mlp"}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--option: expected key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key.strip()] = raw
    return out


def _describe(args: argparse.Namespace) -> int:
    try:
        scenario = make_scenario(args.variant, **parse_options(args.option))
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(scenario.describe(), indent=2, default=str))
    domain = getattr(scenario, "domain", None)
    if domain is not None:
        print("\n".join(domain.summary()))
    print(f"embedding R^2 (linear model on E[Z|a,x] + context): {scenario.embedding_r2:.3f}")
    print("expected reward mu(a, x) (rows: contexts, columns: actions; * = optimal):")
    for c in range(scenario.contexts.n_contexts):
        row = scenario.expected_reward[c]
        cells = " ".join(f"{v:8.3f}{'*' if a == row.argmax() else ' '}" for a, v in enumerate(row))
        name = ", ".join(scenario.contexts.describe(c).values())
        print(f"  {name:32s} {cells}")
    return 0


#: Generators that run on this machine (``cache build --generator``).
LOCAL_GENERATORS = ("smollm2", "gemma3")
#: Options of ``cache build`` that only the OpenAI-compatible generator takes (refused with smollm2).
OPENAI_ONLY = ("base_url", "model", "api_key_env", "timeout", "max_retries", "max_reply_bytes")


def _command_line(args: argparse.Namespace) -> str:
    import shlex

    return "gambit-gym " + " ".join(shlex.quote(a) for a in args.argv)


def _cache_build(args: argparse.Namespace) -> int:
    import logging

    from gambit_gym.cache import CacheBuildError, build_cache

    if args.from_texts:
        print("error: --from-texts: cache build only generates; import texts you already have with "
              f"`gambit-gym cache import --domain FILE {args.from_texts} --out {args.out}` (filters run there only "
              "when asked for with --filter)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cache = build_cache(args.out, _generator(args), per_cell=args.per_cell, seed=args.seed,
                            max_attempts=args.max_attempts, command=_command_line(args), domain=args.domain)
    except (CacheBuildError, ValueError, ImportError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = cache.meta["build"]
    print(f"wrote {args.out}: {cache.n_texts} messages; {stats['discarded']} of {stats['attempts']} "
          f"generated messages discarded {stats['discard_reasons']}")
    return 0


def _generator(args: argparse.Namespace):
    from gambit_gym.cache import Gemma3Generator, OpenAIChatGenerator, SmolLM2Generator

    if args.generator in LOCAL_GENERATORS:
        given = [f"--{name.replace('_', '-')}" for name in OPENAI_ONLY if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only for --generator openai; {args.generator} runs on this "
                             "machine")
        local = SmolLM2Generator if args.generator == "smollm2" else Gemma3Generator
        return local(temperature=args.temperature, max_tokens=args.max_tokens)
    if not args.base_url or not args.model:
        raise ValueError("--generator openai needs --base-url and --model")
    # Transport settings left unset keep OpenAIChatGenerator's defaults.
    transport = {name: getattr(args, name) for name in ("timeout", "max_retries", "max_reply_bytes")
                 if getattr(args, name) is not None}
    return OpenAIChatGenerator(args.base_url, args.model, api_key_env=args.api_key_env or "OPENAI_API_KEY",
                               temperature=args.temperature, max_tokens=args.max_tokens, **transport)


def _cache_import(args: argparse.Namespace) -> int:
    import logging

    from gambit_gym.cache import import_texts

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cache = import_texts(args.texts, args.out, command=_command_line(args), domain=args.domain,
                             filters=args.filters, progress=not args.no_progress)
    except (ValueError, ImportError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = cache.meta["build"]
    print(f"wrote {args.out}: {cache.n_texts} texts ({stats['distinct_texts']} distinct) from {stats['rows']} rows; "
          f"{stats['discarded']} discarded {stats['discard_reasons']}")
    return 0


def _cache_info(args: argparse.Namespace) -> int:
    from gambit_gym.cache import CacheError, load_cache
    from gambit_gym.cache.embedder import pole_separation_auc, prompt_variance_share
    from gambit_gym.scenarios.cached_llm import cache_domain

    try:
        cache = load_cache(args.path)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = cache.meta
    counts = cache.cell_counts()
    print(f"{args.path}: format version {meta['version']}, {cache.n_texts} messages, "
          f"{len(cache.prompts)} prompts x {cache.contexts.n_contexts} contexts "
          f"({counts.min()}-{counts.max()} per cell)")
    try:
        print("\n".join(cache_domain(cache).summary()))
    except ValueError as exc:
        print(f"domain: none that fits ({exc})")
    print(f"generator: {meta['generator']['name']} {json.dumps(meta['generator']['params'])}")
    print(f"embedder: {meta['embedder']['name']} ({meta['embedder']['dim']}-d); style scores: {meta['style_method']}")
    created = meta.get("created", {})
    print(f"created: {created.get('utc')} by gambit-gym {created.get('package_version')}; "
          f"command: {created.get('command')}")
    build = meta.get("build", {})
    if build.get("source") == "import":
        print(f"import: {build.get('rows')} rows, {build.get('discarded')} discarded {build.get('discard_reasons')} "
              f"(filters: {', '.join(build.get('filters') or []) or 'none'}); {build.get('distinct_texts')} "
              "distinct texts")
    elif build:
        print(f"build: {build.get('attempts')} generated, {build.get('discarded')} discarded "
              f"{build.get('discard_reasons')}")
    dims = cache.style_dimensions
    eta = prompt_variance_share(cache.style_scores, cache.prompt_index)
    auc = pole_separation_auc(cache.style_scores, cache.prompt_index, cache.prompts, dims)
    chance = (len(cache.prompts) - 1) / max(cache.n_texts - 1, 1)
    print("per style dimension: eta^2 = share of the score's variance between prompts (0: the prompts do not "
          f"move it, 1: the prompt fixes it; about {chance:.3f} by chance alone); AUC = how well the score "
          "separates the messages of the prompts at its positive and negative pole (0.5 = chance), for "
          "dimensions that prompts target at both poles:")
    for j, dim in enumerate(dims):
        value = auc.get(dim)
        shown = "    -" if value is None else f"{value:5.2f} " + "#" * int(round(max(value - 0.5, 0) * 40))
        print(f"  {dim:16s} eta^2 {eta[j]:5.3f}   AUC {shown}")
    if auc:
        above = sum(v > 0.5 for v in auc.values())
        print(f"{above}/{len(auc)} dimensions separate their poles better than chance")
    else:
        print("no dimension has prompts at both of its poles: no pole separation to report")
    if args.samples:
        rng = np.random.default_rng(0)
        for i in rng.choice(cache.n_texts, size=min(args.samples, cache.n_texts), replace=False):
            print(f"  [{cache.prompts[cache.prompt_index[i]]['id']}] {cache.texts[i]}")
    return 0


#: Examples shown at the end of each command's --help.
DESCRIBE_EXAMPLES = """examples:
  gambit-gym describe                  the default: synthetic, K = 5, d = 3
  gambit-gym describe --variant misspecified -o n_actions=10 -o view=projection \\
      -o embedding_dim=2
  gambit-gym describe --variant cached-llm -o outcome=mlp -o noise_level=2"""

BUILD_EXAMPLES = """examples:
  gambit-gym cache build --generator smollm2 --per-cell 10 --out my_cache.npz
  gambit-gym cache build --domain study_nudges --generator smollm2 --per-cell 8 \\
      --out study_cache.npz
  gambit-gym cache build --domain my_domain.toml --generator openai \\
      --base-url http://localhost:11434/v1 --model llama3.1 --per-cell 50 --out my_cache.npz

An interrupted build resumes from its journal (OUT.journal.jsonl) when run
again with the same arguments. Texts you already have: gambit-gym cache import."""

IMPORT_EXAMPLES = """examples:
  gambit-gym cache import --domain my_domain.toml messages.csv --out my_cache.npz
  gambit-gym cache import --domain mhealth texts.jsonl --filter off-topic --filter length \\
      --out my_cache.npz

The file has a column prompt (a prompt id of the domain, matched as text), one
column per context factor of the domain (none if it declares none), text, and
score:<dimension> for each dimension the domain declares given = true. Every
problem is listed before anything is embedded."""

INFO_EXAMPLES = """examples:
  gambit-gym cache info my_cache.npz
  gambit-gym cache info gambit_gym/data/mhealth_smollm2.npz --samples 5"""


def _command(sub: argparse._SubParsersAction, name: str, help: str, examples: str = "") -> argparse.ArgumentParser:
    """A sub-command whose --help ends with its examples, printed as written."""
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=examples or None,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``describe`` and ``cache`` (``build``, ``info``) to ``sub``, an ``add_subparsers()`` result.

    Each command stores its handler as ``args.func``; the caller sets ``args.argv`` (the argument
    list, recorded in a built cache's metadata) and returns ``args.func(args)``, as :func:`main` does.
    """
    describe = _command(sub, "describe", "print a problem instance and its exact expected rewards",
                        DESCRIBE_EXAMPLES)
    describe.add_argument("--variant", default="synthetic", metavar="VARIANT",
                          help=f"the scenario, one of {', '.join(VARIANTS)} (default: synthetic)")
    describe.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                          help="an environment option, as gym.make takes it (repeat for several), e.g. -o "
                               "n_actions=40; values are read as Python literals: -o 'observed_dims=[0, 2]'")
    describe.set_defaults(func=_describe)

    cache = _command(sub, "cache", "build, import and inspect treatment caches").add_subparsers(
        dest="cache_command", required=True, metavar="{build,import,info}")
    build = _command(cache, "build", "generate messages for a domain, embed and save a cache; resumes if "
                     "interrupted", BUILD_EXAMPLES)
    build.add_argument("--domain", default=DEFAULT_DOMAIN, metavar="FILE",
                       help=f"the domain file (.toml) or a shipped domain's name ({', '.join(shipped_domains())}) "
                            f"(default: {DEFAULT_DOMAIN})")
    build.add_argument("--out", required=True, metavar="FILE",
                       help="the cache file to write (.npz), e.g. my_cache.npz")
    build.add_argument("--generator", choices=[*LOCAL_GENERATORS, "openai"], default="smollm2",
                       help="smollm2: SmolLM2-135M-Instruct on this machine (extra llm); gemma3: the Gemma 3 "
                            "270M base model on this machine, prompted few-shot (extra gemma); openai: any "
                            "OpenAI-compatible chat server, with --base-url and --model (default: smollm2)")
    build.add_argument("--from-texts", metavar="FILE",
                       help="removed: import texts you already have with gambit-gym cache import")
    build.add_argument("--per-cell", type=int, default=10, metavar="N",
                       help="accepted messages per (prompt, context) cell (default: 10)")
    build.add_argument("--seed", type=int, default=0, help="seed of the generator's sampling (default: 0)")
    build.add_argument("--max-attempts", type=int, default=None, metavar="N",
                       help="generations allowed per cell before it is reported short (default: 3 x per-cell + 5)")
    build.add_argument("--base-url", metavar="URL",
                       help="openai: the server's endpoint, e.g. http://localhost:11434/v1 (Ollama)")
    build.add_argument("--model", metavar="NAME", help="openai: the model name on that server, e.g. llama3.1")
    build.add_argument("--api-key-env", metavar="VAR",
                       help="openai: the environment variable holding the API key; the key is sent only to the "
                            "--base-url origin and never written (default: OPENAI_API_KEY)")
    build.add_argument("--temperature", type=float, default=0.8,
                       help="sampling temperature of the generator (default: 0.8)")
    build.add_argument("--max-tokens", type=int, default=96, metavar="N",
                       help="the longest reply, in tokens (default: 96)")
    build.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="openai: seconds allowed for one whole request, however slowly the server "
                            "answers (default 120); an overdue request is not retried")
    build.add_argument("--max-retries", type=int, metavar="N",
                       help="openai: retries after HTTP 408/429/5xx or a failed connection, with exponential "
                            "backoff and Retry-After (default 3)")
    build.add_argument("--max-reply-bytes", type=int, metavar="N",
                       help="openai: the largest reply accepted, in bytes (default 4194304 = 4 MiB)")
    build.set_defaults(func=_cache_build)
    imp = _command(cache, "import", "embed texts you already have (CSV or JSONL) into a cache of a domain",
                   IMPORT_EXAMPLES)
    imp.add_argument("texts", metavar="TEXTS", help="the file of texts (.csv with a header line, or .jsonl)")
    imp.add_argument("--out", required=True, metavar="FILE", help="the cache file to write (.npz)")
    imp.add_argument("--domain", default=DEFAULT_DOMAIN, metavar="FILE",
                     help=f"the domain file (.toml) or a shipped domain's name ({', '.join(shipped_domains())}) "
                          f"(default: {DEFAULT_DOMAIN})")
    imp.add_argument("--filter", action="append", default=[], metavar="NAME", dest="filters",
                     help="apply this filter declared in the domain's [filters] (repeat for several; 'all' = "
                          "every one); none by default. Discards are reported per reason")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar over the embedding")
    imp.set_defaults(func=_cache_import)
    info = _command(cache, "info", "describe a cache, its domain, and how much its prompts move each style "
                    "score", INFO_EXAMPLES)
    info.add_argument("path", metavar="CACHE", help="the cache file (.npz), e.g. my_cache.npz")
    info.add_argument("--samples", type=int, default=0, metavar="N",
                      help="also print N messages drawn at random (default: 0)")
    info.set_defaults(func=_cache_info)


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version``: print the package version and exit."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def build_parser() -> argparse.ArgumentParser:
    """The environment-only parser (``python -m gambit_gym.cli``)."""
    parser = argparse.ArgumentParser(prog="gambit-gym", description="gambit-gym environment commands: describe "
                                     "an instance; build and inspect treatment caches.")
    add_version(parser)
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="{describe,cache}"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one environment command (``argv`` defaults to ``sys.argv[1:]``); returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    np.set_printoptions(precision=3, suppress=True)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
