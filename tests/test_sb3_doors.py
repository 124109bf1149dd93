"""Stable-Baselines3 through its own front doors: by id, make_vec_env, SubprocVecEnv, evaluate_policy, and
SB3VecEnv over the native vector environment; the bandit presets."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from gambit_gym import ENV_ID
from gambit_gym.sb3 import BANDIT_PRESETS
from gambit_gym.wrappers import RecordRegret, StandardizeReward

sb3 = pytest.importorskip("stable_baselines3")
torch = pytest.importorskip("torch")
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor  # noqa: E402

from gambit_gym.sb3 import SB3VecEnv  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # repeatable, and as fast for these small networks
    yield
    torch.set_num_threads(threads)


def native(n=4, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)


def test_sb3_builds_the_env_from_its_id_with_rgb_array_rendering():
    model = sb3.PPO("MlpPolicy", ENV_ID, seed=0, device="cpu", **BANDIT_PRESETS["PPO"])
    assert isinstance(model.env, DummyVecEnv) and model.env.render_mode == "rgb_array"
    model.learn(64)
    frame = model.env.render()
    assert frame.dtype == np.uint8 and frame.shape == (96, 5 * 16 + 8, 3)


def test_make_vec_env_by_id_with_four_envs_learns_and_evaluates():
    venv = make_vec_env(ENV_ID, n_envs=4, seed=0, env_kwargs={"max_episode_steps": 40},
                        wrapper_class=StandardizeReward)
    model = sb3.A2C("MlpPolicy", venv, seed=0, device="cpu", **BANDIT_PRESETS["A2C"]).learn(200)
    eval_env = make_vec_env(ENV_ID, n_envs=2, seed=1, env_kwargs={"max_episode_steps": 40})
    mean, sd = evaluate_policy(model, eval_env, n_eval_episodes=4)
    # Monitor sees the environment's own rewards (~80 a round), not the learner's standardised ones
    assert 40 * 70 < mean < 40 * 90 and sd >= 0


@pytest.mark.slow  # starts two worker processes that import torch: ~10 s
def test_subproc_vec_env_by_id():
    # Gymnasium's "module:id" form: each worker imports gambit_gym (which registers the id) before making the
    # env. Plain ENV_ID works too when the main script imports gambit_gym (SB3's workers re-import it); under
    # pytest the main module is pytest's.
    venv = make_vec_env(f"gambit_gym:{ENV_ID}", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                        env_kwargs={"max_episode_steps": 30})
    try:
        model = sb3.PPO("MlpPolicy", venv, seed=0, device="cpu", **BANDIT_PRESETS["PPO"]).learn(128)
        mean, _ = evaluate_policy(model, venv, n_eval_episodes=2)
        assert 30 * 70 < mean < 30 * 90
        assert venv.get_attr("max_episode_steps") == [None, None]  # the TimeLimit wrapper holds the length
        assert all(mu.shape == (5,) for mu in venv.env_method("expected_rewards", 3))
    finally:
        venv.close()


def test_sb3_vec_env_gives_exactly_the_dummy_vec_env_run_with_per_env_seeding():
    """PPO on SB3VecEnv(native, per-env seeding) and on make_vec_env (4 single envs): the same model, bit for bit."""
    steps, seed = 4 * 32 * 3, 3  # three rollouts, across a truncation at 50 rounds
    ours = SB3VecEnv(native(max_episode_steps=50, seeding="per-env"), standardize_reward=True)
    model_ours = sb3.PPO("MlpPolicy", ours, seed=seed, device="cpu", **BANDIT_PRESETS["PPO"]).learn(steps)
    theirs = make_vec_env(ENV_ID, n_envs=4, env_kwargs={"max_episode_steps": 50}, wrapper_class=StandardizeReward)
    model_theirs = sb3.PPO("MlpPolicy", theirs, seed=seed, device="cpu", **BANDIT_PRESETS["PPO"]).learn(steps)
    for a, b in zip(model_ours.policy.parameters(), model_theirs.policy.parameters()):
        assert torch.equal(a, b)
    assert np.array_equal(model_ours._last_obs, model_theirs._last_obs)


def test_sb3_vec_env_follows_sb3s_vec_env_api():
    env = SB3VecEnv(native(n=3, max_episode_steps=2, render_mode="rgb_array"))
    assert env.num_envs == 3 and env.render_mode == "rgb_array"
    assert env.seed(5) == [5, 6, 7]
    obs = env.reset()
    assert obs.shape == (3, 7) and obs.dtype == np.float32 and set(env.reset_infos[0]) == {"context", "context_index"}
    obs, rewards, dones, infos = env.step(np.array([0, 1, 2]))
    assert rewards.dtype == np.float32 and not dones.any() and len(infos) == 3
    assert infos[1]["regret"] >= 0 and infos[1]["treatment_embedding"].shape == (3,)
    assert infos[1]["TimeLimit.truncated"] is False and isinstance(infos[0]["context"]["location"], str)
    last_obs, _, dones, infos = env.step(np.array([0, 1, 2]))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert all(info["terminal_observation"].shape == (7,) for info in infos)  # the round-2 context, kept
    assert env.get_attr("max_episode_steps") == [2, 2, 2] and env.get_attr("embedding_dim", indices=[1]) == [3]
    assert [mu.shape for mu in env.env_method("expected_rewards", 4, indices=[0, 2])] == [(5,), (5,)]
    env.set_attr("max_episode_steps", 3)
    assert env.get_attr("max_episode_steps") == [3, 3, 3]
    with pytest.raises(ValueError, match="share"):
        env.set_attr("max_episode_steps", 4, indices=[0])
    assert env.env_is_wrapped(gym.Wrapper) == [False, False, False]
    assert env.render().shape == (2 * 96, 2 * 88, 3)  # SB3 tiles the frames
    with pytest.raises(ValueError, match="indices"):
        env.get_attr("max_episode_steps", indices=[3])
    with pytest.raises(TypeError, match="venv"):
        SB3VecEnv(gym.make(ENV_ID))
    with pytest.raises(TypeError, match="standardize_reward"):
        SB3VecEnv(native(), standardize_reward="yes")
    env.close()


def test_sb3_vec_env_under_vec_monitor_and_evaluate_policy():
    env = VecMonitor(SB3VecEnv(native(n=8, max_episode_steps=25)))
    model = sb3.DQN("MlpPolicy", env, seed=0, device="cpu", **BANDIT_PRESETS["DQN"]).learn(200)
    mean, _ = evaluate_policy(model, env, n_eval_episodes=8)
    assert 25 * 70 < mean < 25 * 90


def test_bandit_presets_are_run_sb3s_settings_with_the_same_values():
    from agents.sb3 import SB3_ALGORITHMS, SB3_SETTINGS
    from agents.sb3 import StandardizeReward as ReExported

    assert SB3_SETTINGS is BANDIT_PRESETS and SB3_ALGORITHMS == ("PPO", "A2C", "DQN")
    assert ReExported is StandardizeReward
    assert BANDIT_PRESETS == {  # the values run_sb3's published numbers were made with
        "PPO": {"gamma": 0.0, "gae_lambda": 1.0, "n_steps": 32, "batch_size": 32, "n_epochs": 4,
                "learning_rate": 1e-3},
        "A2C": {"gamma": 0.0, "gae_lambda": 1.0, "n_steps": 5, "learning_rate": 1e-3},
        "DQN": {"gamma": 0.0, "learning_starts": 50, "buffer_size": 10_000, "batch_size": 32, "train_freq": 1,
                "target_update_interval": 50, "exploration_fraction": 0.2, "exploration_final_eps": 0.02,
                "learning_rate": 1e-3},
    }
    for algorithm, settings in BANDIT_PRESETS.items():  # every preset is a keyword its algorithm takes
        getattr(sb3, algorithm)("MlpPolicy", ENV_ID, device="cpu", **settings)


def regret_of(model_cls, settings, wrap, seed, horizon=1000):
    venv = make_vec_env(ENV_ID, n_envs=1, wrapper_class=wrap)
    model_cls("MlpPolicy", venv, seed=seed, device="cpu", **settings).learn(horizon)
    recorder = venv.envs[0]
    while not isinstance(recorder, RecordRegret):
        recorder = recorder.env
    return recorder.episodes[0][:horizon].sum()


@pytest.mark.slow  # 6 PPO runs of 1000 rounds: ~20 s
def test_the_presets_with_standardised_rewards_learn_where_the_defaults_do_not():
    seeds = range(3)
    tuned = [regret_of(sb3.PPO, BANDIT_PRESETS["PPO"], lambda e: StandardizeReward(RecordRegret(e)), s)
             for s in seeds]
    defaults = [regret_of(sb3.PPO, {}, RecordRegret, s) for s in seeds]
    # the uniform policy's pseudo-regret over 1000 rounds on this instance, exactly
    mu = gym.make(ENV_ID).unwrapped.scenario.expected_reward
    uniform = 1000 * float(np.mean(mu.max(axis=1) - mu.mean(axis=1)))
    assert abs(np.mean(defaults) - uniform) < 0.05 * uniform  # SB3's defaults stay at the random policy
    assert np.mean(tuned) < 0.8 * uniform


def test_presets_import_without_sb3_and_the_adapter_names_the_extra():
    code = ("import sys; sys.modules['stable_baselines3'] = None\n"  # as if SB3 were not installed
            "from gambit_gym.sb3 import BANDIT_PRESETS\n"
            "try:\n    from gambit_gym.sb3 import SB3VecEnv\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "gambit-gym[sb3]"' in out
