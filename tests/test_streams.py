"""The random streams are part of the results: each named stream draws what it always drew.

The pinned numbers were produced before the stream keys got names (``SeedSequence(seed).spawn(n)[i]``
and ``SeedSequence(seed, spawn_key=(i,))`` spelled out in place); a changed key changes them.
"""

import numpy as np
import pytest

from gambit_gym import GeneratorMediatedEnv, make_scenario, streams


def test_stream_is_the_spawned_child():
    for key in (streams.TREATMENT_MEANS, streams.OUTCOME, streams.CONTEXT_EFFECTS, streams.PROJECTION,
                streams.CACHED_MLP):
        child = np.random.SeedSequence(11).spawn(key + 1)[key]
        assert np.array_equal(streams.stream(11, key).random(4), np.random.default_rng(child).random(4))


def test_problem_seed_streams_draw_the_pinned_instance():
    s = make_scenario("synthetic")
    assert s.treatment_model.means[0, 0] == pytest.approx([1.4299890726641755, -0.7926764314369183,
                                                           0.7140278551536448], rel=1e-12)
    assert s.outcome.coef == pytest.approx([0.1980152256158489, -0.4702792053977164, -0.8600159529885459],
                                           rel=1e-12)
    assert s.outcome.context_effect[:3] == pytest.approx([0.9490789396229531, -0.4800464767644341,
                                                          0.9450799893036457], rel=1e-12)
    assert s.expected_reward[0] == pytest.approx([80.99094244447807, 80.34635556893134, 80.65697363509534,
                                                  80.84921153410204, 80.01676147219328], rel=1e-12)


def test_projection_stream_draws_the_pinned_view():
    m = make_scenario("misspecified", view="projection", embedding_dim=2)
    pinned = np.array([[-0.36835801364199394, 0.25009917609897414, 0.8954120704459702],
                       [-0.3967974091228366, -0.9132982774193359, 0.09185898201198484]])
    assert m.embedding.matrix == pytest.approx(pinned, rel=1e-12)


def test_cached_mlp_stream_draws_the_pinned_weights():
    c = make_scenario("cached-llm", outcome="mlp")
    assert c.outcome.w2[:3] == pytest.approx([-0.10373330554253894, -0.15101563940979992, 0.02955358028059113],
                                             rel=1e-9)
    assert c.expected_reward[0] == pytest.approx([82.66722903076592, 83.03122544058886, 82.9727409864974,
                                                  82.95988599539756, 82.08864324990593], rel=1e-12)


def test_simulation_stream_of_the_episode_seed_draws_the_pinned_treatments():
    env = GeneratorMediatedEnv()
    env.reset(seed=3)
    pinned = np.array([[0.1315149444232817, -0.7177907838076656, 0.9673028472053112],
                       [1.7678009570561855, -1.2219334372743849, 0.8928078254121777]])
    assert env.sample_treatments(0, 0, 2) == pytest.approx(pinned, rel=1e-12)
