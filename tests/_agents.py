"""Shared pieces of the agent tests: every built-in agent as a spec, building and playing them."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from agents import EnsembleGAMBITTS, FoGAMBITTS, LinearTS, PoGAMBITTS, StandardTS

#: EnsembleGAMBITTS on the CPU runs compiled kernels (numba, in the torch extra)
needs_ensemble = pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                                    reason='EnsembleGAMBITTS needs numba: pip install "gambit-gym[torch]"')

#: every linear / conjugate built-in agent and its variants, as run_bandit specs
ALL_AGENTS = {
    "StdTS": StandardTS,
    "StdTS-context": (StandardTS, {"contextual": True}),
    "LinTS": LinearTS,
    "LinTS-interactions": (LinearTS, {"interactions": True}),
    "poGAMBITTS": (PoGAMBITTS, {"n_offline": 100}),
    "poGAMBITTS-hedged": (PoGAMBITTS, {"n_offline": 100, "hedged": True}),
    "poGAMBITTS-fixed-v": (PoGAMBITTS, {"n_offline": 100, "noise_var": 1.0}),
    "foGAMBITTS": FoGAMBITTS,
}

#: both forms of the ensemble, tiny: it trains after 10 rounds and its 32-slot buffer wraps within 40
TINY_ENSEMBLES = {
    "ensemble-po": (EnsembleGAMBITTS, {"n_members": 3, "hidden": 8, "buffer_size": 32, "batch_size": 8,
                                       "warmup": 10, "n_offline": 8, "n_score": 4}),
    "ensemble-fo": (EnsembleGAMBITTS, {"n_members": 3, "hidden": 8, "buffer_size": 32, "batch_size": 8,
                                       "warmup": 10, "n_mc": 4, "simulation": False}),
}


def build(spec, env, seed):
    """``spec`` as in ``run_bandit`` (a class or a (class, kwargs) pair), built for ``env``."""
    cls, kwargs = spec if isinstance(spec, tuple) else (spec, {})
    return cls.from_env(env, seed=seed, **kwargs)


def play(agent, venv, seed, rounds):
    """``rounds`` rounds of ``agent`` on ``venv`` reset with ``seed``; the actions, ``(rounds, R)``."""
    obs, _ = venv.reset(seed=seed)
    actions = []
    for _ in range(rounds):
        a = agent.act(obs)
        nobs, r, _, _, info = venv.step(a)
        agent.update(obs, a, r, info)
        actions.append(np.array(a, copy=True))
        obs = nobs
    return np.array(actions)
