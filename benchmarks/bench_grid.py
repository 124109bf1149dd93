"""Wall time of the whole study grid: every named experiment (the paper's nine, then those beyond it).

Run: ``python benchmarks/bench_grid.py [--out results/grid] [--workers 2] [--paper-only]``. Runs
``gambit-gym experiment run all`` (``--paper-only``: ``run paper``) through the local process backend into a fresh
folder (an existing one is resumed, which would not time the grid), then prints
the wall time against the 15-minute goal, the compute seconds of every config
(from the results files) and the share each agent takes, and writes the report.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

from agents.experiments import PAPER_ORDER, load_results, named_experiments, run_experiments, write_report

GOAL_SECONDS = 15 * 60


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="results/grid")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--paper-only", action="store_true", help="only the paper's nine experiments")
    args = parser.parse_args()
    out = Path(args.out)
    if any(out.glob("*/*.csv")):
        raise SystemExit(f"{out} already holds results: pass a fresh --out to time the whole grid")
    experiments = [e for name, e in named_experiments().items() if not args.paper_only or name in PAPER_ORDER]
    n = sum(len(e.configs()) for e in experiments)
    print(f"{len(experiments)} experiments, {n} configs, {args.workers} worker processes, {os.cpu_count()} CPUs")
    tic = time.perf_counter()
    run_experiments(experiments, out, backend="process", workers=args.workers)
    wall = time.perf_counter() - tic

    results = load_results(out)
    per_agent: dict[str, float] = defaultdict(float)
    total = 0.0
    print(f"\n{'experiment':20s} {'config':24s} {'seconds':>8s}  (compute per config, all agents)")
    for exp in results.values():
        for cfg in exp.configs:
            secs = sum(c.seconds for c in cfg.agents.values())
            total += secs
            for agent, c in cfg.agents.items():
                per_agent[agent] += c.seconds
            print(f"{exp.name:20s} {cfg.config_id:24s} {secs:8.1f}")
    print("\ncompute by agent: " + ", ".join(f"{a} {s:.0f} s ({s / total:.0%})"
                                             for a, s in sorted(per_agent.items(), key=lambda kv: -kv[1])))
    print(f"compute, all configs: {total:.0f} s; mean per config {total / n:.1f} s")
    print(f"wall time of the grid: {wall:.0f} s = {wall / 60:.1f} min; goal 15 min: "
          f"{'met' if wall <= GOAL_SECONDS else 'NOT met'} (wall / goal = {wall / GOAL_SECONDS:.2f})")
    print(f"report: {write_report(out)}")


if __name__ == "__main__":
    main()
