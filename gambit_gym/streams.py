"""Random streams: every random draw in gambit_gym comes from one named child of a seed.

A stream is ``SeedSequence(seed, spawn_key=(key,))``, the same sequence as
``SeedSequence(seed).spawn(key + 1)[key]``, so the keys below are part of the
results: changing one changes every problem instance or simulation draw that uses it.

Children of ``problem_seed`` (the problem instance; the episode seed never touches it):
    TREATMENT_MEANS   the Gaussian treatment means m[x, a] (prompt spread, then context shift)
    OUTCOME           the synthetic outcome: the linear direction or the MLP weights
    CONTEXT_EFFECTS   the additive reward effect of each context-factor level
    PROJECTION        the misspecified variant's random projection (``view="projection"``)
    CACHED_MLP        the cached-LLM variant's MLP outcome weights
    SAFETY_ORACLE     the safety layer's Monte-Carlo oracle rule (compound checks)
Children of the episode ``seed`` of ``reset(seed=...)`` (the episode itself draws from the root, the seed):
    SIMULATION        simulation access (``sample_treatments``), apart from the episode's draws
    SAFETY            the safety layer's own draws (regenerations, coin flips), spawned under the episode
                      stream's seed far from the small keys an episode seed is spawned with
"""

from __future__ import annotations

import numpy as np

TREATMENT_MEANS = 0
OUTCOME = 1
CONTEXT_EFFECTS = 2
PROJECTION = 3
CACHED_MLP = 7
SIMULATION = 1
SAFETY_ORACLE = 11
SAFETY = 0x73616665  # "safe"


def stream(seed: int, key: int) -> np.random.Generator:
    """The generator of child stream ``key`` of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))
