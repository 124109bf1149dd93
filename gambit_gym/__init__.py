"""gambit-gym: Gymnasium environments for generator-mediated bandits.

``import gambit_gym`` registers ``GeneratorMediated-v0``::

    import gymnasium as gym, gambit_gym
    env = gym.make("GeneratorMediated-v0", variant="misspecified", n_actions=40)
    venv = gym.make_vec("GeneratorMediated-v0", num_envs=256, vectorization_mode="vector_entry_point")

Episodes last ``max_episode_steps`` rounds, 1000 unless given (``env.spec.max_episode_steps``).
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from gambit_gym.contexts import ContextSpace
from gambit_gym.env import DEFAULT_MAX_EPISODE_STEPS, GeneratorMediatedEnv
from gambit_gym.scenarios import VARIANTS, Scenario, make_scenario
from gambit_gym.vector_env import GeneratorMediatedVectorEnv
from gambit_gym.version import __version__

ENV_ID = "GeneratorMediated-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="gambit_gym.env:GeneratorMediatedEnv",
        vector_entry_point="gambit_gym.vector_env:GeneratorMediatedVectorEnv",
        max_episode_steps=DEFAULT_MAX_EPISODE_STEPS,
    )

__all__ = [
    "ENV_ID",
    "VARIANTS",
    "ContextSpace",
    "GeneratorMediatedEnv",
    "GeneratorMediatedVectorEnv",
    "Scenario",
    "__version__",
    "make_scenario",
]
