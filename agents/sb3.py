"""Stable-Baselines3 algorithms as contextual-bandit agents, measured like the bandit agents.

``run_sb3("PPO", "GeneratorMediated-v0", horizon=1000, replications=20)`` trains
one fresh SB3 model per replication with SB3's own ``learn()`` loop for exactly
the horizon (every round is one step of one episode of length T), records the
pseudo-regret of every step with :class:`gambit_gym.wrappers.RecordRegret`
and returns a :class:`agents.BanditResult`, so the same summaries, plots and
reports apply. ``run_bandit`` and experiment configs accept the same algorithms
as ``"sb3:PPO"``, ``"sb3:A2C"`` and ``"sb3:DQN"``.

Settings for a bandit: the public presets :data:`gambit_gym.sb3.BANDIT_PRESETS`
(also named ``SB3_SETTINGS`` here; any keyword overrides them; their docstring
says why: ``gamma = 0``, small rollouts, a higher learning rate), and rewards
standardised for the learner by :class:`gambit_gym.wrappers.StandardizeReward`
with running statistics of the rewards seen so far (no oracle knowledge). The
recorded regret is the environment's, unaffected.

Replication ``i`` uses seed ``SeedSequence(seed).spawn(replications)[i]`` for
the model and the environment, so a seeded run repeats exactly (on CPU).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.datafiles import jsonable, package_versions
from agents.logged import RoundCallback, RoundRecorder
from agents.results import BanditResult
from gambit_gym import ENV_ID
from gambit_gym.extras import require
from gambit_gym.progress import progress_bar
from gambit_gym.sb3 import BANDIT_PRESETS
from gambit_gym.validation import check_choice, check_int
from gambit_gym.wrappers import RecordRegret, StandardizeReward

#: Marks an agent given by name as a Stable-Baselines3 algorithm: ``"sb3:PPO"``.
SB3_PREFIX = "sb3:"
SB3_ALGORITHMS = tuple(BANDIT_PRESETS)
#: The bandit settings of each algorithm: :data:`gambit_gym.sb3.BANDIT_PRESETS` (one dict, two names).
SB3_SETTINGS = BANDIT_PRESETS


def parse_sb3_spec(spec: Any) -> tuple[str, dict[str, Any]] | None:
    """``"sb3:PPO"`` or ``("sb3:PPO", kwargs)`` -> ``("PPO", kwargs)``; anything else -> ``None``.

    The algorithm name is returned as written; :func:`run_sb3` checks it against ``SB3_ALGORITHMS``.

    Example:
        >>> parse_sb3_spec(("sb3:DQN", {"learning_starts": 20}))
        ('DQN', {'learning_starts': 20})
        >>> parse_sb3_spec("StandardTS") is None
        True
    """
    kwargs: Mapping[str, Any] = {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        spec, kwargs = spec
    if isinstance(spec, str) and spec.startswith(SB3_PREFIX):
        return spec[len(SB3_PREFIX):], dict(kwargs)
    return None


def run_sb3(
    algorithm: str,
    env: str = ENV_ID,
    horizon: int = 1000,
    replications: int = 10,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    policy: str = "MlpPolicy",
    standardize_reward: bool = True,
    progress: bool = True,
    callback: RoundCallback | None = None,
    label: str | None = None,
    **kwargs: Any,
) -> BanditResult:
    """Train ``algorithm`` online for ``horizon`` rounds in each replication; pseudo-regret per round.

    Args:
        algorithm: ``"PPO"``, ``"A2C"`` or ``"DQN"``.
        env: a registered environment id whose info carries ``regret``.
        callback: called with an :class:`agents.logged.Round` for each of the ``horizon`` recorded
            steps of each replication (one row; ``agent`` is the SB3 model), from inside ``learn()``.
        label: the agent's name in those rounds (default ``algorithm``).
        kwargs: passed to the SB3 constructor, over ``SB3_SETTINGS[algorithm]``.

    Returns:
        a :class:`agents.BanditResult` with one entry, named ``algorithm``: the cumulative
        pseudo-regret, rewards, actions and optimal-action flags of the first ``horizon`` steps.

    Example:
        >>> res = run_sb3("A2C", horizon=30, replications=2, seed=0, progress=False)
        >>> res.cumulative_regret["A2C"].shape
        (2, 30)
    """
    algorithm = check_choice("algorithm", algorithm, SB3_ALGORITHMS)
    reserved = sorted({"seed", "env", "device", "verbose"} & set(kwargs))
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable(Round) or None, got {callback!r}")
    label = algorithm if label is None else label
    if reserved:
        raise ValueError(f"{reserved}: set by run_sb3 (the seed comes from its 'seed'), not an SB3 setting to pass")
    horizon = check_int("horizon", horizon, 1)
    replications = check_int("replications", replications, 1)
    seed = check_int("seed", seed, 0)
    if not isinstance(env, str):
        raise TypeError(f"env: expected a registered environment id, got {env!r}")
    sb3 = require("stable_baselines3", "sb3", f"the Stable-Baselines3 agent {algorithm}")
    torch = require("torch", "sb3", f"the Stable-Baselines3 agent {algorithm}")
    cls = getattr(sb3, algorithm)
    settings = {**SB3_SETTINGS[algorithm], **kwargs}
    env_kwargs = dict(env_kwargs or {})
    regret = np.empty((replications, horizon))
    rewards, optimal = np.empty((replications, horizon)), np.empty((replications, horizon), dtype=bool)
    actions = np.empty((replications, horizon), dtype=np.int64)
    seeds = np.random.SeedSequence(seed).spawn(replications)
    bar = progress_bar(progress, replications, f"{SB3_PREFIX}{algorithm}", "replication")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # repeatable, and as fast for these small networks
    tic = time.perf_counter()
    try:
        for i, ss in enumerate(seeds):
            rounds = RoundRecorder(gym.make(env, max_episode_steps=horizon, **env_kwargs), horizon, label, i, callback)
            recorder = RecordRegret(rounds)
            learner_env = StandardizeReward(recorder) if standardize_reward else recorder
            rep_seed = int(ss.generate_state(1)[0] % (2**31 - 1))
            try:
                model = cls(policy, learner_env, seed=rep_seed, device="cpu", verbose=0, **settings)
            except TypeError as exc:
                raise TypeError(f"{SB3_PREFIX}{algorithm}: {exc} (settings passed: {sorted(settings)})") from exc
            rounds.agent = model
            model.learn(total_timesteps=horizon)
            # the first episode is the T rounds of this replication (PPO/A2C may step a few rounds past
            # it to fill their last rollout; those belong to a second episode and are not counted)
            first = recorder.episodes[0] if recorder.episodes else np.asarray(recorder.current)
            regret[i] = np.cumsum(first[:horizon])
            rewards[i], actions[i], optimal[i] = rounds.rewards, rounds.actions, rounds.optimal
            if bar is not None:
                bar.update(1)
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    config = jsonable({"env": env, "env_kwargs": env_kwargs, "sb3": {algorithm: settings}})
    n_actions = int(rounds.action_space.n)
    return BanditResult({algorithm: regret}, horizon, replications, seed, config,
                        {algorithm: time.perf_counter() - tic}, {algorithm: rewards}, {algorithm: actions},
                        {algorithm: optimal}, n_actions, package_versions("torch", "stable_baselines3"))
