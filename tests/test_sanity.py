"""The embedding sanity check (agents.sanity) and ``gambit-gym sanity``, on data whose answer is known."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import gambit_gym  # noqa: F401  (registers the environment)
from agents.cli import main
from agents.logged import LoggedBanditFeedback
from agents.sanity import embedding_sanity_check, load_logs


def _logged_from_env(n_rounds: int = 30, n_envs: int = 100, **env_kwargs) -> LoggedBanditFeedback:
    """Uniformly random prompts on a real vector env, as a logged dataset (the package's export format)."""
    venv = gym.make_vec("GeneratorMediated-v0", num_envs=n_envs, vectorization_mode="vector_entry_point",
                        **env_kwargs)
    obs, _ = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    K = int(venv.single_action_space.n)
    cols = {k: [] for k in ("context", "action", "reward", "expected_reward", "context_index", "treatment_embedding")}
    for _ in range(n_rounds):
        a = rng.integers(0, K, n_envs)
        expected = venv.unwrapped.scenario.expected_reward[venv.unwrapped.contexts.index(obs)]
        next_obs, r, _, _, info = venv.step(a)
        cols["context"].append(obs)
        cols["action"].append(a)
        cols["reward"].append(r)
        cols["expected_reward"].append(expected)
        cols["context_index"].append(info["context_index"])
        cols["treatment_embedding"].append(info["treatment_embedding"])
        obs = next_obs
    n = n_rounds * n_envs
    return LoggedBanditFeedback(
        context=np.concatenate(cols["context"]), action=np.concatenate(cols["action"]).astype(np.int64),
        reward=np.concatenate(cols["reward"]), pscore=np.full(n, 1.0 / K), pi_b=np.full((n, K), 1.0 / K),
        expected_reward=np.concatenate(cols["expected_reward"]),
        context_index=np.concatenate(cols["context_index"]).astype(np.int64),
        treatment_embedding=np.concatenate(cols["treatment_embedding"]),
        replication=np.repeat(np.arange(n_envs), n_rounds), round=np.tile(np.arange(1, n_rounds + 1), n_envs),
        n_actions=K)


def test_a_relevant_embedding_passes_and_its_dimension_is_found():
    rng = np.random.default_rng(1)
    n = 3000
    ctx, act = rng.integers(0, 12, n), rng.integers(0, 5, n)
    z = rng.normal(size=(n, 10)) + 0.5 * act[:, None]
    y = 80 + 1.0 * z[:, 2] + 0.3 * ctx + rng.normal(scale=5.0, size=n)
    report = embedding_sanity_check(z, y, ctx, act)
    assert report.helps and report.misses_prompt_effect is False
    assert report.r2_embedding > report.r2_context and report.z_gain > 2
    assert int(np.argmax(report.dimension_r2_loss)) == 2
    assert "likely to help" in report.verdict


def test_an_unrelated_embedding_is_flagged_and_the_prompts_named():
    rng = np.random.default_rng(2)
    n = 3000
    ctx, act = rng.integers(0, 12, n), rng.integers(0, 5, n)
    z = rng.normal(size=(n, 10))  # carries nothing of the prompt or the reward
    y = 80 + 2.0 * (act == 3) + rng.normal(scale=5.0, size=n)
    report = embedding_sanity_check(z, y, ctx, act)
    assert not report.helps
    assert report.verdict.startswith("this embedding is unlikely to help GAMBITTS")
    assert "prompts do predict it" in report.verdict
    assert "z-statistic" in report.threshold


def test_the_cached_llm_env_true_vs_unrelated_view(tmp_path):
    """Real messages: the outcome's own style scores pass; a view that misses the reward is caught."""
    good = _logged_from_env(variant="cached-llm")
    path = good.save(tmp_path / "good.npz")
    report = embedding_sanity_check(**load_logs(path))
    assert report.helps and report.misses_prompt_effect is False
    # a view of a coordinate the reward ignores: it still tracks the prompts (its means differ by prompt),
    # so it predicts a little, but the prompts predict far more once it is known
    bad = _logged_from_env(variant="misspecified", latent_dim=3, view="subset", observed_dims=[2],
                           coefficients=[1.0, 1.0, 0.0])
    report = embedding_sanity_check(bad.treatment_embedding, bad.reward, bad.context_index, bad.action)
    assert report.misses_prompt_effect and "hedged" in report.verdict
    # the same coordinate with the same mean under every prompt: pure generator noise
    means = np.random.default_rng(0).normal(size=(5, 3))
    means[:, 2] = 0.0
    noise = _logged_from_env(variant="misspecified", latent_dim=3, view="subset", observed_dims=[2],
                             coefficients=[1.0, 1.0, 0.0], treatment_means=means)
    report = embedding_sanity_check(noise.treatment_embedding, noise.reward, noise.context_index, noise.action)
    assert not report.helps and "unlikely to help GAMBITTS" in report.verdict


def test_csv_and_cli(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 600
    z = rng.normal(size=(n, 3))
    y = 10 + 3 * z[:, 0] + rng.normal(size=n)
    path = tmp_path / "logs.csv"
    lines = ["reward,z0,z1,z2,context_index"] + [f"{y[i]},{z[i, 0]},{z[i, 1]},{z[i, 2]},{i % 3}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    assert main(["sanity", str(path), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "verdict: this embedding predicts the reward" in out and "z0" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("reward,x\n1,2\n")
    assert main(["sanity", str(bad)]) == 2
    assert "embedding columns z0, z1" in capsys.readouterr().err
    assert main(["sanity", str(tmp_path / "missing.npz")]) == 2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"embedding": np.zeros(10), "reward": np.zeros(10)}, "embedding: expected an"),
    ({"embedding": np.zeros((10, 2)), "reward": np.zeros(9)}, "reward: expected shape"),
    ({"embedding": np.zeros((4, 2)), "reward": np.arange(4.0)}, "at least 2 \\* n_folds"),
    ({"embedding": np.full((20, 2), np.nan), "reward": np.arange(20.0)}, "embedding: holds NaN"),
    ({"embedding": np.zeros((20, 2)), "reward": np.ones(20)}, "all rewards are equal"),
    ({"embedding": np.zeros((20, 2)), "reward": np.arange(20.0), "context_index": np.full(20, -1)},
     "context_index: expected values >= 0"),
    ({"embedding": np.zeros((20, 2)), "reward": np.arange(20.0), "n_folds": 1}, "n_folds"),
    ({"embedding": np.zeros((20, 2)), "reward": np.arange(20.0), "z_threshold": 0}, "z_threshold"),
])
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        embedding_sanity_check(**kwargs)
