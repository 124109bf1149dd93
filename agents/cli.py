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
    gambit-gym sanity logs.npz                               does the logged embedding predict the reward?

The console script: the environment's commands (``describe``, ``cache``) come
from :mod:`gambit_gym.cli`, which knows nothing of the agents; the experiment
commands from :mod:`agents.experiments.cli`. ``python -m agents.cli`` runs the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from agents import sanity
from agents.experiments import cli as experiment_cli
from gambit_gym import cli as env_cli

DESCRIPTION = """\
gambit-gym: generator-mediated bandits as Gymnasium environments, with the
GAMBITTS agents (context -> prompt -> generated treatment -> embedding -> reward).

Describe an environment instance, build and inspect caches of real LLM
messages, run experiments (the paper's study grid or your own sweeps) and
report on them. Each command has its own --help, with examples."""

EXAMPLES = """\
examples:
  gambit-gym describe --variant cached-llm -o n_actions=10
  gambit-gym cache build --generator smollm2 --per-cell 10 --out my_cache.npz
  gambit-gym cache info my_cache.npz --samples 5
  gambit-gym experiment list
  gambit-gym experiment run arms --replications 50 --out results/
  gambit-gym experiment run examples/my_sweep.toml --backend ray
  gambit-gym experiment report results/
  gambit-gym sanity logs.npz"""


def build_parser() -> argparse.ArgumentParser:
    """The ``gambit-gym`` parser: ``describe``, ``cache``, ``experiment`` and ``sanity``, and ``--version``."""
    parser = argparse.ArgumentParser(prog="gambit-gym", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    env_cli.add_version(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{describe,cache,experiment,sanity}")
    env_cli.add_commands(sub)
    experiment_cli.add_commands(sub)
    sanity.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (``argv`` defaults to ``sys.argv[1:]``); returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in a built cache's metadata
    np.set_printoptions(precision=3, suppress=True)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
