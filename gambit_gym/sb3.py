"""Stable-Baselines3 on GeneratorMediated-v0 through SB3's own front doors, with settings that learn.

SB3 takes the environment by id like any other (``PPO("MlpPolicy", ENV_ID)``,
``make_vec_env(ENV_ID, n_envs=4)``, ``SubprocVecEnv``, ``evaluate_policy``), but
its defaults are tuned for long-horizon control with unit-scale rewards, and on
this bandit they stay at the random policy's regret. :data:`BANDIT_PRESETS`
holds settings for a contextual bandit, per algorithm; pass them as keywords
and wrap the environment in :class:`~gambit_gym.wrappers.StandardizeReward`::

    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from gambit_gym import ENV_ID
    from gambit_gym.sb3 import BANDIT_PRESETS
    from gambit_gym.wrappers import StandardizeReward

    model = PPO("MlpPolicy", ENV_ID, **BANDIT_PRESETS["PPO"])      # the presets alone
    env = make_vec_env(ENV_ID, n_envs=1, wrapper_class=StandardizeReward)
    model = PPO("MlpPolicy", env, **BANDIT_PRESETS["PPO"]).learn(1000)   # as agents.sb3.run_sb3 runs it

Final pseudo-regret after T = 1000 rounds of online learning on the default
environment (synthetic, K = 5; mean +- SE over 8 seeds; the uniform random
policy: 494.3 +- 5.4):

=========  ============  ============  =============================
algorithm  SB3 defaults  presets       presets + ``StandardizeReward``
=========  ============  ============  =============================
PPO        494.9 +- 4.5  440.0 +- 6.6  314.4 +- 24.7
A2C        488.3 +- 6.3  490.6 +- 8.2  293.1 +- 21.0
DQN        717.1 +- 60   297.4 +- 26   242.3 +- 29
=========  ============  ============  =============================

For ``SubprocVecEnv`` give the id as ``"gambit_gym:GeneratorMediated-v0"``
(Gymnasium's ``module:id`` form): each worker process then imports gambit_gym,
which registers the id, before making its environment (plain ``ENV_ID`` works
only where the worker re-imports a main script that imports gambit_gym).

Why these values:

* ``gamma = 0`` (and ``gae_lambda = 1``): an action changes nothing but its own
  reward, so the return to learn is the immediate reward; any discounting of
  later rounds only adds the noise of rewards the action did not cause.
* small rollouts (PPO ``n_steps = 32`` with 4 epochs of minibatches of 32, A2C
  ``n_steps = 5``) and DQN updates every step after 50 random steps, with its
  exploration decaying over the first 20% of training: the policy improves
  many times within T = 1000 rounds (SB3's PPO default collects 2048 steps
  before its first update).
* ``learning_rate = 1e-3``: a little above SB3's defaults, for few updates.
* the reward, not a setting: it is ~80 (the paper's sqrt daily steps) with an sd
  of ~1 to 25, far off the unit scale SB3's value functions and default
  initialisation assume. ``StandardizeReward`` passes the learner
  ``(r - mean) / sd`` with the running statistics of the rewards seen so far (no
  oracle knowledge); the recorded regret is the environment's, unaffected.
  :class:`SB3VecEnv` does the same with ``standardize_reward=True``.

:class:`SB3VecEnv` (needs the ``sb3`` extra; imported on first use) lets SB3 drive
the native vector environment, all sub-environments in one array operation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gambit_gym.sb3_vec_env import SB3VecEnv

#: Settings for SB3 algorithms on a contextual bandit, by algorithm name; see the module docstring.
#: ``agents.sb3.run_sb3`` uses exactly these (overridable per keyword).
BANDIT_PRESETS: dict[str, dict[str, Any]] = {
    "PPO": {"gamma": 0.0, "gae_lambda": 1.0, "n_steps": 32, "batch_size": 32, "n_epochs": 4, "learning_rate": 1e-3},
    "A2C": {"gamma": 0.0, "gae_lambda": 1.0, "n_steps": 5, "learning_rate": 1e-3},
    "DQN": {"gamma": 0.0, "learning_starts": 50, "buffer_size": 10_000, "batch_size": 32, "train_freq": 1,
            "target_update_interval": 50, "exploration_fraction": 0.2, "exploration_final_eps": 0.02,
            "learning_rate": 1e-3},
}

__all__ = ["BANDIT_PRESETS", "SB3VecEnv"]


def __getattr__(name: str) -> Any:
    # SB3VecEnv subclasses an SB3 class: import it (and SB3) only when asked for, so the presets need no SB3.
    if name == "SB3VecEnv":
        from gambit_gym.sb3_vec_env import SB3VecEnv

        return SB3VecEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
