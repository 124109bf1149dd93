"""``gambit-gym``: the environment's command line (describe an instance; build and inspect caches).

    gambit-gym describe [--variant V] [--option key=value ...]   the instance and its oracle table
    gambit-gym cache build --generator smollm2 --per-cell 10 --out my_cache.npz
    gambit-gym cache build --generator openai --base-url URL --model NAME --per-cell 50 --out my_cache.npz
    gambit-gym cache build --from-texts messages.csv --out my_cache.npz
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

from gambit_gym.scenarios import make_scenario


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
    print(f"embedding R^2 (linear model on E[Z|a,x] + context): {scenario.embedding_r2:.3f}")
    print("expected reward mu(a, x) (rows: contexts, columns: actions; * = optimal):")
    for c in range(scenario.contexts.n_contexts):
        row = scenario.expected_reward[c]
        cells = " ".join(f"{v:8.3f}{'*' if a == row.argmax() else ' '}" for a, v in enumerate(row))
        name = ", ".join(scenario.contexts.describe(c).values())
        print(f"  {name:32s} {cells}")
    return 0


def _cache_build(args: argparse.Namespace) -> int:
    import logging
    import shlex

    from gambit_gym.cache import CacheBuildError, build_cache, import_texts

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = "gambit-gym " + " ".join(shlex.quote(a) for a in args.argv)
    try:
        if args.from_texts:
            cache = import_texts(args.from_texts, args.out, command=command)
        else:
            cache = build_cache(args.out, _generator(args), per_cell=args.per_cell, seed=args.seed,
                                max_attempts=args.max_attempts, command=command)
    except (CacheBuildError, ValueError, ImportError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = cache.meta["build"]
    print(f"wrote {args.out}: {cache.n_texts} messages; {stats['discarded']} of {stats['attempts']} "
          f"generated messages discarded {stats['discard_reasons']}")
    return 0


def _generator(args: argparse.Namespace):
    from gambit_gym.cache import OpenAIChatGenerator, SmolLM2Generator

    if args.generator == "smollm2":
        return SmolLM2Generator(temperature=args.temperature, max_tokens=args.max_tokens)
    if not args.base_url or not args.model:
        raise ValueError("--generator openai needs --base-url and --model")
    # Transport settings left unset keep OpenAIChatGenerator's defaults.
    transport = {name: getattr(args, name) for name in ("timeout", "max_retries", "max_reply_bytes")
                 if getattr(args, name) is not None}
    return OpenAIChatGenerator(args.base_url, args.model, api_key_env=args.api_key_env,
                               temperature=args.temperature, max_tokens=args.max_tokens, **transport)


def _cache_info(args: argparse.Namespace) -> int:
    from gambit_gym.cache import CacheError, load_cache
    from gambit_gym.cache.embedder import pole_separation_auc

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
    print(f"generator: {meta['generator']['name']} {json.dumps(meta['generator']['params'])}")
    print(f"embedder: {meta['embedder']['name']} ({meta['embedder']['dim']}-d); style scores: {meta['style_method']}")
    created = meta.get("created", {})
    print(f"created: {created.get('utc')} by gambit-gym {created.get('package_version')}; "
          f"command: {created.get('command')}")
    build = meta.get("build", {})
    if build:
        print(f"build: {build.get('attempts')} generated, {build.get('discarded')} discarded "
              f"{build.get('discard_reasons')}")
    auc = pole_separation_auc(cache.style_scores, cache.prompt_index, cache.prompts)
    print("pole separation per style dimension (ROC AUC of the dimension's score, its positive- vs "
          "negative-pole prompts' messages; 0.5 = chance):")
    for dim, value in auc.items():
        bar = "#" * int(round(max(value - 0.5, 0) * 40)) if value == value else ""  # NaN: a pole has no prompt
        print(f"  {dim:16s} {value:5.2f} {bar}")
    above = sum(v > 0.5 for v in auc.values())
    print(f"{above}/{len(auc)} dimensions separate their poles better than chance")
    if args.samples:
        rng = np.random.default_rng(0)
        for i in rng.choice(cache.n_texts, size=min(args.samples, cache.n_texts), replace=False):
            print(f"  [{cache.prompts[cache.prompt_index[i]]['id']}] {cache.texts[i]}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``describe`` and ``cache`` (``build``, ``info``) to ``sub``, an ``add_subparsers()`` result.

    Each command stores its handler as ``args.func``; the caller sets ``args.argv`` (the argument
    list, recorded in a built cache's metadata) and returns ``args.func(args)``, as :func:`main` does.
    """
    describe = sub.add_parser("describe", help="print a problem instance and its exact expected rewards")
    describe.add_argument("--variant", default="synthetic")
    describe.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE")
    describe.set_defaults(func=_describe)

    cache = sub.add_parser("cache", help="build and inspect treatment caches").add_subparsers(
        dest="cache_command", required=True)
    build = cache.add_parser("build", help="generate (or import), embed and save a cache; resumes if interrupted")
    build.add_argument("--out", required=True, help="the cache file to write (.npz)")
    build.add_argument("--generator", choices=["smollm2", "openai"], default="smollm2")
    build.add_argument("--from-texts", metavar="FILE", help="import texts from CSV/JSONL instead of generating")
    build.add_argument("--per-cell", type=int, default=10, help="accepted messages per (prompt, context)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--max-attempts", type=int, default=None, help="per cell (default 3 x per-cell + 5)")
    build.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1")
    build.add_argument("--model", help="model name on that endpoint")
    build.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable with the API key")
    build.add_argument("--temperature", type=float, default=0.8)
    build.add_argument("--max-tokens", type=int, default=96)
    build.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="openai: seconds allowed for one whole request, however slowly the server "
                            "answers (default 120); an overdue request is not retried")
    build.add_argument("--max-retries", type=int, metavar="N",
                       help="openai: retries after HTTP 408/429/5xx or a failed connection, with exponential "
                            "backoff and Retry-After (default 3)")
    build.add_argument("--max-reply-bytes", type=int, metavar="N",
                       help="openai: the largest reply accepted, in bytes (default 4194304 = 4 MiB)")
    build.set_defaults(func=_cache_build)
    info = cache.add_parser("info", help="describe a cache and how well its style scores separate their poles")
    info.add_argument("path")
    info.add_argument("--samples", type=int, default=0, help="also print N random messages")
    info.set_defaults(func=_cache_info)


def build_parser() -> argparse.ArgumentParser:
    """The environment-only parser (``python -m gambit_gym.cli``)."""
    parser = argparse.ArgumentParser(prog="gambit-gym", description=__doc__.split("\n")[0])
    add_commands(parser.add_subparsers(dest="command", required=True))
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
