"""What an agent is, and the shared machinery of the built-in agents.

An agent needs no base class: :class:`Agent` is the protocol, anything with
``from_env``, ``act``, ``update`` and ``reset``. :func:`agents.run_bandit`
builds one per run with ``AgentClass.from_env(vector_env, seed=...)`` and then,
each round, calls ``act(obs)`` with the batch of observations ``(R, obs_dim)``
and expects actions ``(R,)``, then ``update(obs, actions, rewards, info)`` with
the info dict of the vector environment (``info["treatment_embedding"]`` is
``(R, d)``). See ``examples/custom_agent.py``.

The built-in agents derive from :class:`BatchedAgent`, which keeps every piece
of state with a leading replication axis of length R. Built on a vector
environment with R sub-environments an agent acts on ``(R, obs_dim)``
observations; built on a single environment it is the R = 1 case, taking
``(obs_dim,)`` and returning a plain ``int``. Both go through the same
``_act`` / ``_update`` code.
"""

from __future__ import annotations

import abc
import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from agents.state import State, check_state
from gambit_gym.contexts import ContextSpace


@runtime_checkable
class Agent(Protocol):
    """The four methods :func:`agents.run_bandit` uses."""

    @classmethod
    def from_env(cls, env: Any, seed: int | np.random.SeedSequence | None = None, **kwargs: Any) -> Agent:
        """Build for ``env`` (a single or a vector environment)."""
        ...

    def act(self, obs: np.ndarray) -> Any:
        """Choose actions for the current observations."""
        ...

    def update(self, obs: np.ndarray, action: Any, reward: Any, info: dict[str, Any]) -> None:
        """Learn from one round: the observation the action was chosen on, the action, its reward and info."""
        ...

    def reset(self) -> None:
        """Forget everything learned (back to the prior)."""
        ...


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


class BatchedAgent(abc.ABC):
    """Base of the built-in agents: input checks, the single-env view, save and restore.

    A subclass implements five hooks, all on the batched arrays (R rows):

    * ``_init_state()``: set the prior state (called on construction and by ``reset``).
    * ``_act(ctx (R,), x (R, F))``: return actions ``(R,)``.
    * ``_update(ctx, x, a, y, z)``: learn from one round (``z`` is ``None`` unless ``uses_embedding``).
    * ``_state()``: the learned state, every array and scalar by name (copies; scalars as Python
      ``int`` / ``float``); compose posteriors with :func:`agents.state.prefixed`.
    * ``_load_state(state)``: put back a state with exactly the names, shapes and kinds of ``_state()``
      (already checked and copied by :meth:`load_state_dict`).

    The random stream is saved and restored by the base class.
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
    def from_env(cls, env: Any, seed: int | np.random.SeedSequence | None = None, **kwargs: Any) -> BatchedAgent:
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
    @abc.abstractmethod
    def _init_state(self) -> None:
        """Set every piece of learned state to the prior."""

    @abc.abstractmethod
    def _act(self, ctx: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Actions ``(R,)`` for context indices ``ctx (R,)`` and observations ``x (R, F)``."""

    @abc.abstractmethod
    def _update(self, ctx: np.ndarray, x: np.ndarray, a: np.ndarray, y: np.ndarray, z: np.ndarray | None) -> None:
        """Learn from one round: actions ``a (R,)``, rewards ``y (R,)``, embeddings ``z (R, d)`` or ``None``."""

    @abc.abstractmethod
    def _state(self) -> State:
        """Every learned array and scalar by name, copied."""

    @abc.abstractmethod
    def _load_state(self, state: State) -> None:
        """Put back a checked copy of a state with the names, shapes and kinds of :meth:`_state`."""

    # -- (context, action) cells ---------------------------------------------------------
    def _cell(self, ctx: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Flat index of the (context, action) cell in a table of ``n_contexts * n_actions`` cells."""
        return ctx * self.n_actions + action

    def _action_cells(self, ctx: np.ndarray) -> np.ndarray:
        """The cells of every action in each row's context: ``ctx (R,) -> (R, K)``."""
        return self._cell(ctx[:, None], np.arange(self.n_actions))

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
    def state_dict(self) -> dict[str, Any]:
        """``{"class", "state", "rng"}``: the class name, every learned array and scalar by name
        (copies; see :meth:`_state`) and the random stream's state (JSON-able)."""
        return {"class": type(self).__name__, "state": self._state(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, into an agent built the same way."""
        if not isinstance(state, Mapping) or not {"class", "state", "rng"} <= set(state):
            raise ValueError("state: expected a mapping with keys 'class', 'state' and 'rng' (see state_dict)")
        if state["class"] != type(self).__name__:
            raise ValueError(f"state: saved by {state['class']!r}, cannot load into {type(self).__name__}")
        values = check_state("state", self._state(), state["state"])
        self._load_state(values)
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | Path) -> None:
        """Write the state to an ``.npz`` file: one array per state array, the scalars, class name and
        random stream in a JSON header (no pickle)."""
        state = self.state_dict()
        arrays = {name: v for name, v in state["state"].items() if isinstance(v, np.ndarray)}
        scalars = {name: v for name, v in state["state"].items() if not isinstance(v, np.ndarray)}
        meta = json.dumps({"class": state["class"], "rng": state["rng"], "scalars": scalars})
        np.savez(path, __meta__=np.array(meta), **arrays)

    def load(self, path: str | Path) -> None:
        """Restore the state written by :meth:`save` into an agent built the same way."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
        scalars = meta.get("scalars", {})
        self.load_state_dict({"class": meta["class"], "state": {**arrays, **scalars}, "rng": meta["rng"]})
