"""Logged bandit feedback: propensities, datasets and their files, exact policy values, off-policy estimators."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents import FoGAMBITTS, LinearTS, PoGAMBITTS, StandardTS, run_bandit
from agents.datafiles import DataFileError
from agents.logged import FeedbackLogger, LoggedBanditFeedback, Round
from agents.offpolicy import (
    MissingPropensityError,
    cell_means,
    direct_method,
    doubly_robust,
    expected_reward_table,
    ipw,
    log_bandit_feedback,
    make_env,
    policy_table,
    policy_value,
    snipw,
)
from gambit_gym import ENV_ID
from tests._agents import ALL_AGENTS, TINY_ENSEMBLES, build, needs_ensemble

ROOT = Path(__file__).resolve().parents[1]


class UniformLogger:
    """Plays uniformly at random and reports its exact action probabilities (a custom agent, no base class)."""

    def __init__(self, n_actions, n_envs, seed):
        self.rng, self.shape = np.random.default_rng(seed), (n_envs, n_actions)

    @classmethod
    def from_env(cls, env, seed=None):
        return cls(env.unwrapped.single_action_space.n, env.unwrapped.num_envs, seed)

    def act(self, obs):
        return self.rng.integers(self.shape[1], size=self.shape[0])

    def action_probabilities(self, obs):
        return np.full(self.shape, 1.0 / self.shape[1])

    def update(self, obs, action, reward, info):
        pass

    def reset(self):
        pass


class Silent(UniformLogger):
    """The same policy, but it does not say so."""

    action_probabilities = None


@pytest.fixture(scope="module")
def po_data():
    return log_bandit_feedback(ENV_ID, (PoGAMBITTS, {"n_offline": 30}), horizon=25, replications=4, seed=2,
                               n_draws=100)


# -- propensities of the Thompson agents ---------------------------------------------------------
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "LinTS-interactions" else n
                                  for n in ALL_AGENTS])  # 48 coefficients: its draws cost the most
def test_action_probabilities_are_the_distribution_the_agent_acts_from(name):
    """A learned state copied into 4000 rows acts once per row: the frequencies match the Monte-Carlo
    probabilities of that state (both within their sampling error)."""
    spec = ALL_AGENTS[name]
    small = gym.make_vec(ENV_ID, num_envs=1, vectorization_mode="vector_entry_point")
    agent = build(spec, small, 0)
    obs, _ = small.reset(seed=5)
    for _ in range(12):
        a = agent.act(obs)
        nobs, r, _, _, info = small.step(a)
        agent.update(obs, a, r, info)
        obs = nobs
    M, n_draws = 4000, 3000
    p = agent.action_probabilities(obs, n_draws=n_draws)[0]
    big = gym.make_vec(ENV_ID, num_envs=M, vectorization_mode="vector_entry_point")
    if isinstance(agent, PoGAMBITTS):  # no bank of draws for 4000 rows: the learned one is state anyway
        spec = (PoGAMBITTS, {**spec[1], "treatment_means": agent.treatment_means[0]})
    copies = build(spec, big, 1)
    # the learned state in every row; the copies' own random stream and environment signature
    state = {**agent.state_dict(), **{k: v for k, v in copies.state_dict().items() if k in ("env", "rng")}}
    state["state"] = {k: np.repeat(v, M, axis=0) if isinstance(v, np.ndarray) else v
                      for k, v in state["state"].items()}
    copies.load_state_dict(state)
    freq = np.bincount(copies.act(np.repeat(obs, M, axis=0)), minlength=5) / M
    sd = np.sqrt(p * (1 - p) * (1 / M + 1 / n_draws)) + 1e-12
    assert np.all(np.abs(freq - p) <= 4.5 * sd + 1e-3), (name, p.round(3), freq.round(3))
    assert np.isclose(p.sum(), 1.0) and p.max() < 1.0  # after 12 rounds it still explores


def test_action_probabilities_leave_the_acting_stream_and_the_state_alone():
    venv = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    for spec in ALL_AGENTS.values():
        agent = build(spec, venv, 4)
        obs, _ = venv.reset(seed=0)
        before = agent.state_dict()
        agent.action_probabilities(obs, n_draws=20)
        after = agent.state_dict()
        assert after["rng"] == before["rng"]
        assert all(np.array_equal(after["state"][k], before["state"][k]) for k in before["state"])


def test_action_probabilities_in_closed_form_cases():
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=0)
    # at the prior every arm of standard TS looks the same: 1/K each
    p = StandardTS.from_env(env, seed=0).action_probabilities(obs, n_draws=20000)
    assert p.shape == (5,) and np.allclose(p, 0.2, atol=4.5 * np.sqrt(0.16 / 20000))
    # identical treatments for every prompt: poGAMBITTS cannot tell them apart, whatever theta is
    C = env.unwrapped.contexts.n_contexts
    same = PoGAMBITTS.from_env(env, seed=0, treatment_means=np.ones((C, 5, 3)))
    assert np.array_equal(same.action_probabilities(obs, n_draws=50), [1.0, 0, 0, 0, 0])  # argmax ties: first
    with pytest.raises(ValueError, match="n_draws"):
        same.action_probabilities(obs, n_draws=0)


@pytest.mark.slow
@needs_ensemble
def test_the_ensemble_reports_no_propensities_and_is_logged_with_nan():
    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point")
    agent = build(TINY_ENSEMBLES["ensemble-po"], venv, 0)
    assert not agent.reports_propensities
    with pytest.raises(NotImplementedError, match="reports no action probabilities"):
        agent.action_probabilities(venv.reset(seed=0)[0])
    data = log_bandit_feedback(ENV_ID, TINY_ENSEMBLES["ensemble-po"], horizon=12, replications=2, n_draws=5)
    assert np.isnan(data.pscore).all() and data.meta["propensity"] == "unknown"


# -- logging ---------------------------------------------------------------------------------------
def test_logging_changes_no_action_or_regret():
    kwargs = dict(horizon=25, replications=3, seed=3, env_kwargs={"n_actions": 4}, progress=False)
    plain = run_bandit(ENV_ID, ALL_AGENTS, **kwargs)
    logger = FeedbackLogger(n_draws=10)
    logged = run_bandit(ENV_ID, ALL_AGENTS, callback=logger, **kwargs)
    assert logger.agents == list(ALL_AGENTS)
    for name in ALL_AGENTS:
        assert np.array_equal(plain.actions[name], logged.actions[name])
        assert np.array_equal(plain.cumulative_regret[name], logged.cumulative_regret[name])
        data = logger.dataset(name)
        assert np.array_equal(data.action, logged.actions[name].reshape(-1))  # rows: replication, then round
        assert np.array_equal(data.reward, logged.rewards[name].reshape(-1))


def test_logged_rounds_hold_contexts_oracle_rewards_and_propensities(po_data):
    data, env = po_data, gym.make(ENV_ID)
    assert data.n_rounds == 100 and data.has_pscore and data.meta["propensity"] == "monte-carlo"
    assert np.array_equal(data.replication, np.repeat(np.arange(4), 25))
    assert np.array_equal(data.round, np.tile(np.arange(1, 26), 4))
    assert np.array_equal(data.context, env.unwrapped.contexts.features[data.context_index])
    assert np.array_equal(data.expected_reward, env.unwrapped.expected_rewards(data.context_index))
    assert data.treatment_embedding.shape == (100, 3)
    assert np.allclose(data.pi_b.sum(axis=1), 1.0)
    assert np.array_equal(data.pscore, data.pi_b[np.arange(100), data.action])
    assert data.pscore.min() >= 1 / 101  # the draw that chose the action counts as one of n_draws + 1


def test_obp_layout(po_data):
    d = po_data.as_obp_dict()
    assert {"n_rounds", "n_actions", "context", "action_context", "action", "position", "reward",
            "expected_reward", "pi_b", "pscore"} <= set(d)
    assert d["n_rounds"] == 100 and d["n_actions"] == 5 and d["position"] is None
    assert d["context"].shape == (100, 7) and d["action_context"].shape == (5, 5)
    assert d["pi_b"].shape == (100, 5, 1) and d["expected_reward"].shape == (100, 5)
    assert np.array_equal(d["pscore"], d["pi_b"][np.arange(100), d["action"], 0])


def test_agents_without_propensities_are_logged_with_nan_and_estimators_say_why():
    data = log_bandit_feedback(ENV_ID, Silent, horizon=10, replications=3, seed=0)
    assert np.isnan(data.pscore).all() and np.isnan(data.pi_b).all() and not data.has_pscore
    target = np.full((12, 5), 0.2)
    for estimator in (ipw, snipw, doubly_robust):
        with pytest.raises(MissingPropensityError, match="propensities .* 'logging' .*Silent.*direct_method"):
            estimator(data, target)
    assert np.isfinite(direct_method(data, target).value)


def test_logger_needs_an_environment_with_an_oracle():
    """In a loop of your own on another environment, the logger says what it needs."""
    venv = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    agent = StandardTS.from_env(venv, seed=0)
    obs, _ = venv.reset(seed=0)
    actions = agent.act(obs)
    _, rewards, _, _, info = venv.step(actions)
    with pytest.raises(TypeError, match="expected rewards"):
        FeedbackLogger()(Round("s", agent, 0, np.arange(2), obs, actions, rewards, info, venv))
    with pytest.raises(KeyError, match="info\\['regret'\\]"):
        run_bandit(lambda num_envs, horizon: gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync"),
                   {"s": StandardTS}, horizon=3, replications=2, progress=False)


# -- files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_save_and_load_round_trip(po_data, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    back = LoggedBanditFeedback.load(po_data.save(tmp_path / f"logged{suffix}"))
    for name in ("context", "action", "reward", "pscore", "pi_b", "expected_reward", "context_index",
                 "treatment_embedding", "replication", "round"):
        assert np.array_equal(getattr(back, name), getattr(po_data, name)), name
    assert back.n_actions == 5 and back.meta == po_data.meta
    assert back.meta["run"]["seed"] == 2 and back.meta["n_draws"] == 100


def test_nan_propensities_survive_a_round_trip(tmp_path):
    data = log_bandit_feedback(ENV_ID, Silent, horizon=4, replications=2)
    back = LoggedBanditFeedback.load(data.save(tmp_path / "nan.npz"))
    assert np.isnan(back.pscore).all()


def test_bad_files_give_clear_errors(po_data, tmp_path):
    raw = po_data.save(tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[:1000])
    with pytest.raises(DataFileError, match="not a readable"):
        LoggedBanditFeedback.load(tmp_path / "cut.npz")
    arrays = {k: getattr(po_data, k) for k in ("context", "action", "reward", "pscore", "pi_b", "expected_reward",
                                                "context_index", "treatment_embedding", "replication", "round")}
    from agents.datafiles import write_npz
    from agents.logged import LOGGED_FORMAT, LOGGED_VERSION

    header = {"format": LOGGED_FORMAT, "version": LOGGED_VERSION, "n_actions": 5, "meta": {}}
    write_npz(tmp_path / "short.npz", header, {**arrays, "reward": arrays["reward"][:-1]})
    with pytest.raises(DataFileError, match="reward: expected 100 rows"):
        LoggedBanditFeedback.load(tmp_path / "short.npz")
    write_npz(tmp_path / "pscore.npz", header, {**arrays, "pscore": arrays["pscore"] * 0.5})
    with pytest.raises(DataFileError, match="pscore: must be > 0 and equal pi_b"):
        LoggedBanditFeedback.load(tmp_path / "pscore.npz")
    write_npz(tmp_path / "missing.npz", header, {k: v for k, v in arrays.items() if k != "round"})
    with pytest.raises(DataFileError, match=r"missing \['round'\]"):
        LoggedBanditFeedback.load(tmp_path / "missing.npz")
    if pytest.importorskip("pyarrow"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "foreign.parquet")
        with pytest.raises(DataFileError, match="no gambit_gym metadata"):
            LoggedBanditFeedback.load(tmp_path / "foreign.parquet")
        (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
        with pytest.raises(DataFileError, match="not a readable Parquet"):
            LoggedBanditFeedback.load(tmp_path / "junk.parquet")


def test_to_pandas_has_one_row_per_round(po_data):
    pytest.importorskip("pandas")
    df = po_data.to_pandas()
    assert len(df) == 100 and {"pscore", "context_6", "pi_b_4", "treatment_embedding_2"} <= set(df.columns)


# -- exact values and estimators -------------------------------------------------------------------
def test_policy_value_is_exact():
    env = gym.make(ENV_ID, n_actions=4)
    mu = expected_reward_table(env)
    assert mu.shape == (12, 4) and np.array_equal(mu[3], env.unwrapped.expected_rewards(3))
    assert policy_value(env, np.eye(4)[mu.argmax(axis=1)]) == pytest.approx(mu.max(axis=1).mean())
    assert policy_value(env, np.full((12, 4), 0.25)) == pytest.approx(mu.mean())
    assert policy_value(env, lambda x: np.eye(4)[x % 4]) == pytest.approx(np.mean([mu[x, x % 4] for x in range(12)]))
    with pytest.raises(ValueError, match="sum to 1"):
        policy_value(env, np.full((12, 4), 0.3))
    with pytest.raises(ValueError, match=r"shape \(12, 4\)"):
        policy_table(np.full((3, 4), 0.25), 12, 4)


def test_ipw_is_unbiased_with_exact_propensities():
    """A uniform logger reports its exact propensities; IPW of the oracle policy lands within 3 SE of its
    exact value (5,000 rounds)."""
    data = log_bandit_feedback(ENV_ID, UniformLogger, horizon=50, replications=100, seed=0)
    assert data.meta["propensity"] == "reported" and np.all(data.pscore == 0.2)
    env = make_env(ENV_ID)
    mu = expected_reward_table(env)
    target = np.eye(5)[mu.argmax(axis=1)]
    est, exact = ipw(data, target), policy_value(env, target)
    assert abs(est.value - exact) < 3 * est.se, (est, exact)
    assert est.se < 0.1 * exact and abs(est.mean_weight - 1) < 0.1


def test_ipw_is_unbiased_with_monte_carlo_thompson_propensities():
    """Standard TS, first two rounds (every arm still has probability >= ~0.15): with Monte-Carlo
    propensities IPW of the uniform policy is within 3 SE of the exact value, and the mean weight of 1."""
    env = make_env(ENV_ID)
    data = log_bandit_feedback(ENV_ID, StandardTS, horizon=2, replications=3000, seed=0, n_draws=300)
    uniform = np.full((12, 5), 0.2)
    est, exact = ipw(data, uniform), policy_value(env, uniform)
    assert abs(est.value - exact) < 3 * est.se, (est, exact)
    w = 0.2 / data.pscore
    assert abs(w.mean() - 1) < 3 * w.std() / np.sqrt(len(w))


def test_estimators_agree_with_the_exact_value_on_a_well_covered_target():
    env = make_env(ENV_ID)
    data = log_bandit_feedback(ENV_ID, UniformLogger, horizon=40, replications=50, seed=1)
    mu = expected_reward_table(env)
    target = 0.5 * np.eye(5)[mu.argmax(axis=1)] + 0.1  # half the oracle, half uniform
    exact = policy_value(env, target)
    for estimator in (ipw, snipw, direct_method, doubly_robust):
        est = estimator(data, target)
        assert abs(est.value - exact) < 3 * est.se, (est, exact)
    # the direct method with the exact reward table has only the contexts' sampling error left
    oracle = direct_method(data, target, reward_model=mu)
    assert abs(oracle.value - exact) < 3 * oracle.se
    q = cell_means(data, n_contexts=12)
    assert q.shape == (12, 5) and np.abs(q - mu).max() < 5


def test_estimators_reject_bad_input(po_data):
    with pytest.raises(TypeError, match="LoggedBanditFeedback"):
        ipw(po_data.as_obp_dict(), np.full((12, 5), 0.2))
    with pytest.raises(ValueError, match="covers 2 contexts"):
        ipw(po_data, np.full((2, 5), 0.2))
    with pytest.raises(ValueError, match="reward_model"):
        direct_method(po_data, np.full((12, 5), 0.2), reward_model=np.zeros((12, 4)))


@pytest.mark.slow
def test_fogambitts_and_lints_log_too():
    for spec in (FoGAMBITTS, LinearTS):
        data = log_bandit_feedback(ENV_ID, spec, horizon=5, replications=3, n_draws=20)
        assert data.has_pscore and data.n_rounds == 15


@pytest.mark.slow
def test_sb3_runs_are_logged_with_nan_propensities():
    pytest.importorskip("stable_baselines3")
    data = log_bandit_feedback(ENV_ID, "sb3:A2C", horizon=15, replications=2, seed=0)
    assert data.n_rounds == 30 and np.isnan(data.pscore).all() and data.meta["agent_type"].endswith("A2C")
    assert np.array_equal(data.round, np.tile(np.arange(1, 16), 2))
    with pytest.raises(MissingPropensityError, match="Stable-Baselines3"):
        ipw(data, np.full((12, 5), 0.2))


def test_the_example_prints_the_exact_value_and_both_estimates(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "off_policy_evaluation.py"), "--horizon", "15",
                          "--replications", "4", "--draws", "30", "--out", str(tmp_path / "logged.npz")],
                         capture_output=True, text=True, check=True).stdout
    for line in ("exact value", "inverse propensity weighting", "direct method"):
        assert line in out
    assert LoggedBanditFeedback.load(tmp_path / "logged.npz").n_rounds == 60
