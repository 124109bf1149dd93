"""``run_bandit``: Monte-Carlo replications of agents on the vector environment, with pseudo-regret."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from gambit_gym._validation import check_int

AgentSpec = Any  # a class with from_env, "sb3:PPO", a (class or "sb3:..", kwargs) pair, or a callable (env, seed)
SB3_PREFIX = "sb3:"


def _sb3_spec(spec: AgentSpec) -> tuple[str, dict[str, Any]] | None:
    """``"sb3:PPO"`` or ``("sb3:PPO", kwargs)`` -> ``("PPO", kwargs)``; anything else -> None."""
    kwargs: Mapping[str, Any] = {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        spec, kwargs = spec
    if isinstance(spec, str) and spec.startswith(SB3_PREFIX):
        return spec[len(SB3_PREFIX):], dict(kwargs)
    return None


@dataclass
class BanditResult:
    """Cumulative pseudo-regret per agent, shape ``(replications, horizon)``.

    Example:
        >>> from agents import StandardTS, run_bandit
        >>> res = run_bandit("GeneratorMediated-v0", {"StdTS": StandardTS}, horizon=20,
        ...                  replications=4, seed=0, progress=False)
        >>> res.cumulative_regret["StdTS"].shape
        (4, 20)
    """

    cumulative_regret: dict[str, np.ndarray]
    horizon: int
    replications: int
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and standard error of the final cumulative regret per agent."""
        out = {}
        for name, reg in self.cumulative_regret.items():
            final = reg[:, -1]
            se = final.std(ddof=1) / math.sqrt(len(final)) if len(final) > 1 else float("nan")
            out[name] = {"mean": float(final.mean()), "se": float(se), "seconds": self.seconds.get(name, 0.0)}
        return out

    def table(self) -> str:
        """The summary as a Markdown table."""
        rows = [f"| agent | final cumulative regret (mean +- SE, {self.replications} reps, T = {self.horizon}) |",
                "|---|---|"]
        for name, s in sorted(self.summary().items(), key=lambda kv: kv[1]["mean"]):
            rows.append(f"| {name} | {s['mean']:.2f} +- {s['se']:.2f} |")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None, ax: Any = None, title: str | None = None):
        """Mean cumulative regret against round with 95% bands (mean +- 1.96 SE)."""
        try:
            import matplotlib

            if path is not None and ax is None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError('plotting needs matplotlib: pip install "gambit-gym[plots]"') from exc
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        rounds = np.arange(1, self.horizon + 1)
        for name, reg in self.cumulative_regret.items():
            mean = reg.mean(axis=0)
            se = reg.std(axis=0, ddof=1) / math.sqrt(len(reg)) if len(reg) > 1 else np.zeros_like(mean)
            ax.plot(rounds, mean, label=name)
            ax.fill_between(rounds, mean - 1.96 * se, mean + 1.96 * se, alpha=0.2)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative pseudo-regret")
        ax.set_title(title or f"{self.replications} replications, 95% bands")
        ax.legend()
        if path is not None:
            ax.figure.tight_layout()
            ax.figure.savefig(path, dpi=120)
        return ax

    def save(self, path: str | Path) -> None:
        """``.npz`` with one array per agent (no pickle)."""
        np.savez_compressed(path, **{f"regret/{k}": v for k, v in self.cumulative_regret.items()})


def _make_vector_env(env: str | Callable[..., Any], n: int, horizon: int, env_kwargs: dict) -> Any:
    if isinstance(env, str):
        return gym.make_vec(env, num_envs=n, vectorization_mode="vector_entry_point", horizon=horizon,
                            **env_kwargs)
    if callable(env):
        return env(num_envs=n, horizon=horizon, **env_kwargs)
    raise TypeError(f"env: expected an environment id or a callable(num_envs, horizon, **kwargs), got {env!r}")


def _build_agent(name: str, spec: AgentSpec, venv: Any, seed: np.random.SeedSequence) -> Any:
    kwargs: dict[str, Any] = {}
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[1], Mapping):
            raise TypeError(f"agents[{name!r}]: expected (AgentClass, kwargs), got {spec!r}")
        spec, kwargs = spec[0], dict(spec[1])
    if hasattr(spec, "from_env"):
        return spec.from_env(venv, seed=seed, **kwargs)
    if callable(spec):
        return spec(venv, seed, **kwargs)
    raise TypeError(f"agents[{name!r}]: expected an agent class with from_env, a (class, kwargs) pair "
                    f"or a callable (env, seed) -> agent, got {spec!r}")


def run_bandit(
    env: str | Callable[..., Any],
    agents: Mapping[str, AgentSpec],
    horizon: int = 1000,
    replications: int = 250,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    block_size: int | None = None,
    progress: bool = True,
) -> BanditResult:
    """Run each agent for ``horizon`` rounds on ``replications`` independent copies of ``env``.

    Replications are stepped together through the vector environment, in blocks
    of ``block_size`` (default: all at once). Streams come from one root seed:
    ``SeedSequence(seed)`` spawns one child per block, which spawns the block's
    environment seed and one seed per agent (by the agent's position in
    ``agents``), so every agent meets the same environment seed (common random
    numbers where the streams line up) and the same ``(seed, block_size, agent
    order)`` gives identical results, bit for bit. SB3 agents seed each
    replication from ``SeedSequence(seed)`` instead (see :func:`agents.sb3.run_sb3`).

    Args:
        env: an environment id registered with a vector entry point, or a callable
            ``(num_envs, horizon, **env_kwargs) -> VectorEnv``.
        agents: name -> agent class (anything with ``from_env(env, seed, **kw)``),
            ``(class, kwargs)``, or callable ``(env, seed) -> agent``; or a Stable-Baselines3
            algorithm ``"sb3:PPO"`` / ``("sb3:DQN", kwargs)``, trained with its own ``learn()``
            loop in each replication (see :func:`agents.sb3.run_sb3`; it needs ``env`` as an id).
    """
    horizon = check_int("horizon", horizon, 1)
    replications = check_int("replications", replications, 1)
    seed = check_int("seed", seed, 0)
    block = replications if block_size is None else check_int("block_size", block_size, 1)
    if not isinstance(agents, Mapping) or not agents:
        raise ValueError("agents: expected a non-empty mapping name -> agent class")
    env_kwargs = dict(env_kwargs or {})
    sb3 = {name: parsed for name, spec in agents.items() if (parsed := _sb3_spec(spec)) is not None}
    regret = {name: np.empty((replications, horizon)) for name in agents}
    seconds = dict.fromkeys(agents, 0.0)
    if sb3 and not isinstance(env, str):
        raise TypeError(f"env: Stable-Baselines3 agents {sorted(sb3)} need an environment id, got {env!r}")
    for name, (algorithm, kwargs) in sb3.items():
        from agents.sb3 import run_sb3

        res = run_sb3(algorithm, env, horizon=horizon, replications=replications, seed=seed, env_kwargs=env_kwargs,
                      progress=progress, **kwargs)
        regret[name], seconds[name] = res.cumulative_regret[algorithm], res.seconds[algorithm]
    n_agents = len(agents)  # seeds are spawned by position among all agents, SB3 ones included
    agents = {name: spec for name, spec in agents.items() if name not in sb3}
    starts = list(range(0, replications, block)) if agents else []
    block_seeds = np.random.SeedSequence(seed).spawn(len(starts))
    bar = _progress(progress and bool(starts), len(starts) * len(agents) * horizon)
    for start, block_seed in zip(starts, block_seeds):
        n = min(block, replications - start)
        env_seed, *spawned = block_seed.spawn(1 + n_agents)
        agent_seeds = [s for name, s in zip(regret, spawned) if name in agents]
        reset_seed = int(env_seed.generate_state(1)[0])
        for (name, spec), agent_seed in zip(agents.items(), agent_seeds):
            tic = time.perf_counter()
            venv = _make_vector_env(env, n, horizon, env_kwargs)
            agent = _build_agent(name, spec, venv, agent_seed)
            obs, info = venv.reset(seed=reset_seed)
            total = np.zeros(n)
            out = regret[name][start : start + n]
            for t in range(horizon):
                actions = agent.act(obs)
                next_obs, rewards, _, _, info = venv.step(actions)
                agent.update(obs, actions, rewards, info)
                total += info["regret"]
                out[:, t] = total
                obs = next_obs
                if bar is not None and (t + 1) % 50 == 0:
                    bar.update(50)
            if bar is not None:
                bar.update(horizon % 50)
            venv.close()
            seconds[name] += time.perf_counter() - tic
    if bar is not None:
        bar.close()
    config = {"env": env if isinstance(env, str) else getattr(env, "__name__", repr(env)),
              "env_kwargs": env_kwargs, "block_size": block}
    return BanditResult(regret, horizon, replications, seed, config, seconds)


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="rounds", unit="round", smoothing=0.1)
