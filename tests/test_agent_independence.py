"""Replications are independent: nothing one replication of a batch learns depends on another's data.

``run_bandit`` runs R replications as one batch (one agent with a leading replication axis on every
piece of state). For that to be R independent runs, no statistic may be pooled over the rows: here
two agents of each kind, built with the same seed for R = 4 rows, are fed the same rounds
(observations, actions, embeddings, rewards), except that one row gets other data; every other
row's learned state must come out bit for bit the same.

What is compared, and why it is a fair criterion:

* Actions are fixed (drawn once, not by the agent), because acting draws from the batch's one
  shared random stream, and gamma / chi-square samplers consume a data-dependent number of
  draws: one row's data can shift the draws another row sees without making the rows dependent in
  law. Feeding fixed actions makes the learned state a function of the fed data (and, for the
  ensemble, of the stream) only.
* The conjugate agents (standard, linear, po- and foGAMBITTS) use no randomness to learn: their
  state depends on the fed data alone.
* EnsembleGAMBITTS does draw while learning (a perturbation per stored reward, a minibatch per
  member), from the shared stream, in numbers that do not depend on the data. Both runs start from
  the same seed, so they get the same draws (the test checks that the two streams end in the same
  state); "unchanged" then means: with the same random draws, the other rows' weights, Adam moments,
  buffers, target standardisation and noise model are bit-identical, whatever the changed row was fed.
"""

import numpy as np
import pytest

from gambit_gym import GeneratorMediatedVectorEnv
from tests._agents import ALL_AGENTS, TINY_ENSEMBLES, build, needs_ensemble

EVERY_AGENT = {**ALL_AGENTS, **TINY_ENSEMBLES}
R, CHANGED, ROUNDS = 4, 2, 40  # the tiny ensembles train from round 10 and their 32-slot buffers wrap


def rounds_of(seed):
    """``ROUNDS`` rounds of the default env with R rows under fixed random actions: ``[(obs, a, r, z)]``."""
    venv = GeneratorMediatedVectorEnv(num_envs=R)
    obs, _ = venv.reset(seed=seed)
    actions = np.random.default_rng(seed + 1000)
    out = []
    for _ in range(ROUNDS):
        a = actions.integers(venv.single_action_space.n, size=R)
        next_obs, r, _, _, info = venv.step(a)
        out.append((obs, a, r, info["treatment_embedding"]))
        obs = next_obs
    return out


def with_row_changed(rounds, what):
    """The rounds with row ``CHANGED`` fed other data: other rewards only, or all of another run's data."""
    other = rounds_of(seed=7)
    out = []
    for t, (obs, a, r, z) in enumerate(rounds):
        obs, a, r, z = obs.copy(), a.copy(), r.copy(), z.copy()
        if what == "rewards":
            r[CHANGED] = 3.0 * r[CHANGED] - 150.0  # another location and scale: shows up in any pooled statistic
        else:
            o_obs, o_a, o_r, o_z = other[t]
            obs[CHANGED], a[CHANGED], r[CHANGED], z[CHANGED] = o_obs[CHANGED], o_a[CHANGED], o_r[CHANGED], o_z[CHANGED]
        out.append((obs, a, r, z))
    return out


def learned(name, rounds):
    """The state of agent ``name`` (seed 0) after being fed ``rounds``, and its random stream's state."""
    agent = build(EVERY_AGENT[name], GeneratorMediatedVectorEnv(num_envs=R), seed=0)
    for obs, a, r, z in rounds:
        agent.update(obs, a, r, {"treatment_embedding": z})
    state = agent.state_dict()
    return state["state"], state["rng"]


@pytest.mark.parametrize("what", ["rewards", "all data"])
@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_ensemble) if n in TINY_ENSEMBLES else n
                                  for n in EVERY_AGENT])
def test_other_replications_learn_the_same_whatever_one_replication_is_fed(name, what):
    rounds = rounds_of(seed=0)
    state, rng = learned(name, rounds)
    changed_state, changed_rng = learned(name, with_row_changed(rounds, what))
    assert changed_rng == rng  # the same random draws in both runs: the comparison below is like for like
    assert set(changed_state) == set(state)
    others = [row for row in range(R) if row != CHANGED]
    differs = []
    for key, value in state.items():
        if not isinstance(value, np.ndarray):  # a scalar is shared by all rows: it must not depend on data
            assert changed_state[key] == value, f"{name}: {key} depends on one replication's data"
            continue
        assert value.shape[0] == R, f"{name}: {key} {value.shape} has no replication axis: a pooled statistic"
        assert np.array_equal(changed_state[key][others], value[others]), \
            f"{name}: {key} of the other replications changed with one replication's data"
        if not np.array_equal(changed_state[key][CHANGED], value[CHANGED]):
            differs.append(key)
    assert differs, f"{name}: the changed replication learned nothing different (the test would prove nothing)"
