"""``run_bandit``: Monte-Carlo replications of agents on the vector environment, with pseudo-regret."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.datafiles import jsonable, package_versions
from agents.logged import Round, RoundCallback
from agents.results import BanditResult
from agents.sb3 import parse_sb3_spec, run_sb3
from gambit_gym.progress import progress_bar
from gambit_gym.validation import check_int

AgentSpec = Any  # a class with from_env, "sb3:PPO", a (class or "sb3:..", kwargs) pair, or a callable (env, seed)


def make_vector_env(env: str | Callable[..., Any], n: int, horizon: int, env_kwargs: dict) -> Any:
    """The vector environment of ``n`` replications with episodes of ``horizon`` rounds, as run_bandit makes it."""
    if isinstance(env, str):
        return gym.make_vec(env, num_envs=n, vectorization_mode="vector_entry_point", horizon=horizon,
                            **env_kwargs)
    if callable(env):
        return env(num_envs=n, horizon=horizon, **env_kwargs)
    raise TypeError(f"env: expected an environment id or a callable(num_envs, horizon, **kwargs), got {env!r}")


def _split_spec(name: str, spec: AgentSpec) -> tuple[Any, dict[str, Any]]:
    """``spec`` or ``(spec, kwargs)`` -> ``(spec, kwargs)``."""
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[1], Mapping):
            raise TypeError(f"agents[{name!r}]: expected (AgentClass, kwargs), got {spec!r}")
        return spec[0], dict(spec[1])
    return spec, {}


def build_agent(name: str, spec: AgentSpec, venv: Any, seed: np.random.SeedSequence) -> Any:
    """Build agent ``name`` from its spec (class, (class, kwargs) or factory) on ``venv``, as run_bandit does."""
    spec, kwargs = _split_spec(name, spec)
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
    callback: RoundCallback | None = None,
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
        callback: called every round of every agent with an :class:`agents.logged.Round` (the agent,
            the round ``t``, the replications of the rows, the observations, actions, rewards and
            info, and the environment), after the environment's step and before the agent's update;
            its return value is ignored. SB3 agents report one replication at a time, from inside
            their ``learn()`` loop. :class:`agents.logged.FeedbackLogger` is such a callback: it
            keeps the rounds as logged bandit feedback. A callback never changes an action or a
            regret (unless it draws from the agent's own random stream).

    Returns:
        a :class:`agents.BanditResult`: per agent, the cumulative pseudo-regret, rewards, actions and
        optimal-action flags of every round and replication, with the configuration (each agent's
        type and keyword arguments, the environment seeds of the blocks), seconds and package versions.
    """
    horizon = check_int("horizon", horizon, 1)
    replications = check_int("replications", replications, 1)
    seed = check_int("seed", seed, 0)
    block = replications if block_size is None else check_int("block_size", block_size, 1)
    if not isinstance(agents, Mapping) or not agents:
        raise ValueError("agents: expected a non-empty mapping name -> agent class")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable(Round) or None, got {callback!r}")
    env_kwargs = dict(env_kwargs or {})
    sb3 = {name: parsed for name, spec in agents.items() if (parsed := parse_sb3_spec(spec)) is not None}
    shape = (replications, horizon)
    regret = {name: np.empty(shape) for name in agents}
    rewards = {name: np.empty(shape) for name in agents}
    actions_played = {name: np.empty(shape, dtype=np.int64) for name in agents}
    optimal = {name: np.empty(shape, dtype=bool) for name in agents}
    seconds = dict.fromkeys(agents, 0.0)
    agent_config: dict[str, Any] = {}
    n_actions = None
    if sb3 and not isinstance(env, str):
        raise TypeError(f"env: Stable-Baselines3 agents {sorted(sb3)} need an environment id, got {env!r}")
    for name, (algorithm, kwargs) in sb3.items():
        res = run_sb3(algorithm, env, horizon=horizon, replications=replications, seed=seed, env_kwargs=env_kwargs,
                      progress=progress, callback=callback, label=name, **kwargs)
        regret[name], seconds[name] = res.cumulative_regret[algorithm], res.seconds[algorithm]
        rewards[name], actions_played[name] = res.rewards[algorithm], res.actions[algorithm]
        optimal[name], n_actions = res.optimal[algorithm], res.n_actions
        agent_config[name] = {"type": f"sb3:{algorithm}", "kwargs": kwargs,
                              "settings": res.config["sb3"][algorithm], "env_streams": "sb3"}
    n_agents = len(agents)  # seeds are spawned by position among all agents, SB3 ones included
    agents = {name: spec for name, spec in agents.items() if name not in sb3}
    starts = list(range(0, replications, block)) if agents else []
    block_seeds = np.random.SeedSequence(seed).spawn(len(starts))
    for name, spec in agents.items():
        spec, kwargs = _split_spec(name, spec)
        agent_config[name] = {"type": spec, "kwargs": kwargs, "env_streams": "run_bandit"}
    reset_seeds = []
    bar = progress_bar(progress and bool(starts), len(starts) * len(agents) * horizon, "rounds", "round",
                       smoothing=0.1)
    for start, block_seed in zip(starts, block_seeds):
        n = min(block, replications - start)
        env_seed, *spawned = block_seed.spawn(1 + n_agents)
        agent_seeds = [s for name, s in zip(regret, spawned) if name in agents]
        reset_seed = int(env_seed.generate_state(1)[0])
        reset_seeds.append(reset_seed)
        rows = np.arange(start, start + n)
        for (name, spec), agent_seed in zip(agents.items(), agent_seeds):
            tic = time.perf_counter()
            venv = make_vector_env(env, n, horizon, env_kwargs)
            n_actions = int(venv.single_action_space.n) if hasattr(venv.single_action_space, "n") else None
            agent = build_agent(name, spec, venv, agent_seed)
            obs, info = venv.reset(seed=reset_seed)
            total = np.zeros(n)
            out = regret[name][start : start + n]
            out_reward, out_action = rewards[name][start : start + n], actions_played[name][start : start + n]
            out_optimal = optimal[name][start : start + n]
            for t in range(horizon):
                actions = agent.act(obs)
                next_obs, round_rewards, _, _, info = venv.step(actions)
                if t == 0 and "regret" not in info:
                    raise KeyError(f"env: run_bandit needs info['regret'] (the pseudo-regret of each step), as "
                                   f"GeneratorMediated-v0 gives; got info keys {sorted(info)}")
                out_reward[:, t], out_action[:, t] = round_rewards, actions
                out_optimal[:, t] = info["regret"] <= 0.0  # zero pseudo-regret: an optimal action (ties too)
                if callback is not None:
                    callback(Round(name, agent, t, rows, obs, actions, round_rewards, info, venv))
                agent.update(obs, actions, round_rewards, info)
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
    config = jsonable({"env": env if isinstance(env, str) else getattr(env, "__name__", repr(env)),
                       "env_kwargs": env_kwargs, "block_size": block, "env_reset_seeds": reset_seeds,
                       "agents": {name: agent_config[name] for name in regret}})
    return BanditResult(regret, horizon, replications, seed, config, seconds, rewards, actions_played, optimal,
                        n_actions, package_versions("torch", "stable_baselines3"))
