"""The cached-LLM environment: the bundled cache, exact oracle, prompt subsets, bad files and arguments."""

import json

import gymnasium as gym
import numpy as np
import pytest

from agents import FoGAMBITTS, PoGAMBITTS
from gambit_gym import ENV_ID
from gambit_gym.cache import CacheError, load_cache


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
    auc = pole_separation_auc(cache.style_scores, cache.prompt_index, cache.prompts)
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
