"""The ``gambit-gym experiment`` commands: list the named experiments, run experiments, report on results.

    gambit-gym experiment list
    gambit-gym experiment run arms --replications 250       (a named experiment, "all", or a .toml file)
    gambit-gym experiment run my_sweep.toml --backend ray --address auto
    gambit-gym experiment report results/

:func:`add_commands` mounts them on the ``gambit-gym`` parser (``agents.cli``).
Exit codes: 0 done, 1 some configs failed (the others are saved), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from agents.experiments.config import ExperimentError, load_experiment, named_experiments
from agents.experiments.findings import UNDECIDED
from agents.experiments.report import check_findings, load_results, write_report
from agents.experiments.runner import run_experiments


def _experiment_list(args: argparse.Namespace) -> int:
    for name, exp in named_experiments().items():
        n = len(exp.configs())
        print(f"{name:20s} {n} config{'s' if n > 1 else ' '}  {exp.description}")
    print("\nall                  every experiment above (gambit-gym experiment run all)")
    return 0


def _experiment_run(args: argparse.Namespace) -> int:
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
    try:
        results = load_results(args.results)
        path = write_report(args.results, plots=not args.no_plots, results=results)
        findings = check_findings(results)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in findings:
        # an undecided finding says why; a decided one's numbers are in the report
        print(f"[{f.status}] {f.claim}" + (f": {f.evidence}" if f.status == UNDECIDED else ""))
    print(f"report written to {path}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``experiment`` (``list``, ``run``, ``report``) to ``sub``, an ``add_subparsers()`` result.

    Each command stores its handler as ``args.func``; the caller returns ``args.func(args)``."""
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
    run.add_argument("--backend", choices=["process", "serial", "ray"], default="process")  # BACKENDS, default first
    run.add_argument("--workers", type=int, help="local worker processes (default: one per CPU)")
    run.add_argument("--address", help="Ray cluster address for --backend ray (e.g. auto); default: a local Ray")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_experiment_run)
    rep = experiment.add_parser("report", help="plots and a markdown report (report.md) from a results folder")
    rep.add_argument("results", help="a results root or one experiment's folder")
    rep.add_argument("--no-plots", action="store_true")
    rep.set_defaults(func=_experiment_report)
