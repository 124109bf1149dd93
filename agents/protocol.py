"""What an agent is: anything with ``from_env``, ``act``, ``update`` and ``reset``.

An agent needs no base class. :func:`agents.run_bandit` builds one per
run with ``AgentClass.from_env(vector_env, seed=...)`` and then, each round,
calls ``act(obs)`` with the batch of observations ``(R, obs_dim)`` and expects
actions ``(R,)``, then ``update(obs, actions, rewards, info)`` with the info
dict of the vector environment (``info["treatment_embedding"]`` is ``(R, d)``).
Built on a single environment, the built-in agents take one observation and
return one ``int``. See ``examples/custom_agent.py``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


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
