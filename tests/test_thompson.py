"""StandardTS and LinearTS: which (context, arm) cells they learn and act on."""

import numpy as np

from agents import LinearTS, StandardTS
from gambit_gym import GeneratorMediatedVectorEnv


def first_round(agent, venv, actions):
    obs, _ = venv.reset(seed=0)
    _, r, _, _, info = venv.step(actions)
    agent.update(obs, actions, r, info)
    return obs, r


def test_standard_ts_pools_contexts_unless_contextual():
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    K, C, rows, a = 5, venv.contexts.n_contexts, np.arange(3), np.array([0, 2, 4])
    pooled, per_context = StandardTS.from_env(venv, seed=0), StandardTS.from_env(venv, seed=0, contextual=True)
    first_round(pooled, venv, a)
    obs, r = first_round(per_context, venv, a)
    ctx = venv.contexts.index(obs)
    want = np.zeros((3, K))
    want[rows, a] = 1
    assert np.array_equal(pooled.posterior.count, want)
    want = np.zeros((3, C * K))
    want[rows, ctx * K + a] = 1  # one table per (context, arm): cell ctx * K + a
    assert np.array_equal(per_context.posterior.count, want)
    assert np.array_equal(per_context.posterior.mean[rows, ctx * K + a], r)


def test_contextual_standard_ts_acts_on_the_cells_of_each_rows_own_context():
    """Certain posteriors: arm 3 is best in each row's own context, arm 1 far better in another one."""
    venv = GeneratorMediatedVectorEnv(num_envs=4)
    agent = StandardTS.from_env(venv, seed=0, contextual=True)
    obs, _ = venv.reset(seed=1)
    K, C, rows = 5, venv.contexts.n_contexts, np.arange(4)
    ctx = venv.contexts.index(obs)
    count = np.full((4, C * K), 1e9)
    mean = np.zeros((4, C * K))
    mean[rows, ctx * K + 3] = 10.0
    mean[rows, (ctx + 1) % C * K + 1] = 100.0
    agent.posterior.load_state({"count": count, "mean": mean, "ssq": count.copy()})
    assert np.array_equal(agent.act(obs), np.full(4, 3))


def test_linear_ts_learns_one_coefficient_per_arm_block():
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    plain, inter = LinearTS.from_env(venv, seed=0), LinearTS.from_env(venv, seed=0, interactions=True)
    F = venv.single_observation_space.shape[0]
    assert plain.model.dim == 5 + F + 1 and inter.model.dim == 5 + F + 5 * F + 1  # arms, context, (a x ctx), 1
    first_round(inter, venv, np.array([1, 3]))
    assert np.array_equal(inter.model.posterior.n, [1.0, 1.0])


def test_each_agent_plays_the_argmax_of_its_sampled_scores():
    """act = argmax of _sample_scores drawn from the agent's own stream; the same draw from another
    stream is what action_probabilities repeats."""
    venv = GeneratorMediatedVectorEnv(num_envs=6)
    for agent in (StandardTS.from_env(venv, seed=3), StandardTS.from_env(venv, seed=3, contextual=True),
                  LinearTS.from_env(venv, seed=3, interactions=True)):
        obs, _ = venv.reset(seed=2)
        first_round(agent, venv, np.array([0, 1, 2, 3, 4, 0]))
        ctx = venv.contexts.index(obs)
        twin = np.random.default_rng()
        twin.bit_generator.state = agent.rng.bit_generator.state
        scores = agent._sample_scores(ctx, obs.astype(np.float64), twin)
        assert scores.shape == (6, 5)
        assert np.array_equal(agent.act(obs), scores.argmax(axis=1))
        assert agent.rng.bit_generator.state == twin.bit_generator.state  # the same draws, no more


def test_standard_ts_with_a_certain_best_arm_plays_it_with_probability_one():
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = StandardTS.from_env(venv, seed=0)
    count = np.full((2, 5), 1e9)
    mean = np.tile([0.0, 5.0, 1.0, 2.0, 3.0], (2, 1))
    agent.posterior.load_state({"count": count, "mean": mean, "ssq": count.copy()})
    obs, _ = venv.reset(seed=0)
    assert np.array_equal(agent.action_probabilities(obs, n_draws=50), np.tile([0, 1.0, 0, 0, 0], (2, 1)))
