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
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from agents.state import State, StateFileError, StateFileReader, check_state, write_state_file
from gambit_gym.contexts import ContextSpace
from gambit_gym.validation import check_int
from gambit_gym.version import __version__


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


#: Spawn key, under the agent's seed, of the stream :meth:`BatchedAgent.action_probabilities` draws from.
PROPENSITY_STREAM = 0x70726F70  # "prop": far from the small keys an agent's seed might be spawned with


def propensity_seed(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    """The seed of the propensity stream of an agent seeded with ``seed``: its child ``PROPENSITY_STREAM``.

    Made directly (not by ``seed.spawn``, which would advance a SeedSequence's spawn counter), so the
    acting stream and anything else spawned from ``seed`` stay exactly as they were.

    Example:
        >>> propensity_seed(3).spawn_key, propensity_seed(None).spawn_key == (PROPENSITY_STREAM,)
        ((1886547824,), True)
    """
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, PROPENSITY_STREAM),
                                      pool_size=seed.pool_size)
    return np.random.SeedSequence(seed, spawn_key=(PROPENSITY_STREAM,))


class IncompatibleEnvError(ValueError):
    """The environment lacks something the agent needs."""


def describe_env(env: Any) -> dict[str, Any]:
    """What an agent may know of an environment: spaces, contexts, embedding size, batch size, variant."""
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
    variant = getattr(getattr(unwrapped, "scenario", None), "variant", None)
    return {
        "n_envs": unwrapped.num_envs if vector else None,
        "n_actions": int(action_space.n),
        "obs_dim": int(obs_space.shape[0]),
        "contexts": contexts if isinstance(contexts, ContextSpace) else None,
        "embedding_dim": getattr(unwrapped, "embedding_dim", None),
        "simulator": getattr(unwrapped, "sample_treatments", None),
        "variant": variant if isinstance(variant, str) else None,
    }


class BatchedAgent(abc.ABC):
    """Base of the built-in agents: input checks, the single-env view, save and restore.

    A subclass implements five hooks, all on the batched arrays (R rows):

    * ``_init_state()``: set the prior state (called on construction and by ``reset``).
    * ``_sample_scores(ctx (R,), x (R, F), rng)``: one Thompson draw of every action's score ``(R, K)``
      from ``rng``; the agent plays the argmax, and :meth:`action_probabilities` repeats the draw.
      (Or override ``_act(ctx, x)`` to return actions ``(R,)`` directly; such an agent reports no
      action probabilities.)
    * ``_update(ctx, x, a, y, z)``: learn from one round (``z`` is ``None`` unless ``uses_embedding``).
    * ``_state()``: the learned state, every array and scalar by name (copies; scalars as Python
      ``int`` / ``float``); compose posteriors with :func:`agents.state.prefixed`.
    * ``_load_state(state)``: put back a state with exactly the names, shapes and kinds of ``_state()``
      (already checked and copied by :meth:`load_state_dict`).

    The random stream is saved and restored by the base class. :meth:`action_probabilities`
    draws from a second stream of its own (see :data:`PROPENSITY_STREAM`), which is not saved:
    estimating propensities never changes an action.
    """

    uses_embedding = False
    needs_contexts = True
    #: ``from_env`` passes the environment's simulation access as ``simulator=``.
    wants_simulator = False
    #: the environment's variant (``"synthetic"``, ...) when built by ``from_env`` on a GeneratorMediated env
    env_variant: str | None = None

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
        self._actions = np.arange(self.n_actions)
        # every context's action cells, (C, K): a row lookup per round instead of three numpy calls
        n_tables = contexts.n_contexts if contexts is not None else 1
        self._cells_by_context = self._cell(np.arange(n_tables, dtype=np.int64)[:, None], self._actions)
        # the shapes act and update accept (their fast paths compare against these)
        self._obs_shape = (self.n_rows, self.obs_dim) if self.batched else (self.obs_dim,)
        self._embedding_shape = None if embedding_dim is None else \
            ((self.n_rows, embedding_dim) if self.batched else (embedding_dim,))
        self._no_context = np.zeros(self.n_rows, dtype=np.int64)
        self._no_context.setflags(write=False)
        self._valid_obs_context = self._valid_observation_table(contexts)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._init_state()

    @classmethod
    def from_env(cls, env: Any, seed: int | np.random.SeedSequence | None = None, **kwargs: Any) -> BatchedAgent:
        """Build for ``env``: a single environment or a vector one (then batched over its sub-envs)."""
        spec = describe_env(env)
        if cls.wants_simulator:
            kwargs.setdefault("simulator", spec["simulator"])
        agent = cls(
            n_actions=spec["n_actions"],
            obs_dim=spec["obs_dim"],
            contexts=spec["contexts"],
            embedding_dim=spec["embedding_dim"],
            n_envs=spec["n_envs"],
            seed=seed,
            **kwargs,
        )
        agent.env_variant = spec["variant"]  # recorded in saved state and checked on load
        return agent

    # -- subclass hooks ------------------------------------------------------------------
    @abc.abstractmethod
    def _init_state(self) -> None:
        """Set every piece of learned state to the prior."""

    def _sample_scores(self, ctx: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One Thompson draw of every action's score, ``(R, K)``, using only ``rng``; the agent plays its argmax.

        Implement this (and not ``_act``) when acting is "draw, then take the argmax": the same
        code then gives :meth:`action_probabilities` by repeating the draw from another stream.
        """
        raise NotImplementedError(
            f"{type(self).__name__}: implement _sample_scores(ctx, x, rng) (Thompson sampling: a draw of every "
            "action's score) or override _act(ctx, x)"
        )

    def _act(self, ctx: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Actions ``(R,)`` for context indices ``ctx (R,)`` and observations ``x (R, F)``: by default the
        argmax of :meth:`_sample_scores` drawn from the agent's own stream."""
        return self._sample_scores(ctx, x, self.rng).argmax(axis=1)

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

    @staticmethod
    def _valid_observation_table(contexts: ContextSpace | None) -> dict[bytes, int]:
        """Context index of every valid observation, keyed by the bytes of its float64 features."""
        if not isinstance(contexts, ContextSpace):
            return {}
        features = np.ascontiguousarray(contexts.features, dtype=np.float64)
        # the indices index() gives them, so a lookup returns exactly what index() would
        return {row.tobytes(): int(c) for row, c in zip(features, contexts.index(features), strict=True)}

    def _context_index(self, x: np.ndarray) -> np.ndarray:
        """Each row's context index ``(R,)``; all 0 for an agent built without contexts."""
        if self.contexts is None:
            return self._no_context
        if self.n_rows == 1:
            # one row: a dict lookup of the n_contexts valid observations (~20x cheaper than index());
            # anything else (not one-hot, NaN, -0.0) goes through index(), which checks and names the factor
            ctx = self._valid_obs_context.get(x.tobytes())
            if ctx is not None:
                return np.array([ctx], dtype=np.int64)
        return self.contexts.index(x)

    def _action_cells(self, ctx: np.ndarray) -> np.ndarray:
        """The cells of every action in each row's context: ``ctx (R,) -> (R, K)``."""
        return self._cells_by_context.take(ctx, axis=0)  # = self._cell(ctx[:, None], self._actions), a copy

    # -- the protocol --------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> int | np.ndarray:
        """Thompson-sample an action for each observation."""
        x = self._check_obs(obs)
        ctx = self._context_index(x)
        actions = self._act(ctx, x)
        return actions if self.batched else int(actions[0])

    def update(self, obs: np.ndarray, action: Any, reward: Any, info: dict[str, Any]) -> None:
        """Learn from one round; ``obs`` is the observation the action was chosen on."""
        x = self._check_obs(obs)
        a = self._check_action(action)
        y = self._check_reward(reward)
        z = self._check_embedding(info) if self.uses_embedding else None
        ctx = self._context_index(x)
        self._update(ctx, x, a, y, z)

    def reset(self) -> None:
        """Back to the prior (the random stream goes on)."""
        self._init_state()

    # -- propensities --------------------------------------------------------------------
    @property
    def reports_propensities(self) -> bool:
        """Whether :meth:`action_probabilities` works: the agent acts by the argmax of a sampled score
        (it implements ``_sample_scores`` and keeps the default ``_act``)."""
        cls = type(self)
        return cls._sample_scores is not BatchedAgent._sample_scores and cls._act is BatchedAgent._act

    def action_probabilities(self, obs: np.ndarray, n_draws: int = 1000) -> np.ndarray:
        """Monte-Carlo estimate of the probability that :meth:`act` plays each action on ``obs`` now.

        Repeats the agent's own draw (``_sample_scores``) ``n_draws`` times and counts each action's
        wins, from a random stream of its own (child :data:`PROPENSITY_STREAM` of the agent's seed), so
        it changes neither the state nor any later action. Each probability has standard error
        ``sqrt(p (1 - p) / n_draws)``. Shape ``(R, K)`` on a vector environment, ``(K,)`` on a single one.

        Example:
            >>> import gymnasium as gym, gambit_gym
            >>> from agents import StandardTS
            >>> env = gym.make("GeneratorMediated-v0")
            >>> agent = StandardTS.from_env(env, seed=0)
            >>> obs, info = env.reset(seed=0)
            >>> p = agent.action_probabilities(obs, n_draws=2000)
            >>> p.shape, float(p.sum())
            ((5,), 1.0)
        """
        n_draws = check_int("n_draws", n_draws, 1)
        if not self.reports_propensities:
            raise NotImplementedError(
                f"{type(self).__name__} reports no action probabilities: it does not act by the argmax of "
                "_sample_scores (a sampled score per action) but by an _act of its own"
            )
        x = self._check_obs(obs)
        ctx = self._context_index(x)
        if getattr(self, "_propensity_rng", None) is None:
            self._propensity_rng = np.random.default_rng(propensity_seed(self.seed))
        counts = np.zeros((self.n_rows, self.n_actions))
        for _ in range(n_draws):
            counts[self._rows, self._sample_scores(ctx, x, self._propensity_rng).argmax(axis=1)] += 1.0
        probs = counts / n_draws
        return probs if self.batched else probs[0]

    # -- input checks --------------------------------------------------------------------
    # Each check first tries the exact types the environments hand over (a float64 / float32 ndarray of the
    # right shape, a Python or numpy int, a float, a dict holding a float64 array) with a few cheap tests,
    # and returns what the general path would return for them; anything else, valid or not, takes the general
    # path, which builds the error message. At R = 1 the general checks and ContextSpace.index were about half
    # of an agent's round (benchmarks/bench_single.py).
    def _check_obs(self, obs: Any) -> np.ndarray:
        if type(obs) is np.ndarray and obs.shape == self._obs_shape and obs.dtype.kind == "f":
            x = obs.astype(np.float64, copy=False)  # what np.asarray(obs, dtype=np.float64) gives
            return x if self.batched else x.reshape(1, self.obs_dim)
        x = np.asarray(obs, dtype=np.float64)
        if x.shape != self._obs_shape:
            raise ValueError(f"obs: expected shape {self._obs_shape}, got {x.shape}")
        return x if self.batched else x[None]

    def _check_action(self, action: Any) -> np.ndarray:
        if not self.batched and (type(action) is int or type(action) is np.int64) and 0 <= action < self.n_actions:
            return np.array([action], dtype=np.int64)
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
        if not self.batched and (type(reward) is float or type(reward) is np.float64) and math.isfinite(reward):
            return np.array([reward], dtype=np.float64)
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
        if type(info) is dict:
            z = info.get("treatment_embedding")
            if type(z) is np.ndarray and z.dtype == np.float64 and z.shape == self._embedding_shape:
                return z.reshape(self.n_rows, self.embedding_dim)
        if not isinstance(info, dict) or "treatment_embedding" not in info:
            raise KeyError(
                f"info: {type(self).__name__} needs info['treatment_embedding'] (the working embedding); "
                f"got keys {sorted(info) if isinstance(info, dict) else type(info).__name__}"
            )
        z = np.asarray(info["treatment_embedding"], dtype=np.float64)
        if z.shape != self._embedding_shape:
            raise ValueError(f"info['treatment_embedding']: expected shape {self._embedding_shape}, got {z.shape}")
        return z.reshape(self.n_rows, self.embedding_dim)

    # -- save and restore ----------------------------------------------------------------
    def env_signature(self) -> dict[str, Any]:
        """The environment the state is shaped for: ``n_contexts``, ``n_actions``, ``obs_dim``,
        ``embedding_dim``, ``n_rows``, ``batched`` and ``variant`` (None where unknown). Saved with the
        state; a state loads only into an agent with the same signature (``variant`` is compared only
        when both sides know it)."""
        return {
            "n_contexts": self.contexts.n_contexts if self.contexts is not None else None,
            "n_actions": self.n_actions,
            "obs_dim": self.obs_dim,
            "embedding_dim": self.embedding_dim,
            "n_rows": self.n_rows,
            "batched": self.batched,
            "variant": self.env_variant,
        }

    def state_dict(self) -> dict[str, Any]:
        """``{"class", "env", "state", "rng"}``: the class name, :meth:`env_signature`, every learned array
        and scalar by name (copies; see :meth:`_state`) and the random stream's state (JSON-able)."""
        return {"class": type(self).__name__, "env": self.env_signature(), "state": self._state(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, into an agent built the same way for the same
        environment; everything is checked before anything is overwritten."""
        self._restore(state, "state")

    def _restore(self, saved: Mapping[str, Any], owner: str) -> None:
        if not isinstance(saved, Mapping) or not {"class", "state", "rng"} <= set(saved):
            raise ValueError(f"{owner}: expected a mapping with keys 'class', 'state' and 'rng' (see state_dict)")
        self._check_class(saved["class"], owner)
        if "env" in saved:
            self._check_env(saved["env"], owner)
        values = check_state(owner, self._state(), saved["state"])
        rng_state = self._checked_rng_state(saved["rng"], owner)
        self._load_state(values)
        self.rng.bit_generator.state = rng_state

    def _check_class(self, saved_class: Any, owner: str) -> None:
        if saved_class != type(self).__name__:
            raise ValueError(f"{owner}: saved by {saved_class!r}, cannot load into {type(self).__name__}")

    def _check_env(self, saved_env: Any, owner: str) -> None:
        current = self.env_signature()
        if not isinstance(saved_env, Mapping) or set(saved_env) != set(current):
            raise ValueError(f"{owner}: the environment signature must be a mapping with keys {sorted(current)}, "
                             f"got {saved_env!r}")
        differ = [k for k in current if saved_env[k] != current[k]
                  and not (k == "variant" and None in (saved_env[k], current[k]))]
        if differ:
            def show(env: Mapping[str, Any]) -> str:
                return ", ".join(f"{k}={env[k]!r}" for k in current)

            raise ValueError(f"{owner}: saved for an environment with {show(saved_env)}; this agent is built "
                             f"for {show(current)} (differs in {', '.join(differ)})")

    def _checked_rng_state(self, rng_state: Any, owner: str) -> dict[str, Any]:
        """``rng_state`` as a valid state of this agent's kind of bit generator (tried on a fresh one)."""
        trial = type(self.rng.bit_generator)()
        try:
            trial.state = rng_state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise ValueError(f"{owner}: rng is not a state of a {type(trial).__name__} random stream ({exc})") \
                from None
        return trial.state

    def save(self, path: str | Path) -> Path:
        """Write the state to exactly ``path`` (no suffix added), atomically: an ``.npz`` archive with one
        array per state array and a JSON header with the class, :meth:`env_signature`, the scalars and
        the random stream (no pickle). Returns the path.

        Example:
            >>> import gymnasium as gym, gambit_gym, tempfile
            >>> from agents import StandardTS
            >>> agent = StandardTS.from_env(gym.make("GeneratorMediated-v0"), seed=0)
            >>> path = agent.save(Path(tempfile.mkdtemp()) / "agent.state")
            >>> StandardTS.from_env(gym.make("GeneratorMediated-v0"), seed=1).load(path)
        """
        state = self.state_dict()
        arrays = {name: v for name, v in state["state"].items() if isinstance(v, np.ndarray)}
        scalars = {name: v for name, v in state["state"].items() if not isinstance(v, np.ndarray)}
        header = {"class": state["class"], "env": state["env"], "rng": state["rng"], "scalars": scalars,
                  "written_by": f"gambit-gym {__version__}"}
        return write_state_file(path, header, arrays)

    def load(self, path: str | Path) -> None:
        """Restore the state :meth:`save` wrote to ``path`` into an agent built the same way for the same
        environment. Nothing changes unless the whole file checks out.

        Raises:
            FileNotFoundError: no file at ``path``.
            StateFileError: the file is truncated, corrupt, not an agent state, or holds pickled objects.
            ValueError: it was saved by another agent class or for another environment (saved vs current
                are named), or an array has another shape or dtype, or a value is NaN or infinite.
        """
        with StateFileReader(path) as file:
            owner, header = str(file.path), file.header
            for key, kind in (("class", str), ("env", dict), ("rng", dict), ("scalars", dict)):
                if not isinstance(header.get(key), kind):
                    raise StateFileError(f"{owner}: the header's {key!r} is missing or not a JSON "
                                         f"{'string' if kind is str else 'object'}")
            self._check_class(header["class"], owner)  # before reading any array: the clearest error first
            self._check_env(header["env"], owner)
            live = self._state()
            arrays = file.arrays({name: v for name, v in live.items() if isinstance(v, np.ndarray)})
        self._restore({"class": header["class"], "env": header["env"], "state": {**arrays, **header["scalars"]},
                       "rng": header["rng"]}, owner)
