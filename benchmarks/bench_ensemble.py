"""Ensemble GAMBITTS cost per round against linear poGAMBITTS, at 250 replications and at one.

Run: ``python benchmarks/bench_ensemble.py [--rounds 10]``. Times ``act + step + update`` after the
default 100-round warm-up (training on, on full minibatches: the buffer holds more than one
minibatch), on the default synthetic environment, on one core (the CPU kernels are single-threaded),
and prints the ratio to poGAMBITTS measured in the same run. Goal: M = 10 at most 10x poGAMBITTS.
"""

from __future__ import annotations

import argparse

from bench_agents import per_round  # sibling script: run as python benchmarks/bench_ensemble.py

from agents import EnsembleGAMBITTS, PoGAMBITTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=250, help="replications of the batched row (250)")
    parser.add_argument("--rounds", type=int, default=10, help="timed ensemble rounds at that size (10)")
    args = parser.parse_args()
    warm = 100  # the default warm-up; a shorter one could time partial minibatches
    for reps, rounds in ((args.replications, args.rounds), (1, 30 * args.rounds)):
        po = per_round(lambda env: PoGAMBITTS.from_env(env, seed=0), reps, rounds * 10, warm)
        print(f"{reps} replication(s); per round (act + step + update), training on")
        print(f"  poGAMBITTS (linear)        {po * 1e3:9.3f} ms   1x")
        for m in (10, 60):
            t = per_round(lambda env, m=m: EnsembleGAMBITTS.from_env(env, seed=0, n_members=m), reps, rounds, warm)
            print(f"  EnsembleGAMBITTS M={m:<3d}     {t * 1e3:9.3f} ms   {t / po:.1f}x")


if __name__ == "__main__":
    main()
