"""The ``gambit-gym experiment`` commands: list the named experiments, run experiments, report on results.

    gambit-gym experiment list
    gambit-gym experiment run arms --replications 250       (a named experiment, "all", or a .toml file)
    gambit-gym experiment run my_sweep.toml --backend ray --address auto
    gambit-gym experiment report results/

:func:`add_commands` mounts them on the ``gambit-gym`` parser (``agents.cli``).
Exit codes: 0 done, 1 some configs failed (the others are saved), 2 bad input (or the results
folder is in use by another runner), 130 / 143 interrupted by Ctrl-C / SIGTERM (the finished
configs are saved; the same command resumes).
"""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from agents.experiments.config import MAX_CONFIGS, PAPER_ORDER, ExperimentError, load_experiment, named_experiments
from agents.experiments.findings import UNDECIDED
from agents.experiments.report import check_findings, load_results, write_report
from agents.experiments.runner import BACKENDS, ExperimentInterrupted, run_experiments


def _experiment_list(args: argparse.Namespace) -> int:
    experiments = named_experiments()
    width = max(20, *map(len, experiments))
    beyond = False
    for name, exp in experiments.items():
        if name not in PAPER_ORDER and not beyond:  # the paper's come first, then those beyond it
            beyond = True
            print("\nbeyond the paper (agents/experiments/beyond/):")
        n = exp.n_configs  # counted, never listed
        print(f"{name:{width}s} {n} config{'s' if n > 1 else ' '}  {exp.description}")
    print(f"\n{'all':{width}s} every experiment above (gambit-gym experiment run all)")
    print(f"{'paper':{width}s} the paper's study grid alone (gambit-gym experiment run paper)")
    return 0


@contextmanager
def _sigterm_as_interrupt(received: list[int]) -> Iterator[None]:
    """SIGTERM stops a run as Ctrl-C does (finished configs kept, workers stopped); the signal is recorded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _size(text: str) -> int:
    """``"16G"``, ``"512M"``, ``"1000000"`` -> bytes (powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a size such as 16G, 512M or 1000000 (bytes), got {text!r}")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "BKMGT".index(unit.upper() or "B"))


def _experiment_run(args: argparse.Namespace) -> int:
    received: list[int] = []
    try:
        with _sigterm_as_interrupt(received):
            specs = args.experiments
            if specs == ["all"]:
                experiments = list(named_experiments().values())
            elif specs == ["paper"]:  # the paper's grid alone
                experiments = [e for name, e in named_experiments().items() if name in PAPER_ORDER]
            else:
                experiments = [load_experiment(s) for s in specs]
            experiments = [e.with_overrides(args.horizon, args.replications, args.seed) for e in experiments]
            n = sum(e.check_size(args.force) for e in experiments)  # counted, not listed
            print(f"{len(experiments)} experiment(s), {n} config(s) -> {args.out}/ (backend: {args.backend})")
            files = run_experiments(experiments, args.out, backend=args.backend, workers=args.workers,
                                    address=args.address, progress=not args.quiet, force=args.force,
                                    check_memory=not args.no_memory_check, memory_limit=args.memory_limit)
    except (ExperimentError, ValueError, TypeError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConnectionError as exc:  # --backend ray --address: no cluster there
        print(f"error: {exc}\n--address {args.address} joins a running Ray cluster (start one with 'ray start "
              "--head'); without --address, --backend ray starts a Ray on this machine", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an --out folder that cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # some configs failed; the finished ones are saved
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: no traceback, say what is kept and how to resume
        signum = received[0] if received else signal.SIGINT
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        if isinstance(exc, ExperimentInterrupted):
            where = ", ".join(str(f) for f in exc.folders)
            what = (f"{exc.saved} config(s) finished in this run and are saved in {where}; "
                    f"{exc.unfinished} unfinished config(s) were stopped")
        else:
            what = "no config had started"
        argv = getattr(args, "argv", None) or sys.argv[1:]
        print(f"\ninterrupted ({name}): {what}.\nResume with the same command (finished configs are kept):\n"
              f"  gambit-gym {shlex.join(argv)}", file=sys.stderr)
        return 128 + int(signum)
    for name, paths in files.items():
        print(f"{name}: {len(paths)} config file(s) in {paths[0].parent}")
    print(f"next: gambit-gym experiment report {args.out}")
    return 0


def _experiment_report(args: argparse.Namespace) -> int:
    try:
        results = load_results(args.results)
        path = write_report(args.results, plots=not args.no_plots, results=results)
        findings = check_findings(results)
    except (FileNotFoundError, ValueError, ImportError) as exc:  # ImportError: no matplotlib, says --no-plots
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in findings:
        # an undecided finding says why; a decided one's numbers are in the report
        print(f"[{f.status}] {f.claim}" + (f": {f.evidence}" if f.status == UNDECIDED else ""))
    print(f"report written to {path}")
    return 0


_RAW = argparse.RawDescriptionHelpFormatter  # keeps the examples' lines as written

RUN_EXAMPLES = """examples:
  gambit-gym experiment run arms --replications 50      (writes results/arms/)
  gambit-gym experiment run all --out results/
  gambit-gym experiment run paper --out results/        (the paper's grid alone)
  gambit-gym experiment run examples/my_sweep.toml --horizon 200 --workers 2
  gambit-gym experiment run examples/my_sweep.toml --backend ray
  gambit-gym experiment run examples/my_sweep.toml --backend ray --address auto

--backend ray alone starts a Ray on this machine; --address auto joins a running
cluster (started with 'ray start --head'). Rerun the same command to resume:
finished configs are skipped."""

REPORT_EXAMPLES = """examples:
  gambit-gym experiment report results/
  gambit-gym experiment report results/arms --no-plots"""


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``experiment`` (``list``, ``run``, ``report``) to ``sub``, an ``add_subparsers()`` result.

    Each command stores its handler as ``args.func``; the caller returns ``args.func(args)``."""
    experiment = sub.add_parser("experiment", help="run the paper's study grid or your own sweeps; report")
    experiment = experiment.add_subparsers(dest="experiment_command", required=True)
    lst = experiment.add_parser("list", help="the named experiments (the paper's grid, then those beyond it)",
                                epilog="example:\n  gambit-gym experiment list", formatter_class=_RAW)
    lst.set_defaults(func=_experiment_list)
    run = experiment.add_parser("run", help="run experiments; finished configs are kept, so a rerun resumes",
                                epilog=RUN_EXAMPLES, formatter_class=_RAW)
    run.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                     help="a named experiment (see 'list'), 'all', 'paper' (the paper's grid alone), "
                          "or a .toml experiment file")
    run.add_argument("--out", default="results", help="results root (default: results/)")
    run.add_argument("--replications", type=int, help="override the experiments' replications")
    run.add_argument("--horizon", type=int, help="override the experiments' horizon T")
    run.add_argument("--seed", type=int, help="override the experiments' root seed")
    run.add_argument("--backend", choices=["process", *(b for b in BACKENDS if b != "process")], default="process",
                     help="process: local worker processes (default); serial: in this process; ray: Ray tasks "
                          "(extra ray), on a local Ray or the cluster of --address")
    run.add_argument("--workers", type=int, help="local worker processes (default: one per CPU)")
    run.add_argument("--address", help="Ray cluster address for --backend ray (e.g. auto); default: a local Ray")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--force", action="store_true",
                     help=f"run a sweep of more than {MAX_CONFIGS:,} configs (refused otherwise)")
    run.add_argument("--memory-limit", type=_size, metavar="SIZE",
                     help="refuse configs estimated to need more memory than this (e.g. 16G; "
                          "default: the memory this machine has available)")
    run.add_argument("--no-memory-check", action="store_true",
                     help="skip the memory estimate of each config (run even configs that look too big)")
    run.set_defaults(func=_experiment_run)
    rep = experiment.add_parser("report", help="plots and a markdown report (report.md) from a results folder",
                                epilog=REPORT_EXAMPLES, formatter_class=_RAW)
    rep.add_argument("results", help="a results root or one experiment's folder")
    rep.add_argument("--no-plots", action="store_true",
                     help="write report.md only, without the PNG figures (no matplotlib needed)")
    rep.set_defaults(func=_experiment_report)
