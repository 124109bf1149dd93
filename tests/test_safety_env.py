"""The safety layer (gambit_gym.safety): off is today's environment, the oracle is exact, bad layers are errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import gambit_gym  # noqa: F401  (registers the environment)
from gambit_gym.env import GeneratorMediatedEnv
from gambit_gym.safety import SafeScenario
from gambit_gym.scenarios import make_scenario

# Rewards, embedding sums and next contexts of 10 steps (action t % 5, reset(seed=123)), and the sum of
# sample_treatments(1, 2, 3), recorded with the package before the safety layer existed.
BEFORE_THE_LAYER = {
    "synthetic": ({}, [82.109711911969, 80.17524243503, 79.289218654954, 78.555132749508, 83.876558472541,
                       82.628800464095, 78.107064397793, 82.820055062123, 82.108546633857, 76.526011341093],
                  [2.465453525335, 1.100492632743, 1.075885679076, 3.379215788986, -1.234340219514,
                   3.149872162209, 1.285856068427, 0.439494013572, 2.974147918607, -0.376783863987],
                  [8, 10, 10, 10, 9, 0, 8, 4, 9, 8], 1.7938420694046804),
    "misspecified": ({"embedding_noise_sd": 0.3},
                     [81.377355746669, 81.002235791725, 82.899597792368, 82.21478813691, 82.302843311591,
                      81.893575566335, 82.009691659982, 81.360865414344, 79.742720375039, 78.989574843399],
                     [1.338271691088, -0.85666425652, 2.050209464727, -0.276531763656, 1.037928561767,
                      1.969167594822, 0.137625176368, 0.588226260366, 1.428114553136, -0.586909916052],
                     [8, 3, 2, 0, 5, 2, 10, 11, 2, 3], 0.37194281092735304),
    "cached-llm": ({}, [84.667560245072, 84.378850718891, 84.325081318599, 83.093047623677, 84.692434635774,
                        83.023739594717, 81.763145336941, 83.028885853273, 85.532597770901, 83.735566342906],
                   [-2.126319348812, -0.979098498821, -0.859002172947, 0.715079523623, -0.269808828831,
                    1.840853601694, 0.459154430777, 0.848557125777, 0.742226402275, 3.315125882626],
                   [8, 4, 9, 0, 6, 1, 7, 9, 2, 4], -0.1363905817270279),
}


def _ten_steps(env):
    env.reset(seed=123)
    rewards, sums, contexts, infos = [], [], [], []
    for t in range(10):
        _, r, _, _, info = env.step(t % 5)
        rewards.append(round(r, 12))
        sums.append(round(float(np.sum(info["treatment_embedding"])), 12))
        contexts.append(info["context_index"])
        infos.append(info)
    return rewards, sums, contexts, infos


@pytest.mark.parametrize("variant", sorted(BEFORE_THE_LAYER))
def test_layer_off_is_bit_for_bit_the_environment_before_it(variant):
    opts, rewards, sums, contexts, sim = BEFORE_THE_LAYER[variant]
    for safety in ({}, {"safety": None}):
        env = GeneratorMediatedEnv(variant, **opts, **safety)
        assert not isinstance(env.scenario, SafeScenario)
        got = _ten_steps(env)
        assert got[:3] == (rewards, sums, contexts)
        assert "delivered" not in got[3][0]
        assert env.sample_treatments(1, 2, 3).sum() == sim


@pytest.mark.parametrize("variant", sorted(BEFORE_THE_LAYER))
def test_a_layer_that_passes_everything_changes_no_draw_of_the_episode(variant):
    # The layer's coin flips come from a stream of its own, so the episode's numbers stay the same.
    opts, rewards, sums, contexts, _ = BEFORE_THE_LAYER[variant]
    never = {"checks": [{"type": "random", "probability": 0.0}], "on_reject": "resample"}
    env = GeneratorMediatedEnv(variant, **opts, safety=never)
    got = _ten_steps(env)
    assert got[:3] == (rewards, sums, contexts)
    assert all(i["delivered"] and i["attempts"] == 1 and not i["filtered"] and not i["fallback"] for i in got[3])


def _monte_carlo_check(scenario, cell=(3, 1), n=200_000, seed=0):
    """Mean reward and harm of n delivered rounds in one cell against the oracle, within 4 SE."""
    c, a = cell
    rng = np.random.default_rng(seed)
    acts, ctx = np.full(n, a), np.full(n, c)
    _, _, reward, extras = scenario.draw_with_layer(acts, ctx, rng)
    se = np.sqrt(reward.var() / n + scenario.expected_reward_se[c, a] ** 2)
    assert abs(reward.mean() - scenario.expected_reward[c, a]) < 4 * se, (reward.mean(), scenario.expected_reward[c, a])
    harm_se = max(np.sqrt(extras["harm"].var() / n), 1e-12)
    assert abs(extras["harm"].mean() - scenario.expected_harm[c, a]) < 4 * harm_se + 4 * se
    fb = (~extras["delivered"] | extras["fallback"]).mean()
    fb_se = max(np.sqrt(fb * (1 - fb) / n), 1e-12)
    assert abs(fb - scenario.fallback_probability[c, a]) < 4 * fb_se
    return extras


THRESHOLD = {"type": "threshold", "dimension": "z0", "above_quantile": 0.6}
LOGISTIC = {"type": "logistic", "weights": {"z1": 2.0, "z2": -1.0}, "bias": -0.5}
RANDOM = {"type": "random", "probability": 0.3}
FALLBACK = {"on_reject": "fallback", "fallback": {"reward": 78.0, "embedding": [0.5, 0.5, 0.5], "harm": 0.1}}
WITHHOLD = {"on_reject": "withhold", "no_message_reward": 79.5}


@pytest.mark.parametrize("checks, expected_rule", [
    ([THRESHOLD], "closed form"),
    ([THRESHOLD, {"type": "threshold", "weights": {"z0": -2.0}, "above": 1.0}, RANDOM], "closed form"),
    ([LOGISTIC], "quadrature"),
    ([{**LOGISTIC, "weights": {"z1": -4.0, "z2": 2.0}}, LOGISTIC, RANDOM], "quadrature"),
    ([RANDOM], "closed form"),
    ([THRESHOLD, LOGISTIC, RANDOM], "monte-carlo"),
])
@pytest.mark.parametrize("reject", [FALLBACK, WITHHOLD, {"on_reject": "resample"}])
def test_synthetic_oracle_matches_monte_carlo_for_every_check_type(checks, expected_rule, reject):
    s = make_scenario("synthetic", safety={"checks": checks, "attempts": 2, "harm": "z1", **reject})
    assert s.oracle_rule.startswith(expected_rule)
    extras = _monte_carlo_check(s)
    assert extras["filtered"].any()


@pytest.mark.parametrize("checks, expected_rule", [
    ([THRESHOLD], "quadrature"), pytest.param([THRESHOLD, LOGISTIC], "monte-carlo", marks=pytest.mark.slow)])
def test_synthetic_mlp_outcome_uses_a_numerical_rule_and_matches(checks, expected_rule):
    s = make_scenario("synthetic", outcome="mlp", safety={"checks": checks, "oracle_draws": 1 << 14, **FALLBACK})
    assert s.oracle_rule.startswith(expected_rule) and s.expected_reward_se.max() > 0
    _monte_carlo_check(s, cell=(0, 2))


def test_quadrature_rule_reproduces_the_closed_form_within_its_reported_error():
    s = make_scenario("synthetic", n_actions=8, safety={"checks": [THRESHOLD, RANDOM], "attempts": 3, **FALLBACK})
    assert s.oracle_rule.startswith("closed form")
    w, lo, hi, factor, logistic = s._one_direction()
    sd = float(np.sqrt(w @ s.inner.treatment_model.cov @ w))
    for n in (64, 128):
        p_pass, wf, _, _ = s._quadrature(w, sd, lo, hi, factor, logistic, n)
        mu = s.safety.delivered_mean(p_pass, wf, s.safety.out_reward)
        np.testing.assert_allclose(mu, s.expected_reward, rtol=0, atol=1e-9)


def test_numerical_rule_error_is_within_its_reported_bound_of_the_closed_form():
    spec = {"checks": [THRESHOLD, RANDOM], "attempts": 3, **FALLBACK}
    exact = make_scenario("synthetic", n_actions=8, safety=spec)
    numerical = make_scenario("synthetic", n_actions=8, safety={**spec, "oracle": "monte-carlo"})
    assert exact.oracle_rule.startswith("closed form") and numerical.oracle_rule.startswith("monte-carlo")
    err = np.abs(numerical.expected_reward - exact.expected_reward)
    assert np.all(err < 4 * numerical.expected_reward_se)
    assert numerical.expected_reward_se.max() < 0.02  # the bound itself is small at the default draws


def test_misspecified_checks_read_the_latent_not_the_view():
    s = make_scenario("misspecified", latent_dim=3, observed_dims=[0],
                      safety={"checks": [{"type": "threshold", "dimension": "z2", "above": 0.0}], **WITHHOLD})
    _monte_carlo_check(s)
    rng = np.random.default_rng(1)
    latent, z, _, extras = s.draw_with_layer(np.zeros(500, dtype=int), np.zeros(500, dtype=int), rng)
    raw = extras["raw_treatment"]
    assert np.all(raw[extras["delivered"], 2] <= 0) and z.shape == (500, 1)
    assert np.all(np.isnan(latent[~extras["delivered"]])) and np.all(z[~extras["delivered"]] == 0)


@pytest.mark.parametrize("checks", [
    [{"type": "threshold", "dimension": "threat", "above_quantile": 0.7}],
    [{"type": "logistic", "weights": {"severity": 1.5, "optimism": -1.0}, "bias": -1.0}],
    [{"type": "pattern", "pattern": "lazy|fail|must", "ignore_case": True}],
    [{"type": "threshold", "dimension": "threat", "above_quantile": 0.8}, {"type": "pattern", "pattern": "!"},
     RANDOM],
])
@pytest.mark.parametrize("reject", [
    {**FALLBACK, "fallback": {"reward": 0.5, "message": "Keep going!"}}, {**WITHHOLD, "no_message_reward": 0.0}])
@pytest.mark.slow
def test_cached_oracle_is_an_exact_reweighting_and_matches_monte_carlo(checks, reject):
    s = make_scenario("cached-llm", safety={"checks": checks, "attempts": 2, "harm": "threat", **reject})
    assert s.oracle_rule == "exact reweighting" and np.all(s.expected_reward_se == 0)
    _monte_carlo_check(s, cell=(5, 3), n=100_000)


def test_cached_exact_reweighting_by_hand():
    spec = {"checks": [{"type": "threshold", "dimension": "threat", "above": 0.5}], "attempts": 2,
            **FALLBACK, "fallback": {"reward": 3.0}}
    s = make_scenario("cached-llm", safety=spec)
    inner = s.inner
    c, a = 2, 4
    cell = inner._cell(a, c)
    threat = inner.check_features_all()[cell, list(inner.cache.style_dimensions).index("threat")]
    f = inner._f[cell]
    p = np.mean(threat <= 0.5)
    by_hand = (1 - (1 - p) ** 2) * f[threat <= 0.5].mean() + (1 - p) ** 2 * 3.0
    assert s.expected_reward[c, a] == pytest.approx(by_hand, rel=1e-12)


def test_info_reports_the_layer_and_both_treatments_in_every_mode():
    spec = {"checks": [{"type": "threshold", "dimension": "threat", "above_quantile": 0.5}], "attempts": 1,
            **FALLBACK, "fallback": {"reward": 80.0, "message": "Keep moving!"}}
    env = gym.make("GeneratorMediated-v0", variant="cached-llm", safety=spec)
    env.reset(seed=0)
    seen = set()
    for _ in range(40):
        _, _, _, _, info = env.step(0)
        for key in ("delivered", "attempts", "filtered", "fallback", "raw_treatment", "harm", "expected_harm"):
            assert key in info
        if info["fallback"]:
            assert info["treatment"] == "Keep moving!" and info["raw_treatment"] != "Keep moving!"
        seen.add(info["fallback"])
    assert seen == {True, False}
    kwargs = dict(variant="cached-llm", safety=spec, num_envs=4)
    sync = gym.make_vec("GeneratorMediated-v0", vectorization_mode="sync", **kwargs)
    per_env = gym.make_vec("GeneratorMediated-v0", vectorization_mode="vector_entry_point", seeding="per-env",
                           **kwargs)
    shared = gym.make_vec("GeneratorMediated-v0", vectorization_mode="vector_entry_point", **kwargs)
    for venv in (sync, per_env, shared):
        venv.reset(seed=[1, 2, 3, 4] if venv is not shared else 1)
    for _ in range(5):
        acts = np.array([0, 1, 2, 3])
        out_sync, out_per = sync.step(acts), per_env.step(acts)
        np.testing.assert_array_equal(out_sync[1], out_per[1])  # per-env is the sync mode's numbers, layer too
        for key in ("delivered", "attempts", "fallback"):
            np.testing.assert_array_equal(out_sync[4][key], out_per[4][key])
        info = shared.step(acts)[4]
        assert info["attempts"].shape == (4,) and info["raw_treatment"].dtype == object


def test_simulation_access_goes_through_the_layer_unless_raw():
    spec = {"checks": [{"type": "threshold", "dimension": "z0", "above_quantile": 0.5}], **WITHHOLD,
            "null_embedding": [9.0, 9.0, 9.0]}
    env = GeneratorMediatedEnv("synthetic", safety=spec)
    env.reset(seed=0)
    s = env.scenario
    delivered = env.sample_treatments(2, 1, 40_000)
    raw = env.sample_treatments(2, 1, 40_000, raw=True)
    np.testing.assert_allclose(delivered.mean(0), s.mean_embedding()[1, 2], atol=0.06)
    np.testing.assert_allclose(raw.mean(0), s.inner.mean_embedding()[1, 2], atol=0.03)
    assert np.mean(np.all(delivered == 9.0, axis=1)) == pytest.approx(s.fallback_probability[1, 2], abs=0.01)
    np.testing.assert_array_equal(env.raw_sample_treatments(0, 0, 5, np.random.default_rng(3)),
                                  env.sample_treatments(0, 0, 5, np.random.default_rng(3), raw=True))


@pytest.mark.parametrize("spec, match", [
    ({"checks": [{"type": "threshold", "dimension": "menace", "above": 1.0}], **WITHHOLD},
     "unknown dimension 'menace'"),
    ({"checks": [{"type": "random", "probability": 1.5}], **WITHHOLD},
     r"probability: expected a probability in \[0, 1\]"),
    ({"checks": [{"type": "threshold", "dimension": "z0", "above_quantile": -0.1}], **WITHHOLD}, "above_quantile"),
    ({"checks": [{"type": "threshold", "dimension": "z0", "above": -1e6}], "on_reject": "resample"},
     "reject every treatment.*no fallback"),
    ({"checks": [RANDOM], "on_reject": "fallback"}, "safety.fallback: on_reject='fallback' needs a fallback"),
    ({"checks": [RANDOM], "on_reject": "withhold"}, "no_message_reward"),
    ({"checks": [{"type": "pattern", "pattern": "x"}], **WITHHOLD}, "only the cached-llm variant"),
    ({"checks": [{"type": "threshold", "dimension": "z0"}], **WITHHOLD}, "needs 'above'"),
    ({"checks": [RANDOM], **FALLBACK, "fallback": {"reward": 1.0, "embedding": [1.0]}}, "safety.fallback.embedding"),
    ({"checks": [RANDOM], **WITHHOLD, "colour": 1}, "colour"),
    ({"checks": [{"type": "censor"}], **WITHHOLD}, "safety.checks.0..type"),
    ("strict", "safety: expected a dict"),
])
def test_a_bad_layer_definition_is_a_clear_error(spec, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make_scenario("synthetic", safety=spec)


def test_cached_unknown_style_dimension_lists_the_cache_dimensions():
    with pytest.raises(ValueError, match=r"unknown dimension 'menace'.*'threat'"):
        make_scenario("cached-llm", safety={"checks": [{"type": "logistic", "dimension": "menace"}], **WITHHOLD})


def test_expected_harms_are_the_delivered_harm_table():
    env = GeneratorMediatedEnv("synthetic", safety={"checks": [RANDOM], **WITHHOLD, "harm": {"weights": {"z0": 2.0}}})
    s = env.scenario
    np.testing.assert_allclose(env.expected_harms(4), 0.7 * 2.0 * s.inner.treatment_model.means[4, :, 0])
    np.testing.assert_array_equal(env.expected_harms(np.array([0, 3])), s.expected_harm[[0, 3]])
    np.testing.assert_array_equal(GeneratorMediatedEnv("synthetic").expected_harms(2), np.zeros(5))
    with pytest.raises(ValueError, match="context"):
        env.expected_harms(12)
