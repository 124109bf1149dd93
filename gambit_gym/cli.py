"""``gambit-gym``: command line for the common jobs.

    gambit-gym describe [--variant V] [--option key=value ...]   the instance and its oracle table
    gambit-gym cache build --generator smollm2 --per-cell 10 --out my_cache.npz
    gambit-gym cache build --generator openai --base-url URL --model NAME --per-cell 50 --out my_cache.npz
    gambit-gym cache build --from-texts messages.csv --out my_cache.npz
    gambit-gym cache info my_cache.npz
    gambit-gym experiment list
    gambit-gym experiment run arms --replications 250       (a named experiment, "all", or a .toml file)
    gambit-gym experiment run my_sweep.toml --backend ray --address auto
    gambit-gym experiment report results/

The experiment commands run the agents (package ``agents``); they are imported
only for those commands, so the environments never depend on the agents.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np


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
    from gambit_gym.scenarios import make_scenario

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
    return OpenAIChatGenerator(args.base_url, args.model, api_key_env=args.api_key_env,
                               temperature=args.temperature, max_tokens=args.max_tokens)


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
        bar = "#" * int(round(max(value - 0.5, 0) * 40))
        print(f"  {dim:16s} {value:5.2f} {bar}")
    above = sum(v > 0.5 for v in auc.values())
    print(f"{above}/{len(auc)} dimensions separate their poles better than chance")
    if args.samples:
        rng = np.random.default_rng(0)
        for i in rng.choice(cache.n_texts, size=min(args.samples, cache.n_texts), replace=False):
            print(f"  [{cache.prompts[cache.prompt_index[i]]['id']}] {cache.texts[i]}")
    return 0


def _experiment_list(args: argparse.Namespace) -> int:
    from agents.experiments import named_experiments

    for name, exp in named_experiments().items():
        n = len(exp.configs())
        print(f"{name:20s} {n} config{'s' if n > 1 else ' '}  {exp.description}")
    print("\nall                  every experiment above (gambit-gym experiment run all)")
    return 0


def _experiment_run(args: argparse.Namespace) -> int:
    from agents.experiments import ExperimentError, load_experiment, named_experiments, run_experiments

    try:
        specs = args.experiments
        if specs == ["all"]:
            experiments = list(named_experiments().values())
        else:
            experiments = [load_experiment(s) for s in specs]
        experiments = [e.with_overrides(args.horizon, args.replications, args.seed) for e in experiments]
        n = sum(len(e.configs()) for e in experiments)
        print(f"{len(experiments)} experiment(s), {n} config(s) -> {args.out}/ (backend: {args.backend})")
        files = run_experiments(experiments, args.out, backend=args.backend, workers=args.workers,
                                address=args.address, progress=not args.quiet)
    except (ExperimentError, ValueError, TypeError, ImportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # some configs failed; the finished ones are saved
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, paths in files.items():
        print(f"{name}: {len(paths)} config file(s) in {paths[0].parent}")
    print(f"next: gambit-gym experiment report {args.out}")
    return 0


def _experiment_report(args: argparse.Namespace) -> int:
    from agents.experiments import check_findings, load_results, write_report

    try:
        results = load_results(args.results)
        path = write_report(args.results, plots=not args.no_plots, results=results)
        findings = check_findings(results)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in findings:
        print(f"[{f.status}] {f.claim}")
    print(f"report written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gambit-gym", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    build.set_defaults(func=_cache_build)
    info = cache.add_parser("info", help="describe a cache and how well its style scores separate their poles")
    info.add_argument("path")
    info.add_argument("--samples", type=int, default=0, help="also print N random messages")
    info.set_defaults(func=_cache_info)

    experiment = sub.add_parser("experiment", help="run the paper's study grid or your own sweeps; report")
    experiment = experiment.add_subparsers(dest="experiment_command", required=True)
    lst = experiment.add_parser("list", help="the named experiments (the paper's grid)")
    lst.set_defaults(func=_experiment_list)
    run = experiment.add_parser("run", help="run experiments; finished configs are kept, so a rerun resumes")
    run.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                     help="a named experiment (see 'list'), 'all', or a .toml experiment file")
    run.add_argument("--out", default="results", help="results root (default: results/)")
    run.add_argument("--replications", type=int, help="override the experiments' replications")
    run.add_argument("--horizon", type=int, help="override the experiments' horizon T")
    run.add_argument("--seed", type=int, help="override the experiments' root seed")
    run.add_argument("--backend", choices=["process", "serial", "ray"], default="process")
    run.add_argument("--workers", type=int, help="local worker processes (default: one per CPU)")
    run.add_argument("--address", help="Ray cluster address for --backend ray (e.g. auto); default: a local Ray")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_experiment_run)
    rep = experiment.add_parser("report", help="plots and a markdown report (report.md) from a results folder")
    rep.add_argument("results", help="a results root or one experiment's folder")
    rep.add_argument("--no-plots", action="store_true")
    rep.set_defaults(func=_experiment_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    np.set_printoptions(precision=3, suppress=True)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
