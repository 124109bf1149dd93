"""Ensemble GAMBITTS cost per round against linear poGAMBITTS, at 250 replications and at one.

Run: ``python benchmarks/bench_ensemble.py [--rounds 20]``. Times ``act + step + update`` on the
default synthetic environment, on one core (the CPU kernels are single-threaded), in two windows
of a run: just after the default 100-round warm-up (a small replay buffer) and from round 1000 (the
buffer full: its random reads miss the caches), and prints each ratio to poGAMBITTS measured in the
same run. Goal: M = 10 at most 10x poGAMBITTS. ``train_every=1`` (the default before it was 4) is
timed alongside.
"""

from __future__ import annotations

import argparse

from bench_agents import per_round  # sibling script: run as python benchmarks/bench_ensemble.py

from agents import EnsembleGAMBITTS, PoGAMBITTS

CONFIGS = {"M=10": {"n_members": 10}, "M=10, train_every=1": {"n_members": 10, "train_every": 1},
           "M=60": {"n_members": 60}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=250, help="replications of the batched row (250)")
    parser.add_argument("--rounds", type=int, default=20, help="timed ensemble rounds per window (20: a multiple "
                        "of train_every = 4, so the mean holds whole training cycles)")
    args = parser.parse_args()
    for reps, rounds in ((args.replications, args.rounds), (1, 30 * args.rounds)):
        for start in (100, 1000):
            po = per_round(lambda env: PoGAMBITTS.from_env(env, seed=0), reps, rounds * 10, start)
            print(f"{reps} replication(s), rounds {start}-{start + rounds}; per round (act + step + update)")
            print(f"  {'poGAMBITTS (linear)':34s} {po * 1e3:9.3f} ms   1x")
            for name, kwargs in CONFIGS.items():
                t = per_round(lambda env, kw=kwargs: EnsembleGAMBITTS.from_env(env, seed=0, **kw), reps, rounds, start)
                print(f"  {'EnsembleGAMBITTS ' + name:34s} {t * 1e3:9.3f} ms   {t / po:.1f}x")


if __name__ == "__main__":
    main()
