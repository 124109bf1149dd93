"""Cost of the posterior kernels and updates at one replication and at 250, per call.

Run: ``python benchmarks/bench_posteriors.py``. Prints microseconds per call (best of 5
repeats) of the triangular kernels and of each posterior's update and draw, as used by
the agents (p = 11 is poGAMBITTS's linear model at d = 3: d + 7 context features + 1).
Whether the compiled kernels are in use (numba installed: the ``fast`` extra) is printed first.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from agents import posteriors
from agents.posteriors import (
    LinearGaussian,
    NormalGamma,
    NormalInverseWishart,
    cholesky_rank_one_update,
    solve_lower,
    solve_lower_transpose,
)


def cases(R: int, p: int, d: int = 3, K: int = 5):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((R, p, p))
    L = np.linalg.cholesky(A @ A.transpose(0, 2, 1) + p * np.eye(p))
    x, y, rows = rng.standard_normal((R, p)), rng.standard_normal(R), np.arange(R)
    lin = LinearGaussian(R, np.zeros(p), np.full(p, 0.1))
    niw = NormalInverseWishart(R, 12 * K, d)
    ng = NormalGamma(R, 12 * K, 0.0, 1e-4, 1.0, 1.0)
    cells = rng.integers(12 * K, size=R)
    z = rng.standard_normal((R, d))
    action_cells = np.broadcast_to(np.arange(K), (R, K))
    return {
        "cholesky_rank_one_update": lambda: cholesky_rank_one_update(L, 1e-3 * x),
        "solve_lower": lambda: solve_lower(L, x),
        "solve_lower_transpose": lambda: solve_lower_transpose(L, x),
        "LinearGaussian.update": lambda: lin.update(x, y),
        "LinearGaussian.sample": lambda: lin.sample(rng),
        f"NormalInverseWishart.update (d={d})": lambda: niw.update(rows, cells, z),
        f"NormalInverseWishart.sample_mean (K={K})": lambda: niw.sample_mean(rng, rows[:, None], action_cells),
        "NormalGamma.update": lambda: ng.update(rows, cells, y),
        f"NormalGamma.sample (K={K})": lambda: ng.sample(rng, rows[:, None], action_cells),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=11, help="features of the linear model (11)")
    args = parser.parse_args(argv)
    compiled = getattr(posteriors, "_compiled", None) is not None  # absent before the kernels existed
    print(f"compiled kernels (numba): {'yes' if compiled else 'no'}")
    rows = {R: cases(R, args.p) for R in (1, 250)}
    print(f"| us per call (p = {args.p}) | R = 1 | R = 250 |")
    print("|---|---|---|")
    for name in rows[1]:
        cells = []
        for R in (1, 250):
            fn = rows[R][name]
            fn()  # compile / warm up
            number = 2000 if R == 1 else 100
            cells.append(min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6)
        print(f"| {name} | {cells[0]:.1f} | {cells[1]:.1f} |")


if __name__ == "__main__":
    main()
