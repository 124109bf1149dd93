"""Stable-Baselines3's ``VecEnv`` over the native vector environment (needs the ``sb3`` extra).

Import it as ``from gambit_gym.sb3 import SB3VecEnv``; this module is where it lives,
apart, because defining it imports Stable-Baselines3.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from gambit_gym.extras import require
from gambit_gym.vector_env import GeneratorMediatedVectorEnv
from gambit_gym.wrappers import RunningStandardizer

_vec_env = require("stable_baselines3.common.vec_env", "sb3", "gambit_gym.sb3.SB3VecEnv")


class SB3VecEnv(_vec_env.VecEnv):
    """SB3 steps all sub-environments of a :class:`GeneratorMediatedVectorEnv` in one array operation.

    SB3's vector API on top of the native one: ``reset()`` returns the
    observations (infos in ``reset_infos``), ``step`` returns ``(obs, rewards,
    dones, infos)`` with ``infos`` a list of per-environment dicts (the single
    environment's info keys, plus SB3's ``"TimeLimit.truncated"`` and, at the end
    of an episode, ``"terminal_observation"``), and an ended episode is reset at
    once (SB3's convention; the native environment would reset on the next step,
    drawing the same numbers). ``seed(s)`` seeds sub-environment i with ``s + i``
    at the next reset, like ``DummyVecEnv``: with ``seeding="per-env"`` the
    environment's numbers are then exactly those of ``make_vec_env(ENV_ID, n_envs)``
    with the same seed. ``get_attr``, ``set_attr`` and ``env_method`` reach the
    native environment's ``get_attr`` / ``set_attr`` / ``call``.

    Args:
        venv: a :class:`GeneratorMediatedVectorEnv`, e.g. from
            ``gym.make_vec(ENV_ID, num_envs=R, vectorization_mode="vector_entry_point")``.
        standardize_reward: pass the learner each sub-environment's reward
            standardised with the running mean and sd of its earlier rewards, as
            :class:`~gambit_gym.wrappers.StandardizeReward` does for one environment
            (the rewards are ~80; SB3's defaults assume unit scale). The infos keep the
            environment's own numbers.

    Rewards are float32, as in SB3's ``DummyVecEnv``. Wrap it in SB3's ``VecMonitor``
    for episode statistics.

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> from gambit_gym import ENV_ID
        >>> from gambit_gym.sb3 import BANDIT_PRESETS
        >>> venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point")
        >>> env = SB3VecEnv(venv, standardize_reward=True)
        >>> model = PPO("MlpPolicy", env, seed=0, device="cpu", **BANDIT_PRESETS["PPO"]).learn(64)
        >>> env.reset().shape
        (2, 7)
    """

    def __init__(self, venv: Any, standardize_reward: bool = False) -> None:
        base = getattr(venv, "unwrapped", None)
        if not isinstance(base, GeneratorMediatedVectorEnv):
            raise TypeError(
                "venv: expected a GeneratorMediatedVectorEnv (gym.make_vec(ENV_ID, num_envs=R, "
                f"vectorization_mode='vector_entry_point')), got {type(venv).__name__}"
            )
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.NEXT_STEP:
            raise ValueError(f"venv: expected Gymnasium's NEXT_STEP autoreset, got {mode}")
        if not isinstance(standardize_reward, bool):
            raise TypeError(f"standardize_reward: expected True or False, got {standardize_reward!r}")
        self.venv = venv
        self.standardizer = RunningStandardizer(base.num_envs) if standardize_reward else None
        self._actions: np.ndarray | None = None
        super().__init__(base.num_envs, base.single_observation_space, base.single_action_space)

    # -- the round ------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, info = self.venv.reset(seed=seeds)
        self.reset_infos = self._split(info)
        self._reset_seeds()  # seeds and options are used once, as in SB3's own VecEnvs
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_wait: call step_async(actions) first")
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        infos = self._split(info)
        for i, env_info in enumerate(infos):
            env_info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if self.standardizer is not None:
            rewards = self.standardizer(rewards)
        if dones.any():
            if not dones.all():  # one clock for every sub-environment: they end together
                raise RuntimeError("step_wait: only some sub-environments ended; SB3VecEnv needs them to end together")
            for i, env_info in enumerate(infos):
                env_info["terminal_observation"] = obs[i]
            obs, reset_info = self.venv.reset()  # what the native env's next step would do, drawn now
            self.reset_infos = self._split(reset_info)
        return obs, rewards.astype(np.float32), dones, infos

    def _split(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """The batched info as one dict per sub-environment (masks dropped: every key is in every row)."""
        rows: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for key, value in info.items():
            if key.startswith("_"):
                continue
            if isinstance(value, dict):
                parts = [(k, v) for k, v in value.items() if not k.startswith("_")]
                for i, row in enumerate(rows):
                    row[key] = {k: v[i] for k, v in parts}
            else:
                for i, row in enumerate(rows):
                    row[key] = value[i]
        return rows

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        return list(self.venv.render())

    # -- attributes and methods ---------------------------------------------------------------
    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        values = self.venv.get_attr(attr_name)
        return [values[i] for i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        chosen = self._indices(indices)
        if len(chosen) == self.num_envs:
            self.venv.set_attr(attr_name, value)
            return
        values = list(self.venv.get_attr(attr_name))
        for i in chosen:
            values[i] = value
        self.venv.set_attr(attr_name, values)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        results = self.venv.call(method_name, *method_args, **method_kwargs)
        return [results[i] for i in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))  # the sub-environments are rows, never wrapped

    def _indices(self, indices: None | int | Iterable[int]) -> list[int]:
        chosen = list(self._get_indices(indices))
        for i in chosen:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.num_envs:
                raise ValueError(f"indices: expected sub-environment indices in [0, {self.num_envs - 1}], got {i!r}")
        return [int(i) for i in chosen]
