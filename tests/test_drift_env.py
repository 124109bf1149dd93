"""Generator drift in the environment (gambit_gym.drift): before the change it is today's environment, the
oracle of every round is exact, endogenous drift follows each replication's own history, simulation access
draws from the deployed or the current generator and counts current queries, bad drift options are errors."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import gambit_gym  # noqa: F401  (registers the environment)
from gambit_gym.drift import DriftingScenario, DriftSchedule
from gambit_gym.env import GeneratorMediatedEnv
from gambit_gym.scenarios import make_scenario
from gambit_gym.scenarios.cached_llm import bundled_cache_path, cached_load
from tests.test_safety_env import BEFORE_THE_LAYER, _ten_steps

THRESHOLD = {"checks": [{"type": "threshold", "dimension": "z0", "above_quantile": 0.7}], "on_reject": "withhold",
             "no_message_reward": 79.0}


def _venv(n: int = 4, seeding: str = "shared", **options):
    return gym.make_vec("GeneratorMediated-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        seeding=seeding, **options)


@pytest.fixture(scope="module")
def half_cache(tmp_path_factory):
    """Another generator of the mHealth world: the bundled cache's first half of every cell, re-standardised
    over itself as a cache of its own would be (a real subset of real messages)."""
    full = cached_load(bundled_cache_path())
    cell = full.context_index.astype(np.int64) * len(full.prompts) + full.prompt_index
    rank = np.zeros(len(cell), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, c in enumerate(cell):
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
    keep = rank < 5
    raw = full.embeddings[keep].astype(np.float64) @ full.style_axes.astype(np.float64).T
    offset, scale = raw.mean(0), raw.std(0)
    half = dataclasses.replace(
        full, texts=full.texts[keep], prompt_index=full.prompt_index[keep], context_index=full.context_index[keep],
        embeddings=full.embeddings[keep], style_scores=((raw - offset) / scale).astype(np.float32),
        style_offset=offset.astype(np.float32), style_scale=scale.astype(np.float32))
    path = tmp_path_factory.mktemp("drift") / "half.npz"
    half.save(path)
    return str(path), keep


# -- before the change it is today's environment -------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(BEFORE_THE_LAYER))
def test_drift_before_its_round_is_todays_environment(variant, half_cache):
    options, rewards, sums, contexts, sample_sum = BEFORE_THE_LAYER[variant]
    drift = {"kind": "abrupt", "at": 100}
    if variant == "cached-llm":
        drift["cache_path"] = half_cache[0]
    env = GeneratorMediatedEnv(variant, drift=drift, **options)
    got_rewards, got_sums, got_contexts, infos = _ten_steps(env)
    np.testing.assert_allclose(got_rewards, rewards, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got_sums, sums, rtol=0, atol=1e-9)
    assert got_contexts == contexts
    assert not any(info["generator_changed"] for info in infos)
    assert all(info["generator"] == 0 for info in infos)


def test_drift_before_its_round_matches_the_static_vector_env_bit_for_bit():
    for seeding in ("shared", "per-env"):
        static, drifting = _venv(seeding=seeding), _venv(seeding=seeding, drift={"kind": "gradual", "at": 50,
                                                                                   "window": 10})
        for env in (static, drifting):
            env.reset(seed=7)
        for _ in range(20):
            a = np.arange(4) % 5
            out_s, out_d = static.step(a), drifting.step(a)
            assert np.array_equal(out_s[1], out_d[1])
            assert np.array_equal(out_s[4]["treatment_embedding"], out_d[4]["treatment_embedding"])
            assert np.array_equal(out_s[4]["regret"], out_d[4]["regret"])


# -- schedules -----------------------------------------------------------------------------------------
def test_kind_none_is_no_drift():
    s = make_scenario("synthetic", drift={"kind": "none"})
    assert not isinstance(s, DriftingScenario)
    with pytest.raises(ValueError, match="unknown key"):
        make_scenario("synthetic", drift={"kind": "none", "at": 3})


def test_schedules_give_the_documented_mixture_weights():
    assert [DriftSchedule("abrupt", at=3).weight_at(t) for t in range(5)] == [0, 0, 0, 1, 1]
    assert [DriftSchedule("abrupt", at=1, weight=0.25).weight_at(t) for t in range(3)] == [0, 0.25, 0.25]
    periodic = DriftSchedule("periodic", period=4)
    np.testing.assert_allclose([periodic.weight_at(t) for t in range(9)], [0, .5, 1, .5, 0, .5, 1, .5, 0],
                               atol=1e-12)
    gradual = DriftSchedule("gradual", at=2, window=4)
    assert [gradual.changed_at(t) for t in range(8)] == [False, False, False, True, True, True, True, False]


# -- the oracle of every round is exact --------------------------------------------------------------
def test_synthetic_drift_moves_each_cell_mean_by_the_set_magnitude():
    s = make_scenario("synthetic", drift={"kind": "abrupt", "at": 1, "magnitude": 0.5})
    shift = s.after.treatment_model.means - s.before.treatment_model.means
    np.testing.assert_allclose(np.linalg.norm(shift, axis=2), 0.5 * s.treatment_scale, rtol=1e-12)
    given = make_scenario("synthetic", drift={"kind": "abrupt", "at": 1, "magnitude": 2.0, "direction": [1, 0, 0]})
    moved = given.after.treatment_model.means - given.before.treatment_model.means
    np.testing.assert_allclose(moved[..., 0], 2.0 * given.treatment_scale)
    np.testing.assert_allclose(moved[..., 1:], 0.0)
    # linear outcome: the expected reward moves by the coefficients' projection of the shift
    coef = given.before.outcome.weights if hasattr(given.before.outcome, "weights") else None
    if coef is not None:
        np.testing.assert_allclose(given.after.expected_reward - given.before.expected_reward,
                                   2.0 * given.treatment_scale * coef[0], rtol=1e-10)


@pytest.mark.parametrize("options", [
    {"drift": {"kind": "gradual", "at": 0, "window": 2, "weight": 0.6, "magnitude": 1.5, "cov_scale": 2.0}},
    {"drift": {"kind": "gradual", "at": 0, "window": 2, "weight": 0.6, "magnitude": 1.5}, "safety": THRESHOLD},
    {"variant": "misspecified", "outcome": "mlp",
     "drift": {"kind": "abrupt", "at": 0, "weight": 0.5, "magnitude": 1.0}},
])
def test_expected_rewards_under_a_mixture_match_monte_carlo_within_4_se(options):
    """Round 1 of every replication (w = 0.3 or 0.5): mean reward per cell against the exact oracle."""
    n = 60_000
    venv = _venv(n, **options)
    venv.reset(seed=3)
    venv.step(np.zeros(n, dtype=np.int64))  # round 0
    u = venv.unwrapped
    ctx = u._contexts.copy()
    acts = np.arange(n) % u.scenario.n_actions
    oracle = u.expected_rewards(np.arange(u.contexts.n_contexts))
    _, rewards, _, _, info = venv.step(acts)
    np.testing.assert_allclose(info["expected_reward"], oracle[ctx, acts])
    cells = ctx * u.scenario.n_actions + acts
    z = []
    for cell in np.unique(cells):
        r = rewards[cells == cell]
        z.append((r.mean() - oracle.ravel()[cell]) / (r.std() / np.sqrt(len(r))))
    assert np.max(np.abs(z)) < 4.0, np.max(np.abs(z))
    served = info["generator"].mean()
    w = info["generator_weight"][0]
    assert abs(served - w) < 4 * np.sqrt(w * (1 - w) / n)


def test_regret_is_against_the_best_action_of_the_current_round():
    venv = _venv(6, drift={"kind": "abrupt", "at": 2, "magnitude": 3.0})
    venv.reset(seed=0)
    u = venv.unwrapped
    for _ in range(4):
        ctx = u._contexts.copy()
        mu = u.expected_rewards(ctx)
        _, _, _, _, info = venv.step(np.zeros(6, dtype=np.int64))
        np.testing.assert_allclose(info["regret"], mu.max(axis=1) - mu[:, 0])
        np.testing.assert_array_equal(info["optimal_action"], mu.argmax(axis=1))
    before, after = u.scenario.before.expected_reward, u.scenario.after.expected_reward
    assert not np.array_equal(before.argmax(1), after.argmax(1))  # the drift changes which prompt is best


def test_cached_drift_scores_the_other_generator_on_the_deployed_frame(half_cache):
    path, keep = half_cache
    s = make_scenario("cached-llm", n_actions=None, drift={"kind": "abrupt", "at": 0, "cache_path": path})
    full = make_scenario("cached-llm", n_actions=None)
    f = full.outcome.mean(full._styles(full.cache, [full.cache.style_dimensions.index(d)
                                                    for d in full.outcome_spec.dimensions]),
                          full.cache.context_index.astype(np.int64))
    C, P = full.expected_reward.shape
    cell = full.cache.context_index.astype(np.int64) * P + full.cache.prompt_index
    want = (np.bincount(cell[keep], weights=f[keep], minlength=C * P) / np.bincount(cell[keep], minlength=C * P))
    np.testing.assert_allclose(s.after.expected_reward.ravel(), want, atol=1e-4)
    assert s.after.noise_sd == s.before.noise_sd and s.after.outcome is s.before.outcome


def test_cached_drift_defaults_to_the_bundled_second_generator():
    s = make_scenario("cached-llm", drift={"kind": "abrupt", "at": 10})
    assert s.before.cache.meta["generator"]["name"] == "smollm2-135m-instruct"
    assert s.after.cache.meta["generator"]["name"] == "gemma-3-270m"
    assert s.after.prompt_ids == s.before.prompt_ids and s.after.noise_sd == s.before.noise_sd
    # Gemma 3 270M writes differently: the best prompt moves in most contexts
    moved = s.before.expected_reward.argmax(1) != s.after.expected_reward.argmax(1)
    assert moved.sum() >= 6


def test_cached_drift_keeps_one_working_embedding_for_both_generators(half_cache):
    path, keep = half_cache
    s = make_scenario("cached-llm", working_embedding="pca:4", drift={"kind": "abrupt", "at": 0, "cache_path": path})
    # the other generator's messages are a subset: the same projection gives the same embeddings
    before_sorted = s.before._working
    order = np.argsort(s.before.cache.context_index.astype(np.int64) * 40 + s.before.cache.prompt_index,
                       kind="stable")
    kept_sorted = keep[order]
    np.testing.assert_allclose(s.after._working, before_sorted[kept_sorted], atol=1e-4)


# -- endogenous drift ------------------------------------------------------------------------------------
def test_endogenous_drift_tilts_each_replications_generator_toward_its_rewarded_messages():
    venv = _venv(3, variant="cached-llm", noise_level=0, drift={"kind": "endogenous", "every": 20,
                                                                  "learning_rate": 1.0})
    venv.reset(seed=1)
    u = venv.unwrapped
    start = u.expected_rewards(np.arange(12), replication=0)
    changed = []
    for t in range(200):
        _, _, _, _, info = venv.step(np.full(3, t % 5))
        changed.append(bool(info["generator_changed"][0]))
    assert changed.index(True) == 20 and sum(changed) == 9  # after rounds 20, 40, ..., 180
    after = [u.expected_rewards(np.arange(12), replication=r) for r in range(3)]
    # toward higher rewards on average, differently per replication (each its own history)
    assert np.mean(after[0] - start) > 0
    assert not np.allclose(after[0], after[1])
    state = u.generator_state(2)
    assert state["tilts"] == 10 and state["message_weights"].shape == (4800,)  # the 10th after round 199


def test_endogenous_oracle_is_exact_under_the_current_weights():
    venv = _venv(2, variant="cached-llm", drift={"kind": "endogenous", "every": 5, "learning_rate": 2.0})
    venv.reset(seed=0)
    for t in range(30):
        venv.step(np.array([t % 5, (t + 2) % 5]))
    u = venv.unwrapped
    s = u.scenario
    w = u.generator_state(1)["message_weights"]
    for c, a in [(0, 0), (3, 2), (11, 4)]:
        cell = slice(s.before.cell_starts[c, a], s.before.cell_starts[c, a] + s.before.cell_counts[c, a])
        assert np.isclose(w[cell].sum(), 1.0)
        assert np.isclose(u.expected_rewards(c, replication=1)[a], w[cell] @ s.before.message_rewards[cell])
    # simulation access to replication 1's current generator draws by its weights
    draws = u.sample_treatments(2, 3, 20_000, np.random.default_rng(0), current=True, replication=1)
    cell = slice(s.before.cell_starts[3, 2], s.before.cell_starts[3, 2] + s.before.cell_counts[3, 2])
    want = w[cell] @ s.before._working[cell]
    se = draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - want) < 4 * se + 1e-12)


# -- simulation access ---------------------------------------------------------------------------------
def test_simulation_access_draws_deployed_or_current_and_counts_current_queries():
    venv = _venv(3, drift={"kind": "abrupt", "at": 2, "magnitude": 5.0})
    venv.reset(seed=0)
    u = venv.unwrapped
    for _ in range(3):
        venv.step(np.zeros(3, dtype=np.int64))
    deployed = u.sample_treatments(1, 0, 4000, np.random.default_rng(1))
    current = u.sample_treatments(1, 0, 4000, np.random.default_rng(1), current=True, replication=2)
    means = u.scenario.before.treatment_model.means[0, 1], u.scenario.after.treatment_model.means[0, 1]
    assert np.abs(deployed.mean(0) - means[0]).max() < 0.15
    assert np.abs(current.mean(0) - means[1]).max() < 0.15
    assert u.current_queries.tolist() == [0, 0, 4000]
    with pytest.raises(ValueError, match="replication: .*give an integer in \\[0, 2\\]"):
        u.sample_treatments(1, 0, 5, current=True)
    with pytest.raises(ValueError, match="replication"):
        u.sample_treatments(1, 0, 5, current=True, replication=3)
    venv.reset(seed=0)
    assert u.current_queries.tolist() == [0, 0, 0]


def test_current_queries_are_counted_without_drift_too():
    env = GeneratorMediatedEnv()
    env.reset(seed=0)
    env.sample_treatments(0, 0, 7, current=True)
    assert env.current_queries.tolist() == [7]


# -- composition with the safety layer ------------------------------------------------------------------
def test_drift_composes_with_the_safety_layer_whose_thresholds_stay_fixed():
    s = make_scenario("synthetic", safety=THRESHOLD, drift={"kind": "abrupt", "at": 0, "magnitude": 1.0})
    assert isinstance(s, DriftingScenario)
    assert s.after.safety is s.before.safety  # one layer: thresholds from the deployed generator
    # the moved generator meets the fixed threshold more or less often than the deployed one
    assert not np.allclose(s.after.fallback_probability, s.before.fallback_probability)
    venv = _venv(5, safety=THRESHOLD, drift={"kind": "abrupt", "at": 1, "magnitude": 1.0})
    venv.reset(seed=2)
    for t in range(3):
        _, _, _, _, info = venv.step(np.zeros(5, dtype=np.int64))
        assert {"delivered", "fallback", "generator", "generator_changed"} <= set(info)
        assert info["generator"].tolist() == [int(t >= 1)] * 5


# -- bad options ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant, drift, match", [
    ("synthetic", {"kind": "sudden"}, "drift.kind: expected one of"),
    ("synthetic", {"kind": "abrupt"}, "needs \\['at'\\]"),
    ("synthetic", {"kind": "gradual", "at": 3}, "needs \\['window'\\]"),
    ("synthetic", {"kind": "periodic", "period": 1}, "drift.period"),
    ("synthetic", {"kind": "abrupt", "at": 3, "cache_path": "x.npz"}, "unknown key\\(s\\) \\['cache_path'\\]"),
    ("synthetic", {"kind": "abrupt", "at": 3, "weight": 1.5}, "drift.weight"),
    ("synthetic", {"kind": "abrupt", "at": 3, "direction": [1, 0]}, "drift.direction"),
    ("synthetic", {"kind": "abrupt", "at": 3, "direction": [0, 0, 0]}, "nonzero"),
    ("synthetic", {"kind": "endogenous"}, "for the cached-llm variant"),
    ("cached-llm", {"kind": "abrupt", "at": 3, "magnitude": 1.0}, "unknown key\\(s\\) \\['magnitude'\\]"),
    ("cached-llm", {"kind": "abrupt", "at": 3, "cache_path": "/nonexistent.npz"}, "no such file"),
    ("cached-llm", {"kind": "endogenous", "every": 0}, "drift.every"),
    ("synthetic", "abrupt", "expected a dict"),
])
def test_bad_drift_options_are_clear_errors(variant, drift, match):
    with pytest.raises((ValueError, TypeError, Exception), match=match):
        make_scenario(variant, drift=drift)


def test_a_cache_of_another_world_is_refused():
    study = str(bundled_cache_path("study_nudges"))
    with pytest.raises(ValueError, match="cannot serve the world"):
        make_scenario("cached-llm", drift={"kind": "abrupt", "at": 1, "cache_path": study})


def test_endogenous_drift_with_a_safety_layer_is_refused():
    safety = {"checks": [{"type": "threshold", "dimension": "threat", "above_quantile": 0.9}],
              "on_reject": "withhold", "no_message_reward": 80.0}
    with pytest.raises(ValueError, match="endogenous' drift with a safety layer"):
        make_scenario("cached-llm", safety=safety, drift={"kind": "endogenous"})
