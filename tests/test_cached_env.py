"""The cached-LLM environment: the bundled cache, exact oracle, prompt subsets, bad files and arguments."""

import json

import gymnasium as gym
import numpy as np
import pytest

from agents import FoGAMBITTS, PoGAMBITTS
from gambit_gym import ENV_ID
from gambit_gym.cache import CacheError, load_cache
from gambit_gym.domains import load_domain
from tests._domains import handmade_cache


# -- corrupt and foreign files -------------------------------------------------------------------
def _rewrite(src, dst, **changes):
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    np.savez(dst, **arrays)
    return dst


def _meta(src, **changes):
    with np.load(src, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
    meta.update(changes)
    return np.array(json.dumps(meta))


@pytest.mark.llm
def test_corrupt_and_foreign_files_give_clear_errors(tmp_path, tiny_build):
    src = tiny_build["path"]
    with np.load(src, allow_pickle=False) as data:
        a = {k: data[k] for k in data.files}
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.arange(3))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**a, "texts": np.array([{"evil": 1}] * len(a["texts"]), dtype=object)})
    nan = a["style_scores"].copy()
    nan[3, 2] = np.nan
    keep = a["prompt_index"] != 0  # drop every message of prompt 0: empty cells
    cases = {
        truncated: "truncated",
        tmp_path / "missing.npz": "no such file",
        foreign: "not a gambit-gym cache",
        pickled: "not a readable cache|unicode",
        _rewrite(src, tmp_path / "version.npz", meta=_meta(src, version=99)): "version 99",
        _rewrite(src, tmp_path / "format.npz", meta=_meta(src, format="other")): "not a gambit-gym cache",
        _rewrite(src, tmp_path / "shape.npz", embeddings=a["embeddings"][:-2]): "embeddings has shape",
        _rewrite(src, tmp_path / "nan.npz", style_scores=nan): "NaN",
        _rewrite(src, tmp_path / "empty.npz", **{k: a[k][keep] for k in
                 ("texts", "prompt_index", "context_index", "embeddings", "style_scores")}): "is empty",
    }
    for path, problem in cases.items():
        with pytest.raises(CacheError, match=problem) as err:
            load_cache(path)
        assert str(path) in str(err.value)
    with pytest.raises(CacheError, match="NaN"):
        gym.make(ENV_ID, variant="cached-llm", cache_path=str(tmp_path / "nan.npz"))


# -- the environment on the bundled cache --------------------------------------------------------
CACHED_VARIANTS = [
    {},
    {"outcome": "linear-1d", "working_embedding": ["formality"]},
    {"outcome": "linear-3d-context", "n_actions": 15},
    pytest.param({"outcome": "mlp", "noise_level": 2, "working_embedding": "pca:5"}, marks=pytest.mark.slow),
    {"n_actions": None, "working_embedding": "full"},
]


@pytest.mark.parametrize("kwargs", CACHED_VARIANTS)
def test_cached_variant_passes_env_checkers(kwargs):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(gym.make(ENV_ID, variant="cached-llm", **kwargs).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(ENV_ID, variant="cached-llm", **kwargs).unwrapped)


def test_bundled_cache_default_environment():
    env = gym.make(ENV_ID, variant="cached-llm")
    obs, info = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(3)
    assert isinstance(info["treatment"], str) and len(info["treatment"]) > 20
    assert info["treatment_embedding"].shape == (3,) and env.action_space.n == 5
    s = env.unwrapped.scenario
    assert s.noise_levels[0] == pytest.approx(np.sqrt(3), rel=1e-3)
    assert s.noise_levels[-1] == pytest.approx(24.5712)


def test_cached_expected_rewards_are_exact_cell_averages():
    s = gym.make(ENV_ID, variant="cached-llm", reward_noise_sd=0.0).unwrapped.scenario
    rng = np.random.default_rng(0)
    n = 200_000
    _, _, y = s.draw(np.full(n, 2), np.full(n, 7), rng)
    cell = s._f[s._starts[7, 2]: s._starts[7, 2] + s._counts[7, 2]]
    assert s.expected_reward[7, 2] == pytest.approx(cell.mean())
    assert abs(y.mean() - cell.mean()) < 4 * y.std() / np.sqrt(n)


def test_prompt_subsets_spread_expected_rewards():
    s40 = gym.make(ENV_ID, variant="cached-llm", n_actions=None).unwrapped.scenario
    s5 = gym.make(ENV_ID, variant="cached-llm", n_actions=5).unwrapped.scenario
    means40 = s40.expected_reward.mean(0)
    means5 = s5.expected_reward.mean(0)
    assert means5.min() == pytest.approx(means40.min()) and means5.max() == pytest.approx(means40.max())
    assert len(set(s5.prompt_ids)) == 5


def test_cached_vector_env_and_simulation_access():
    venv = gym.make_vec(ENV_ID, num_envs=16, vectorization_mode="vector_entry_point", variant="cached-llm")
    obs, info = venv.reset(seed=0)
    obs, r, term, trunc, info = venv.step(venv.action_space.sample())
    assert info["treatment"].shape == (16,) and info["treatment_embedding"].shape == (16, 3)
    bank = venv.unwrapped.sample_treatments(1, 2, 100, rng=np.random.default_rng(0))
    cell = venv.unwrapped.scenario.cell_embeddings(1, 2)
    assert all(any(np.array_equal(z, c) for c in cell) for z in bank)


def test_misspecified_working_embedding_lowers_r2():
    right = gym.make(ENV_ID, variant="cached-llm", outcome="linear-1d").unwrapped.embedding_r2
    wrong = gym.make(ENV_ID, variant="cached-llm", outcome="linear-1d",
                     working_embedding=["humor"]).unwrapped.embedding_r2
    assert right > 0.99 and wrong < right


def test_bundled_cache_style_scores_separate_their_poles():
    """Better than chance on most dimensions, with the threshold justified by the null distribution.

    If the scores carried no style information, each dimension's AUC would be above or below 0.5
    with probability 1/2, independently: the number above 0.5 is Binomial(20, 1/2) and P(>= 15) is
    about 2%. So we require at least 15 of 20 dimensions above 0.5. With ~120 messages per pole the
    null sd of one AUC is sqrt((n1 + n2 + 1) / (12 n1 n2)) ~= 0.037, so the null sd of the mean of 20
    AUCs is ~0.008: we also require a mean AUC at least 0.5 + 3 x 0.008.
    """
    from gambit_gym.cache.embedder import pole_separation_auc
    from gambit_gym.scenarios.cached_llm import bundled_cache_path

    cache = load_cache(bundled_cache_path())
    auc = pole_separation_auc(cache.style_scores, cache.prompt_index, cache.prompts, cache.style_dimensions)
    print("\n" + "\n".join(f"{k:16s} {v:.3f}" for k, v in auc.items()))
    n1 = n2 = cache.n_texts / len(cache.prompts)
    null_sd_mean = np.sqrt((n1 + n2 + 1) / (12 * n1 * n2)) / np.sqrt(len(auc))
    assert sum(v > 0.5 for v in auc.values()) >= 15
    assert np.mean(list(auc.values())) >= 0.5 + 3 * null_sd_mean


def test_bundled_cache_is_complete_and_small():
    from gambit_gym.scenarios.cached_llm import bundled_cache_path

    path = bundled_cache_path()
    cache = load_cache(path)
    assert path.stat().st_size <= 20 * 2**20
    assert cache.cell_counts().shape == (12, 40) and cache.cell_counts().min() >= 10
    assert "gambit-gym cache build --generator smollm2" in cache.meta["created"]["command"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"outcome": "cubic"}, "outcome"), ({"n_actions": 41}, "n_actions"), ({"prompts": ["nope"]}, "prompts"),
     ({"working_embedding": ["nope"]}, "working_embedding"), ({"working_embedding": "pca:0"}, "working_embedding"),
     ({"noise_level": 7}, "noise_level"), ({"colour": 1}, "unknown option")],
)
def test_cached_variant_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gym.make(ENV_ID, variant="cached-llm", **kwargs)


def test_fogambitts_runs_on_cached_vector_env():
    from agents import run_bandit

    res = run_bandit(ENV_ID, {"fo": FoGAMBITTS, "po": PoGAMBITTS}, horizon=100, replications=8, seed=0,
                     env_kwargs={"variant": "cached-llm"}, progress=False)
    assert np.all(res.cumulative_regret["fo"] >= 0)


# -- domains: outcome presets, inline outcomes, calibration, any domain's cache ------------------
def test_an_inline_outcome_equal_to_a_preset_gives_the_same_environment():
    spec = load_domain("mhealth").outcomes["linear-3d-context"]
    inline = {"dimensions": list(spec.dimensions), "coefficients": list(spec.coefficients),
              "intercept": spec.intercept, "field_noise_sd": spec.field_noise_sd,
              "context_effects": {k: dict(v) for k, v in spec.context_effects.items()}}
    a = gym.make(ENV_ID, variant="cached-llm", outcome="linear-3d-context", n_actions=None).unwrapped.scenario
    b = gym.make(ENV_ID, variant="cached-llm", outcome=inline, n_actions=None).unwrapped.scenario
    assert np.array_equal(a.expected_reward, b.expected_reward) and np.array_equal(a.noise_levels, b.noise_levels)
    mlp = gym.make(ENV_ID, variant="cached-llm", outcome="mlp").unwrapped.scenario
    inline_mlp = {"type": "mlp", "dimensions": ["optimism", "severity", "formality"], "spread_like": "linear-3d",
                  "intercept": 82.83602, "field_noise_sd": 24.3797}
    assert np.array_equal(mlp.expected_reward,
                          gym.make(ENV_ID, variant="cached-llm", outcome=inline_mlp).unwrapped.scenario.expected_reward)


def test_outcome_errors_list_the_presets_and_the_dimensions():
    with pytest.raises(ValueError, match=r"unknown preset 'cubic'.*\['linear-1d', 'linear-3d', 'linear-3d-context', "
                                         r"'mlp'\].*'optimism', 'formality'"):
        gym.make(ENV_ID, variant="cached-llm", outcome="cubic")
    bad = {"dimensions": ["optimism", "nope"], "coefficients": [1.0, 2.0], "intercept": 0.0, "field_noise_sd": 1.0}
    with pytest.raises(ValueError, match=r"^outcome.dimensions: unknown style dimension\(s\) \['nope'\]; .*'humor'"):
        gym.make(ENV_ID, variant="cached-llm", outcome=bad)
    with pytest.raises(ValueError, match=r"^outcome.coefficients: expected 2 numbers"):
        gym.make(ENV_ID, variant="cached-llm", outcome={**bad, "dimensions": ["humor", "clarity"], "coefficients": [1]})
    with pytest.raises(ValueError, match=r"^outcome: unknown key\(s\) \['noise'\]"):
        gym.make(ENV_ID, variant="cached-llm", outcome={**bad, "dimensions": ["humor"], "noise": 1})


def test_paper_calibration_rescales_the_scores_and_uses_the_papers_noise_levels():
    paper = load_domain("mhealth").calibrations["paper"]
    default = gym.make(ENV_ID, variant="cached-llm", n_actions=None).unwrapped.scenario
    s = gym.make(ENV_ID, variant="cached-llm", n_actions=None, calibration="paper").unwrapped.scenario
    assert s.noise_levels.tolist() == [0.70978, 6.67513, 12.64049, 18.60584, 24.57119] == list(paper.noise_levels)
    assert s.noise_sd == 0.70978 and s.describe()["calibration"] == "paper"
    assert np.allclose(s.mean_embedding(), paper.style_sd * default.mean_embedding())
    coef = np.array([0.35232, -0.49944, -0.15796])
    assert np.allclose(s.expected_reward - 82.83602, paper.style_sd * (default.expected_reward - 82.83602))
    assert np.allclose(s.expected_reward, 82.83602 + s.mean_embedding() @ coef)
    assert s.treatment_scale == pytest.approx(paper.style_sd * np.sqrt(3), rel=1e-3)
    with pytest.raises(ValueError, match="field_noise_sd: calibration 'paper' fixes the noise levels"):
        gym.make(ENV_ID, variant="cached-llm", calibration="paper", field_noise_sd=3.0)
    with pytest.raises(ValueError, match=r"calibration: expected one of \['paper'\]"):
        gym.make(ENV_ID, variant="cached-llm", calibration="papers")


def test_a_cache_of_a_domain_without_contexts_is_an_environment_with_one_constant_feature(tmp_path):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    cache = handmade_cache(tmp_path / "handmade.npz")
    env = gym.make(ENV_ID, variant="cached-llm", cache_path=str(tmp_path / "handmade.npz"), n_actions=None)
    s = env.unwrapped.scenario
    assert env.observation_space.shape == (1,) and s.domain.name == "handmade" and s.outcome_spec.name == "lin"
    obs, info = env.reset(seed=0)
    assert obs.tolist() == [1.0] and info["context"] == {"context": "all"}
    scores = cache.style_scores.astype(np.float64)
    f = 10.0 + scores[:, 2] + 2.0 * scores[:, 0]  # the preset: 1.0 * c + 2.0 * a
    expected = [f[cache.prompt_index == p].mean() for p in range(5)]
    assert np.allclose(s.expected_reward[0], expected)
    assert s.embedding_dim == 2  # the working embedding defaults to the outcome's dimensions, c and a
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(ENV_ID, variant="cached-llm", cache_path=str(tmp_path / "handmade.npz")).unwrapped)


def test_the_domain_option_must_fit_the_cache_and_caches_without_a_record_are_mhealth(tmp_path):
    handmade_cache(tmp_path / "handmade.npz")
    with pytest.raises(ValueError, match=r"domain: 'mhealth' .* does not fit the cache .*prompts \['c\+'"):
        gym.make(ENV_ID, variant="cached-llm", cache_path=str(tmp_path / "handmade.npz"), domain="mhealth")
    assert gym.make(ENV_ID, variant="cached-llm").unwrapped.scenario.domain.name == "mhealth"  # no record: mHealth
    with pytest.raises(ValueError, match="does not fit"):
        gym.make(ENV_ID, variant="cached-llm", domain="study_nudges",
                 cache_path=str(load_domain("mhealth").cache))


def test_the_second_domain_ships_a_cache_that_runs_any_agent():
    from agents import run_bandit

    env = gym.make(ENV_ID, variant="cached-llm", domain="study_nudges", n_actions=None)
    s = env.unwrapped.scenario
    assert s.domain.name == "study_nudges" and s.outcome_spec.name == "minutes" and env.action_space.n == 6
    assert s.contexts.n_contexts == 2 and env.observation_space.shape == (2,)
    obs, info = env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert isinstance(info["treatment"], str) and info["regret"] >= 0
    res = run_bandit(ENV_ID, {"po": PoGAMBITTS, "fo": FoGAMBITTS}, horizon=50, replications=4, seed=0,
                     env_kwargs={"variant": "cached-llm", "domain": "study_nudges", "outcome": "minutes-deadline"},
                     progress=False)
    assert np.all(res.cumulative_regret["po"] >= 0) and res.cumulative_regret["fo"].shape == (4, 50)


def test_a_cache_replaced_at_the_same_path_has_another_fingerprint(tmp_path):
    from gambit_gym.scenarios.cached_llm import data_fingerprints, file_sha256, resolve_paths

    path = tmp_path / "c.npz"
    handmade_cache(path, seed=0)
    options = {"variant": "cached-llm", "cache_path": "c.npz"}
    resolved = resolve_paths(options, tmp_path)
    assert resolved["cache_path"] == str(path) and options["cache_path"] == "c.npz"
    first = data_fingerprints(resolved)
    assert first == {"cache_path": file_sha256(path)}  # the cache records its domain: no domain file is read
    handmade_cache(path, seed=1)
    assert data_fingerprints(resolved)["cache_path"] != first["cache_path"]
    bundled = data_fingerprints({"variant": "cached-llm"})
    assert bundled == {"cache_path": file_sha256(load_domain("mhealth").cache),
                       "domain": file_sha256(load_domain("mhealth").source)}
    assert resolve_paths({"domain": "study_nudges"}, tmp_path) == {"domain": "study_nudges"}
    assert resolve_paths({"domain": "mine.toml"}, tmp_path) == {"domain": str(tmp_path / "mine.toml")}
