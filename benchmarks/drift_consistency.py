"""Late regret slope of poGAMBITTS against the bank-prior hybrid with a small offline bank (issue #15).

poGAMBITTS scores actions on bank means drawn once from ``n_offline`` simulated treatments, so where the
bank's sampling error swaps the order of two actions it keeps playing the wrong one: regret grows linearly.
:class:`agents.drift.BankPriorPoGAMBITTS` uses the bank only as a prior that the realised treatments
update, so its late slope should fall towards zero. This prints, per agent, the mean per-round regret over
the second half of the run (the late slope) with its standard error over replications, the mean
per-round regret over doubling windows (constant if linear, falling if sub-linear) and the final
cumulative regret.

    python -m benchmarks.drift_consistency --horizon 5000 --replications 20
    python -m benchmarks.drift_consistency --horizon 100000 --replications 8 --block-size 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agents import PoGAMBITTS, run_bandit
from agents.drift import BankPriorPoGAMBITTS
from gambit_gym import ENV_ID


def late_slopes(cumulative_regret: np.ndarray) -> np.ndarray:
    """Per replication, the mean per-round regret over the second half: ``(R_T - R_{T/2}) / (T - T/2)``."""
    horizon = cumulative_regret.shape[1]
    half = horizon // 2
    return (cumulative_regret[:, -1] - cumulative_regret[:, half - 1]) / (horizon - half)


def window_slopes(cumulative_regret: np.ndarray, n_windows: int = 4) -> list[tuple[int, int, float]]:
    """Mean per-round regret over doubling windows ending at T: ``[(start, end, slope), ...]`` for
    (T/2^n, T/2^(n-1)], ..., (T/2, T]; constant for linear regret, falling for sub-linear regret."""
    horizon = cumulative_regret.shape[1]
    mean = cumulative_regret.mean(axis=0)
    out = []
    for k in range(n_windows, 0, -1):
        start, end = horizon >> k, horizon >> (k - 1)
        if start >= 1:
            out.append((start, end, float((mean[end - 1] - mean[start - 1]) / (end - start))))
    return out


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=5000)
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--n-offline", type=int, default=20)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--block-size", type=int, default=None)
    args = parser.parse_args(argv)
    agents = {"poGAMBITTS": (PoGAMBITTS, {"n_offline": args.n_offline}),
              "bank-prior": (BankPriorPoGAMBITTS, {"n_offline": args.n_offline})}
    tic = time.perf_counter()
    res = run_bandit(ENV_ID, agents, horizon=args.horizon, replications=args.replications, seed=args.seed,
                     block_size=args.block_size, progress=False)
    out = {}
    print(f"T = {args.horizon}, R = {args.replications}, n_offline = {args.n_offline}, seed = {args.seed} "
          f"({time.perf_counter() - tic:.0f} s)")
    for name, regret in res.cumulative_regret.items():
        slopes = late_slopes(regret)
        mean, se = float(slopes.mean()), float(slopes.std(ddof=1) / np.sqrt(len(slopes)))
        out[name] = (mean, se, float(regret[:, -1].mean()))
        print(f"{name:>12}: late slope {mean:.5f} +- {se:.5f} per round; final regret {out[name][2]:.1f}")
        print(" " * 14 + "per-round regret in (start, end]: " + ", ".join(
            f"({a}, {b}] {slope:.5f}" for a, b, slope in window_slopes(regret)))
    return out


if __name__ == "__main__":
    main()
