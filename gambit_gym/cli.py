"""``gambit-gym``: command line for the common jobs.

    gambit-gym describe [--variant V] [--option key=value ...]   the instance and its oracle table
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gambit-gym", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    describe = sub.add_parser("describe", help="print a problem instance and its exact expected rewards")
    describe.add_argument("--variant", default="synthetic")
    describe.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE")
    describe.set_defaults(func=_describe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    np.set_printoptions(precision=3, suppress=True)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
