"""Shared machinery of the built-in agents: the batched core and its single-environment view.

A built-in agent keeps every piece of state with a leading replication axis
of length R. Built on a vector environment with R sub-environments it acts on
``(R, obs_dim)`` observations; built on a single environment it is the R = 1
case, taking ``(obs_dim,)`` and returning a plain ``int``. Both go through the
same ``_act`` / ``_update`` code.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from gambit_gym.contexts import ContextSpace


class IncompatibleEnvError(ValueError):
    """The environment lacks something the agent needs."""


def describe_env(env: Any) -> dict[str, Any]:
    """What an agent may know of an environment: spaces, contexts, embedding size, batch size."""
    unwrapped = env.unwrapped
    vector = isinstance(unwrapped, gym.vector.VectorEnv)
    action_space = unwrapped.single_action_space if vector else unwrapped.action_space
    obs_space = unwrapped.single_observation_space if vector else unwrapped.observation_space
    if not isinstance(action_space, gym.spaces.Discrete):
        raise IncompatibleEnvError(
            f"env: the agent needs a Discrete action space, got {type(action_space).__name__}"
        )
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise IncompatibleEnvError(f"env: the agent needs a 1-D Box observation space, got {obs_space}")
    contexts = getattr(unwrapped, "contexts", None)
    return {
        "n_envs": unwrapped.num_envs if vector else None,
        "n_actions": int(action_space.n),
        "obs_dim": int(obs_space.shape[0]),
        "contexts": contexts if isinstance(contexts, ContextSpace) else None,
        "embedding_dim": getattr(unwrapped, "embedding_dim", None),
        "simulator": getattr(unwrapped, "sample_treatments", None),
    }


class BatchedAgent:
    """Base of the built-in agents. Subclasses implement ``_init_state``, ``_act`` and ``_update``.

    ``_act(ctx (R,), x (R, F))`` returns actions ``(R,)``; ``_update(ctx, x, a, y, z)``
    learns from one round (``z`` is ``None`` unless ``uses_embedding``).
    """

    uses_embedding = False
    needs_contexts = True
    #: ``from_env`` passes the environment's simulation access as ``simulator=``.
    wants_simulator = False

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        contexts: ContextSpace | None = None,
        embedding_dim: int | None = None,
        n_envs: int | None = None,
        seed: int | np.random.SeedSequence | None = None,
    ) -> None:
        if self.needs_contexts and contexts is None:
            raise IncompatibleEnvError(
                f"env: {type(self).__name__} needs an environment with discrete contexts "
                "(a GeneratorMediated-v0 environment exposes them as env.unwrapped.contexts)"
            )
        if self.uses_embedding and embedding_dim is None:
            raise IncompatibleEnvError(
                f"env: {type(self).__name__} needs info['treatment_embedding']; this environment "
                "declares no embedding_dim (use a GeneratorMediated-v0 environment)"
            )
        self.n_actions = int(n_actions)
        self.obs_dim = int(obs_dim)
        self.contexts = contexts
        self.embedding_dim = embedding_dim
        self.batched = n_envs is not None
        self.n_rows = int(n_envs) if n_envs is not None else 1
        self._rows = np.arange(self.n_rows)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._init_state()

    @classmethod
    def from_env(cls, env: Any, seed: int | np.random.SeedSequence | None = None, **kwargs: Any):
        """Build for ``env``: a single environment or a vector one (then batched over its sub-envs)."""
        spec = describe_env(env)
        if cls.wants_simulator:
            kwargs.setdefault("simulator", spec["simulator"])
        return cls(
            n_actions=spec["n_actions"],
            obs_dim=spec["obs_dim"],
            contexts=spec["contexts"],
            embedding_dim=spec["embedding_dim"],
            n_envs=spec["n_envs"],
            seed=seed,
            **kwargs,
        )

    # -- subclass hooks ------------------------------------------------------------------
    def _init_state(self) -> None:
        raise NotImplementedError

    def _act(self, ctx: np.ndarray, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _update(self, ctx, x, a, y, z) -> None:
        raise NotImplementedError

    # -- the protocol --------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> int | np.ndarray:
        """Thompson-sample an action for each observation."""
        x = self._check_obs(obs)
        ctx = self.contexts.index(x) if self.contexts is not None else np.zeros(self.n_rows, dtype=np.int64)
        actions = self._act(ctx, x)
        return actions if self.batched else int(actions[0])

    def update(self, obs: np.ndarray, action: Any, reward: Any, info: dict[str, Any]) -> None:
        """Learn from one round; ``obs`` is the observation the action was chosen on."""
        x = self._check_obs(obs)
        a = self._check_action(action)
        y = self._check_reward(reward)
        z = self._check_embedding(info) if self.uses_embedding else None
        ctx = self.contexts.index(x) if self.contexts is not None else np.zeros(self.n_rows, dtype=np.int64)
        self._update(ctx, x, a, y, z)

    def reset(self) -> None:
        """Back to the prior (the random stream goes on)."""
        self._init_state()

    # -- input checks --------------------------------------------------------------------
    def _check_obs(self, obs: Any) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64)
        want = (self.n_rows, self.obs_dim) if self.batched else (self.obs_dim,)
        if x.shape != want:
            raise ValueError(f"obs: expected shape {want}, got {x.shape}")
        return x if self.batched else x[None]

    def _check_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action)
        want = (self.n_rows,) if self.batched else ()
        if a.shape != want or not (np.issubdtype(a.dtype, np.integer)) or isinstance(action, bool):
            raise TypeError(
                f"action: expected {'an integer array of shape ' + str(want) if self.batched else 'an int'} "
                f"in [0, {self.n_actions - 1}], got {action!r}"
            )
        if np.any((a < 0) | (a >= self.n_actions)):
            raise ValueError(f"action: expected values in [0, {self.n_actions - 1}], got {action!r}")
        return a.reshape(self.n_rows).astype(np.int64)

    def _check_reward(self, reward: Any) -> np.ndarray:
        if not self.batched and (isinstance(reward, bool) or not isinstance(reward, numbers.Real)):
            raise TypeError(f"reward: expected a real number, got {reward!r} ({type(reward).__name__})")
        y = np.asarray(reward)
        want = (self.n_rows,) if self.batched else ()
        if y.shape != want or not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_):
            raise TypeError(f"reward: expected real numbers of shape {want}, got {reward!r}")
        y = y.astype(np.float64).reshape(self.n_rows)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"reward: expected finite values, got {reward!r}")
        return y

    def _check_embedding(self, info: dict[str, Any]) -> np.ndarray:
        if not isinstance(info, dict) or "treatment_embedding" not in info:
            raise KeyError(
                f"info: {type(self).__name__} needs info['treatment_embedding'] (the working embedding); "
                f"got keys {sorted(info) if isinstance(info, dict) else type(info).__name__}"
            )
        z = np.asarray(info["treatment_embedding"], dtype=np.float64)
        want = (self.n_rows, self.embedding_dim) if self.batched else (self.embedding_dim,)
        if z.shape != want:
            raise ValueError(f"info['treatment_embedding']: expected shape {want}, got {z.shape}")
        return z.reshape(self.n_rows, self.embedding_dim)

    # -- save and restore ----------------------------------------------------------------
    def _state_objects(self) -> dict[str, Any]:
        """Name -> object whose numpy-array attributes are the learned state."""
        return {"agent": self}

    def state_dict(self) -> dict[str, Any]:
        """Every learned array plus the random stream's state (JSON-able), copied."""
        arrays = {}
        for prefix, obj in self._state_objects().items():
            for key, value in vars(obj).items():
                if isinstance(value, np.ndarray) and not key.startswith("_") and value.flags.writeable:
                    arrays[f"{prefix}.{key}"] = value.copy()
        return {"class": type(self).__name__, "arrays": arrays, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("class") != type(self).__name__:
            raise ValueError(f"state: saved by {state.get('class')!r}, cannot load into {type(self).__name__}")
        objects = self._state_objects()
        current = BatchedAgent.state_dict(self)["arrays"]  # numpy state only: subclasses load their own extras
        if set(state["arrays"]) != set(current):
            raise ValueError(f"state: array names differ: {sorted(set(state['arrays']) ^ set(current))}")
        for name, value in state["arrays"].items():
            if value.shape != current[name].shape:
                raise ValueError(f"state: {name} has shape {value.shape}, expected {current[name].shape}")
            prefix, key = name.split(".", 1)
            setattr(objects[prefix], key, np.array(value, copy=True))
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | Path) -> None:
        """Write the state to an ``.npz`` file (plain arrays and JSON; no pickle)."""
        state = self.state_dict()
        meta = json.dumps({"class": state["class"], "rng": state["rng"]})
        np.savez(path, __meta__=np.array(meta), **state["arrays"])

    def load(self, path: str | Path) -> None:
        """Restore the state written by :meth:`save` into an agent built the same way."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
        self.load_state_dict({"class": meta["class"], "arrays": arrays, "rng": meta["rng"]})
