"""Wall time of the whole study grid: every named experiment (the paper's nine, then those beyond it).

Run: ``python benchmarks/bench_grid.py [--out results/grid] [--workers 2] [--paper-only | --experiments NAME ...]
[--exclude NAME ...] [--horizon T] [--replications R] [--list]``.

Runs the chosen experiments (default: every named one, ``gambit-gym experiment list``: the paper's grid and
everything in ``agents/experiments/beyond/``, such as arms-large, drift, safety and learned-embedding) through
the local process backend into a fresh folder (an existing one is resumed, which would not time the grid), then
prints the wall time against the 15-minute goal, the compute seconds of every config (from the results files),
each experiment's total and share of the grid's compute, the share each agent takes, and writes the report.
``--list`` prints what would run (configs, T, R) and runs nothing; ``--horizon`` / ``--replications`` override
every experiment's (a quick check of the script, not the grid's timing).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

from agents.experiments import PAPER_ORDER, load_results, named_experiments, run_experiments, write_report

GOAL_SECONDS = 15 * 60


def choose(names: list[str] | None, exclude: list[str], paper_only: bool) -> list:
    """The named experiments to run, in ``named_experiments()`` order."""
    every = named_experiments()
    unknown = sorted((set(names or []) | set(exclude)) - set(every))
    if unknown:
        raise SystemExit(f"--experiments/--exclude: unknown experiment(s) {unknown}; named ones: {list(every)}")
    return [e for name, e in every.items()
            if (names is None or name in names) and name not in exclude and (not paper_only or name in PAPER_ORDER)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/grid")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--paper-only", action="store_true", help="only the paper's nine experiments")
    parser.add_argument("--experiments", nargs="+", metavar="NAME", help="only these named experiments")
    parser.add_argument("--exclude", nargs="+", metavar="NAME", default=[], help="leave these out")
    parser.add_argument("--horizon", type=int, help="override every experiment's horizon T")
    parser.add_argument("--replications", type=int, help="override every experiment's replications")
    parser.add_argument("--list", action="store_true", help="print what would run, run nothing")
    args = parser.parse_args(argv)
    experiments = [e.with_overrides(horizon=args.horizon, replications=args.replications)
                   for e in choose(args.experiments, args.exclude, args.paper_only)]
    n = sum(e.n_configs for e in experiments)
    print(f"{len(experiments)} experiments, {n} configs, {args.workers} worker processes, {os.cpu_count()} CPUs")
    for e in experiments:
        print(f"  {e.name:28s} {e.n_configs:3d} configs  T={e.horizon:<6d} R={e.replications}")
    if args.list:
        return
    out = Path(args.out)
    if any(out.glob("*/*.csv")):
        raise SystemExit(f"{out} already holds results: pass a fresh --out to time the whole grid")
    tic = time.perf_counter()
    run_experiments(experiments, out, backend="process", workers=args.workers)
    wall = time.perf_counter() - tic

    results = load_results(out)
    per_agent: dict[str, float] = defaultdict(float)
    per_experiment: dict[str, float] = defaultdict(float)
    print(f"\n{'experiment':28s} {'config':24s} {'seconds':>8s}  (compute per config, all agents)")
    for exp in results.values():
        for cfg in exp.configs:
            secs = sum(c.seconds for c in cfg.agents.values())
            per_experiment[exp.name] += secs
            for agent, c in cfg.agents.items():
                per_agent[agent] += c.seconds
            print(f"{exp.name:28s} {cfg.config_id:24s} {secs:8.1f}")
    total = sum(per_experiment.values())
    print("\n| experiment | configs | T | R | compute (s) | share of the grid's compute |\n|---|---|---|---|---|---|")
    for e in experiments:
        secs = per_experiment.get(e.name, 0.0)
        print(f"| {e.name} | {e.n_configs} | {e.horizon} | {e.replications} | {secs:.0f} | "
              f"{secs / total if total else 0.0:.1%} |")
    print(f"| all | {n} | | | {total:.0f} | 100% |")
    print("\ncompute by agent: " + ", ".join(f"{a} {s:.0f} s ({s / total:.0%})"
                                             for a, s in sorted(per_agent.items(), key=lambda kv: -kv[1])))
    print(f"compute, all configs: {total:.0f} s; mean per config {total / n:.1f} s")
    print(f"wall time of the grid: {wall:.0f} s = {wall / 60:.1f} min; goal 15 min: "
          f"{'met' if wall <= GOAL_SECONDS else 'NOT met'} (wall / goal = {wall / GOAL_SECONDS:.2f})")
    print(f"report: {write_report(out)}")


if __name__ == "__main__":
    main()
