"""The single environment: API, semantics, determinism, oracle and bad input."""

import inspect
import pickle
import re
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from gambit_gym import ENV_ID, VARIANTS, GeneratorMediatedEnv, GeneratorMediatedVectorEnv, Scenario, make_scenario
from gambit_gym.outcomes import OutcomeModel
from gambit_gym.scenarios import VARIANT_OPTIONS, Option
from tests.conftest import VARIANT_KWARGS


def rollout(env, seed, n, actions_seed=0):
    obs, _ = env.reset(seed=seed)
    acts = np.random.default_rng(actions_seed).integers(env.action_space.n, size=n)
    out = []
    for a in acts:
        obs, r, term, trunc, info = env.step(int(a))
        out.append((obs.copy(), r, info["treatment_embedding"].copy(), info["regret"]))
    return out


@pytest.mark.parametrize("kwargs", VARIANT_KWARGS)
def test_gymnasium_check_env_passes(kwargs):
    check_env(gym.make(ENV_ID, **kwargs).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("render_mode", ["ansi", "rgb_array"])
def test_gymnasium_check_env_passes_with_rendering(render_mode):
    check_env(gym.make(ENV_ID, render_mode=render_mode).unwrapped)


@pytest.mark.parametrize("kwargs", VARIANT_KWARGS)
def test_sb3_check_env_passes(kwargs):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_checker.check_env(gym.make(ENV_ID, **kwargs).unwrapped, warn=True)


def test_issue_example_runs_and_info_keys():
    env = gym.make(ENV_ID)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (7,)
    assert set(info["context"]) == {"location", "previous_day_steps"}
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert type(reward) is float and terminated is False and truncated is False
    assert info["treatment_embedding"].shape == (3,)
    for key in ("treatment", "expected_reward", "optimal_action", "optimal_expected_reward", "regret"):
        assert key in info
    env = gym.make(ENV_ID, variant="misspecified", n_actions=40)
    env.reset(seed=0)
    assert env.action_space.n == 40
    assert env.step(39)[4]["treatment_embedding"].shape == (1,)


def test_truncates_at_max_episode_steps_and_never_terminates():
    env = gym.make(ENV_ID, max_episode_steps=5)
    assert env.spec.max_episode_steps == 5
    env.reset(seed=1)
    flags = [env.step(0)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def episode_lengths(env, n_episodes=2):
    lengths = []
    for episode in range(n_episodes):
        env.reset(seed=episode)
        t = 0
        while True:
            t += 1
            if env.step(0)[3]:
                break
        lengths.append(t)
    return lengths


def test_one_episode_length_knob_reflected_in_the_spec():
    assert gym.spec(ENV_ID).max_episode_steps == 1000
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 1000 and episode_lengths(env) == [1000, 1000]
    env = gym.make(ENV_ID, max_episode_steps=1500)
    assert env.spec.max_episode_steps == 1500 and episode_lengths(env) == [1500, 1500]
    assert GeneratorMediatedEnv(max_episode_steps=7).max_episode_steps == 7 and episode_lengths(
        GeneratorMediatedEnv(max_episode_steps=7)) == [7, 7]
    unlimited = GeneratorMediatedEnv()  # the class itself, as CartPoleEnv: gym.make adds the limit
    unlimited.reset(seed=0)
    assert unlimited.max_episode_steps is None and not any(unlimited.step(0)[3] for _ in range(1200))


def test_horizon_is_the_old_name_and_gives_the_same_numbers():
    with pytest.warns(DeprecationWarning, match="max_episode_steps=5"):
        old = gym.make(ENV_ID, horizon=5)
    assert old.unwrapped.horizon == old.unwrapped.max_episode_steps == 5
    new = gym.make(ENV_ID, max_episode_steps=5)
    assert episode_lengths(old) == episode_lengths(new) == [5, 5]
    a, b = rollout(old, 3, 12), rollout(new, 3, 12)
    for x, y in zip(a, b):
        assert np.array_equal(x[0], y[0]) and x[1] == y[1] and np.array_equal(x[2], y[2])
    with pytest.warns(DeprecationWarning):
        assert GeneratorMediatedEnv(max_episode_steps=9, horizon=4).max_episode_steps == 4  # horizon wins


def test_same_seed_same_trajectory_bit_for_bit_and_different_seeds_differ():
    a = rollout(gym.make(ENV_ID), 7, 50)
    b = rollout(gym.make(ENV_ID), 7, 50)
    c = rollout(gym.make(ENV_ID), 8, 50)
    for x, y in zip(a, b):
        assert np.array_equal(x[0], y[0]) and x[1] == y[1] and np.array_equal(x[2], y[2])
    assert any(x[1] != y[1] for x, y in zip(a, c))


def test_problem_instance_independent_of_episode_seed():
    env = gym.make(ENV_ID)
    env.reset(seed=1)
    mu1 = env.unwrapped.expected_rewards(3)
    env.reset(seed=2)
    assert np.array_equal(mu1, env.unwrapped.expected_rewards(3))
    other = gym.make(ENV_ID, problem_seed=1).unwrapped
    assert not np.array_equal(mu1, other.expected_rewards(3))


@pytest.mark.parametrize("kwargs", VARIANT_KWARGS)
def test_regret_nonnegative_and_zero_for_optimal_action(kwargs):
    env = gym.make(ENV_ID, **kwargs)
    obs, info = env.reset(seed=3)
    for _ in range(200):
        ctx = info["context_index"]
        best = int(np.argmax(env.unwrapped.expected_rewards(ctx)))
        obs, r, _, _, info = env.step(best)
        assert info["regret"] == 0.0 and info["optimal_action"] == best
        obs, r, _, _, info = env.step(env.action_space.sample())
        assert info["regret"] >= 0.0
        assert info["regret"] == pytest.approx(info["optimal_expected_reward"] - info["expected_reward"])


@pytest.mark.parametrize("kwargs", VARIANT_KWARGS)
def test_expected_rewards_match_monte_carlo_within_4_se(kwargs):
    """Rewards in one cell, averaged, agree with the oracle mu(a, x)."""
    scenario = make_scenario(**{k: v for k, v in kwargs.items() if k != "variant"},
                             variant=kwargs["variant"])
    rng = np.random.default_rng(0)
    n = 20_000
    for action, context in [(0, 0), (scenario.n_actions - 1, 5)]:
        _, _, y = scenario.draw(np.full(n, action), np.full(n, context), rng)
        se = y.std(ddof=1) / np.sqrt(n)
        assert abs(y.mean() - scenario.expected_reward[context, action]) < 4 * se


def test_mlp_oracle_is_exact_not_sampled():
    # The Gaussian-ReLU closed form against a very large sample in one cell.
    s = make_scenario(outcome="mlp", reward_noise_sd=0.0)
    rng = np.random.default_rng(1)
    n = 400_000
    latent = s.treatment_model.sample(np.full(n, 2), np.full(n, 4), rng)
    f = s.outcome.mean(latent, np.full(n, 4))
    assert abs(f.mean() - s.expected_reward[4, 2]) < 4 * f.std() / np.sqrt(n)


def test_noise_levels_span_treatment_scale_to_field_sd():
    s = make_scenario()
    assert s.noise_levels[0] == pytest.approx(s.treatment_scale)
    assert s.noise_levels[-1] == pytest.approx(24.5712)
    assert np.allclose(np.diff(s.noise_levels), np.diff(s.noise_levels)[0])
    assert make_scenario(noise_level=3).noise_sd == pytest.approx(s.noise_levels[3])
    assert make_scenario(reward_noise_sd=2.5).noise_sd == 2.5


def test_sample_treatments_does_not_disturb_episode_stream():
    env_a, env_b = gym.make(ENV_ID), gym.make(ENV_ID)
    env_a.reset(seed=5)
    env_b.reset(seed=5)
    bank = env_a.unwrapped.sample_treatments(1, 2, 100)
    assert bank.shape == (100, 3)
    for _ in range(20):
        ra, rb = env_a.step(1)[1], env_b.step(1)[1]
        assert ra == rb
    explicit = env_a.unwrapped.sample_treatments(0, 0, 10, rng=np.random.default_rng(0))
    again = env_b.unwrapped.sample_treatments(0, 0, 10, rng=np.random.default_rng(0))
    assert np.array_equal(explicit, again)


def test_sample_treatments_same_distribution_as_episode():
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    bank = env.sample_treatments(3, 7, 50_000, rng=np.random.default_rng(0))
    mean = env.scenario.mean_embedding()[7, 3]
    assert np.all(np.abs(bank.mean(0) - mean) < 4 * bank.std(0) / np.sqrt(len(bank)))


def test_misspecified_reports_embedding_r2():
    full = gym.make(ENV_ID).unwrapped.embedding_r2
    lossy = gym.make(ENV_ID, variant="misspecified", n_actions=40).unwrapped.embedding_r2
    assert full == pytest.approx(1.0)
    assert 0.0 <= lossy < 0.9
    all_dims = gym.make(ENV_ID, variant="misspecified", observed_dims=[0, 1, 2]).unwrapped.embedding_r2
    assert all_dims == pytest.approx(1.0)


def test_pickle_round_trip_preserves_state():
    env = GeneratorMediatedEnv(n_actions=4)
    env.reset(seed=0)
    env.step(1)
    clone = pickle.loads(pickle.dumps(env))
    assert env.step(2)[1] == clone.step(2)[1]


def test_runs_in_async_vector_env():
    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async", n_actions=3)
    try:
        venv.reset(seed=0)
        obs, r, term, trunc, info = venv.step(np.array([0, 2]))
        assert obs.shape == (2, 7) and r.shape == (2,) and np.all(info["regret"] >= 0)
    finally:
        venv.close()


def test_render_ansi():
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    assert "regret=" in env.render()


def test_render_rgb_array_draws_the_last_round():
    env = gym.make(ENV_ID, render_mode="rgb_array", n_actions=4)
    _, info = env.reset(seed=0)
    before = env.render()
    assert before.shape == (96, 4 * 16 + 8, 3) and before.dtype == np.uint8
    mu = env.unwrapped.expected_rewards(info["context_index"])
    worst = int(np.argmin(mu))
    _, reward, _, _, info = env.step(worst)
    frame = env.render()
    assert frame.shape == before.shape

    def bar_height(a):  # rows of colour above the marker strip, in the bar's column
        column = frame[: 96 - 6, 6 + a * 16 + 6]
        return int(np.sum(np.any(column != 255, axis=1)))

    heights = [bar_height(a) for a in range(4)]
    played_mu = env.unwrapped.expected_rewards(info["played_context"])
    assert int(np.argmax(heights)) == int(np.argmax(played_mu)) and int(np.argmin(heights)) == worst
    best_left = 6 + int(np.argmax(played_mu)) * 16
    assert tuple(frame[89, best_left + 6]) == (60, 160, 60)  # the best prompt's bar is green
    assert tuple(frame[93, 6 + worst * 16 + 6]) == (230, 120, 30)  # the played prompt is marked underneath
    assert GeneratorMediatedEnv().render() is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_actions": 0}, "n_actions"),
        ({"n_actions": 2.5}, "n_actions"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": -3}, "horizon"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
        ({"max_episode_steps": 2.5}, "max_episode_steps"),
        ({"reward_noise_sd": -1.0}, "reward_noise_sd"),
        ({"treatment_noise_sd": -0.1}, "treatment_noise_sd"),
        ({"noise_level": 5}, "noise_level"),
        ({"noise_level": 1, "reward_noise_sd": 1.0}, "noise_level and reward_noise_sd"),
        ({"variant": "nope"}, "variant: expected one of"),
        ({"outcome": "cubic"}, "outcome"),
        ({"colour": "red"}, "unknown option"),
        ({"variant": "misspecified", "observed_dims": [5]}, "observed_dims"),
        ({"variant": "misspecified", "view": "pca"}, "view"),
        ({"render_mode": "human"}, "render_mode"),
        ({"treatment_means": np.zeros((2, 3))}, "treatment_means"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        GeneratorMediatedEnv(**kwargs)


def test_unknown_variant_lists_valid_ones():
    with pytest.raises(ValueError, match=r"\['cached-llm', 'misspecified', 'synthetic'\]"):
        gym.make(ENV_ID, variant="cached")


@pytest.mark.parametrize("action", [5, -1, 1.0, "1", None, True, np.array([0, 1])])
def test_bad_actions_are_rejected_not_clipped(action):
    env = GeneratorMediatedEnv(n_actions=5)
    env.reset(seed=0)
    with pytest.raises((ValueError, TypeError), match="action"):
        env.step(action)


def test_numpy_integer_actions_are_accepted():
    env = GeneratorMediatedEnv(n_actions=5)
    env.reset(seed=0)
    for a in (np.int64(1), np.int32(2), np.array(3), np.array([4])):
        env.step(a)


# -- the documented arguments are the code's -----------------------------------------------------
#: The environment's own arguments as the docstring documents them (the defaults are checked against
#: the signatures below); the variants' options come from their option tables.
ENV_ARGUMENTS = [
    Option("variant", "str", "synthetic", '"synthetic", "misspecified" or "cached-llm": the scenario (options below)'),
    Option("max_episode_steps", "int | None", None,
           "rounds per episode, then truncated: gym.make and gym.make_vec use 1000 (the registered value, "
           "env.spec.max_episode_steps) unless given; None (the class constructed directly) = no limit"),
    Option("horizon", "int | None", None,
           "the old name of max_episode_steps, still accepted (it wins if both are given); through gym.make it "
           "cannot lengthen an episode past max_episode_steps, so it warns"),
    Option("render_mode", "str | None", None,
           'None, "ansi" (a one-line text summary of the last round) or "rgb_array" (a bar chart of it, '
           "(96, 16 K + 8, 3) uint8); the vector environment renders one frame per sub-environment"),
    Option("num_envs", "int", 1, "gym.make_vec only: how many sub-environments step together"),
    Option("seeding", "str", "shared",
           'the vector entry point only: "shared" (one random stream for the batch, fastest) or "per-env" (one '
           'per sub-environment, seeded as SyncVectorEnv seeds them: the "sync" mode\'s numbers)'),
]
VARIANT_CODES = {"synthetic": "S", "misspecified": "M", "cached-llm": "C"}


def arguments_table(width=112):
    """The Arguments table: one row per option, merged across the variants that share it."""
    rows = [(o, "env") for o in ENV_ARGUMENTS]
    shared = {}
    for variant, table in VARIANT_OPTIONS.items():
        for option in table:
            shared.setdefault(option, []).append(VARIANT_CODES[variant])
    rows += [(o, " ".join(codes)) for o, codes in shared.items()]
    head = ("argument", "where", "type", "default", "meaning")
    cells = [(o.name, where, o.type, f'"{o.default}"' if isinstance(o.default, str) else repr(o.default))
             for o, where in rows]
    widths = [max(len(c[i]) for c in [*cells, head]) for i in range(4)]
    meaning_width = width - sum(widths) - 2 * len(widths)
    rule = "  ".join("=" * w for w in [*widths, meaning_width])

    def line(cols, meaning):
        return ("  ".join(c.ljust(w) for c, w in zip(cols, widths)) + "  " + meaning).rstrip()

    out = [rule, line(head[:4], head[4]), rule]
    for cols, (option, _) in zip(cells, rows):
        wrapped = textwrap.wrap(option.doc, meaning_width, break_long_words=False, break_on_hyphens=False)
        out += [line(cols, wrapped[0])] + [line(("",) * 4, w) for w in wrapped[1:]]
    return "\n".join([*out, rule])


def test_docstring_arguments_table_is_generated_from_the_option_tables():
    assert set(VARIANT_OPTIONS) == set(VARIANTS) == set(VARIANT_CODES)
    expected = arguments_table()
    doc = inspect.cleandoc(GeneratorMediatedEnv.__doc__)
    section = doc.split("## Arguments\n", 1)[1].split("\n## ", 1)[0]
    table = textwrap.dedent("\n".join(line for line in section.splitlines() if line.startswith("    ")))
    assert table == expected, "regenerate the Arguments table of GeneratorMediatedEnv:\n" + expected


def test_documented_environment_defaults_are_the_signatures():
    defaults = {o.name: o.default for o in ENV_ARGUMENTS}
    for cls in (GeneratorMediatedEnv, GeneratorMediatedVectorEnv):
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name in defaults:
                assert param.default == defaults[name], (cls.__name__, name)
    single = set(inspect.signature(GeneratorMediatedEnv.__init__).parameters)
    vector = set(inspect.signature(GeneratorMediatedVectorEnv.__init__).parameters)
    assert single >= {"variant", "max_episode_steps", "horizon", "render_mode"}
    assert vector >= {"num_envs", "variant", "max_episode_steps", "horizon", "render_mode", "seeding"}
    assert defaults.keys() <= single | vector


@pytest.mark.parametrize("variant", ["synthetic", "misspecified"])
def test_option_table_defaults_are_what_the_scenario_uses(variant):
    s = make_scenario(variant)
    assert s.options == {o.name: o.default for o in VARIANT_OPTIONS[variant]}
    allowed = sorted(o.name for o in VARIANT_OPTIONS[variant])
    with pytest.raises(TypeError, match=re.escape(f"unknown option(s) ['colour']; allowed options are {allowed}")):
        make_scenario(variant, colour="red")


def test_misspecified_latent_dim_errors_name_latent_dim():
    with pytest.raises(ValueError, match="latent_dim"):
        make_scenario("misspecified", latent_dim=0)


def test_scenario_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        Scenario()

    class NoGenerate(Scenario):
        embedding_dim = 1

        def sample_treatments(self, action, context, n, rng):
            return np.zeros((n, 1))

        def mean_embedding(self):
            return np.zeros((1, 1, 1))

    with pytest.raises(TypeError, match="generate"):
        NoGenerate()


def test_outcome_models_satisfy_the_outcome_protocol():
    for variant in VARIANT_KWARGS:
        assert isinstance(make_scenario(**variant).outcome, OutcomeModel)
    assert isinstance(make_scenario("cached-llm", outcome="mlp").outcome, OutcomeModel)
    assert not isinstance(object(), OutcomeModel)
