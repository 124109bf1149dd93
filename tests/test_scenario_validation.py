"""Values that used to come out silently wrong: an explicit 0 taken for "unset", reward-scale options
so large that the rewards overflow to NaN, an overflow blamed on the wrong parameter."""

import re

import gymnasium as gym
import numpy as np
import pytest

from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv
from gambit_gym.contexts import ContextSpace
from gambit_gym.embeddings import LinearView
from gambit_gym.outcomes import LinearOutcome
from gambit_gym.scenarios.base import MAX_SCALE, SCALE_OPTIONS
from gambit_gym.scenarios.gaussian import GaussianScenario
from gambit_gym.treatments import GaussianTreatmentModel


# -- an explicit field_noise_sd=0.0 is honoured ----------------------------------------------------------
@pytest.mark.parametrize("outcome", ["linear-3d", "mlp"])
def test_cached_llm_field_noise_sd_zero_is_zero_not_the_default(outcome):
    env = gym.make(ENV_ID, variant="cached-llm", outcome=outcome, field_noise_sd=0.0, noise_level=4)
    scenario = env.unwrapped.scenario
    assert scenario.noise_levels[-1] == 0.0 and scenario.noise_sd == 0.0
    default = gym.make(ENV_ID, variant="cached-llm", outcome=outcome, noise_level=4).unwrapped.scenario
    assert default.noise_sd == default.outcome_spec.field_noise_sd > 0  # None still means the outcome's own
    given = gym.make(ENV_ID, variant="cached-llm", outcome=outcome, field_noise_sd=3.5, noise_level=4)
    assert given.unwrapped.scenario.noise_sd == 3.5


def test_cached_llm_rewards_at_field_noise_zero_are_the_messages_own_outcomes():
    """sigma_Y = 0: every reward is exactly the outcome f of the message drawn, with no noise added
    (with the old fallback to the field noise sd 24.57 none would be)."""
    venv = GeneratorMediatedVectorEnv(num_envs=64, variant="cached-llm", field_noise_sd=0.0, noise_level=4)
    venv.reset(seed=0)
    _, reward, _, _, info = venv.step(np.zeros(64, dtype=np.int64))
    scenario = venv.scenario
    assert np.all(np.isin(reward, scenario._f))  # every reward is one message's f, no noise added


# -- reward-scale options past the limit are errors naming the option -----------------------------------
HUGE = {
    "treatment_spread": 1e200,
    "treatment_noise_sd": 1e200,
    "context_shift": 1e200,
    "effect_size": 1e308,
    "context_effect_sd": 1e200,
    "intercept": -1e300,
    "reward_noise_sd": 1e308,
    "field_noise_sd": 1e300,
    "treatment_means": np.full((5, 3), 1e200),
    "coefficients": np.full(3, 1e200),
    "treatment_cov": 1e300 * np.eye(3),
}


@pytest.mark.parametrize("variant", ["synthetic", "misspecified"])
@pytest.mark.parametrize("option", sorted(HUGE))
def test_an_overflowing_reward_scale_option_is_an_error_naming_it(variant, option):
    extra = {"observed_dims": [0, 1, 2]} if variant == "misspecified" else {}
    limit = MAX_SCALE ** 2 if option == "treatment_cov" else MAX_SCALE
    with pytest.raises(ValueError, match=rf"^{option}: .*at most {re.escape(f'{limit:g}')}"):
        gym.make(ENV_ID, variant=variant, **{option: HUGE[option]}, **extra)


def test_every_scale_option_of_the_docstring_is_checked():
    assert set(HUGE) | {"embedding_noise_sd"} == set(SCALE_OPTIONS)
    with pytest.raises(ValueError, match=r"^embedding_noise_sd: .*at most 1e\+09"):
        gym.make(ENV_ID, variant="misspecified", embedding_noise_sd=1e200)


@pytest.mark.parametrize("option", ["reward_noise_sd", "field_noise_sd"])
def test_cached_llm_noise_past_the_limit_is_an_error_naming_it(option):
    with pytest.raises(ValueError, match=rf"^{option}: .*at most 1e\+09"):
        gym.make(ENV_ID, variant="cached-llm", **{option: 1e300})


def test_a_treatment_noise_sd_whose_square_underflows_is_named_not_blamed_on_the_covariance():
    with pytest.raises(ValueError, match="^treatment_noise_sd: .*square"):
        gym.make(ENV_ID, treatment_noise_sd=1e-200)


@pytest.mark.parametrize("outcome", ["linear", "mlp"])
def test_options_at_the_limit_give_finite_rewards_and_oracle(outcome):
    """The documented range is safe: every reward-scale option at the limit still gives finite
    rewards, expected rewards, regrets and noise levels."""
    limit = dict(treatment_spread=MAX_SCALE, treatment_noise_sd=MAX_SCALE, context_shift=MAX_SCALE,
                 effect_size=MAX_SCALE, context_effect_sd=MAX_SCALE, intercept=-MAX_SCALE, noise_level=4,
                 field_noise_sd=MAX_SCALE, outcome=outcome)
    venv = GeneratorMediatedVectorEnv(num_envs=32, **limit)
    venv.reset(seed=0)
    for a in range(5):
        _, reward, _, _, info = venv.step(np.full(32, a))
        for value in (reward, info["expected_reward"], info["regret"], info["treatment_embedding"]):
            assert np.all(np.isfinite(value))
    scenario = venv.scenario
    assert np.all(np.isfinite(scenario.expected_reward)) and np.all(np.isfinite(scenario.noise_levels))


# -- an overflowing instance built from parts is named as such ------------------------------------------
def _scenario(means, coef):
    contexts = ContextSpace()
    treatments = GaussianTreatmentModel(np.broadcast_to(means, (contexts.n_contexts, 2, 3)), np.eye(3))
    options = {"noise_level": None, "reward_noise_sd": None, "field_noise_sd": 1.0, "treatment_means": means,
               "coefficients": coef}
    return GaussianScenario("synthetic", contexts, treatments, LinearView.identity(3),
                            LinearOutcome(0.0, coef, np.zeros(contexts.n_contexts)), options)


def test_a_scenario_whose_treatment_scale_overflows_is_an_error():
    means = np.array([[1e200, 0.0, 0.0], [-1e200, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"synthetic: the treatment scale .* overflows; reduce the reward-scale "
                                         r"options \['treatment_means', 'coefficients', .*field_noise_sd"):
        _scenario(means, np.ones(3))


def test_a_scenario_whose_expected_rewards_overflow_is_an_error():
    means = np.array([[1e100, 0.0, 0.0], [0.0, 1e100, 0.0]])
    with pytest.raises(ValueError, match=r"synthetic: the expected rewards of this problem instance overflow"):
        _scenario(means, np.full(3, 1e250))
