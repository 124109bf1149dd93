"""EnsembleGAMBITTS: batched members, hand-written training, determinism, bad input (save/restore:
test_agent_state.py)."""

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agents import EnsembleGAMBITTS, IncompatibleEnvError, run_bandit  # noqa: E402
from gambit_gym import ENV_ID, GeneratorMediatedVectorEnv  # noqa: E402
from tests._agents import play  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("simulation", [True, False])
def test_seeded_runs_repeat_exactly_on_cpu(simulation):
    runs = [play(EnsembleGAMBITTS.from_env(GeneratorMediatedVectorEnv(num_envs=3), seed=4, n_members=5,
                                           warmup=20, simulation=simulation),
                 GeneratorMediatedVectorEnv(num_envs=3), 0, 60) for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])


def test_members_train_in_one_batched_pass_and_learn_the_reward():
    """After training, the ensemble mean ranks the prompts' expected rewards correctly in most contexts."""
    venv = GeneratorMediatedVectorEnv(num_envs=4, context_shift=0.0, effect_size=2.0)
    agent = EnsembleGAMBITTS.from_env(venv, seed=0, n_members=8, warmup=50)
    assert agent.weights["w1"].shape == (4, 8, 3 + 7, 64)  # (replications, members, inputs, hidden)
    play(agent, venv, 0, 600)
    ctx = np.zeros(4, dtype=int)
    x = venv.contexts.features[ctx].astype(float)
    z = agent._treatment_draws(ctx)
    R, K, n, _ = z.shape
    inputs = torch.from_numpy(agent._inputs(z, x).reshape(R, K * n, -1).astype(np.float32))
    with torch.no_grad():
        out = agent._forward(inputs[:, None].expand(R, 8, K * n, inputs.shape[-1])).reshape(R, 8, K, n)
    pred = out.mean(dim=(1, 3)).numpy()
    truth = venv.scenario.expected_reward[0]
    assert (pred.argmax(axis=1) == truth.argmax()).mean() >= 0.75


def test_needs_simulation_access_for_po_form():
    env = gym.make(ENV_ID)
    with pytest.raises(IncompatibleEnvError, match="simulation access"):
        EnsembleGAMBITTS(n_actions=5, obs_dim=7, contexts=env.unwrapped.contexts, embedding_dim=3, simulation=True)
    with pytest.raises(ValueError, match="n_members"):
        EnsembleGAMBITTS.from_env(env, n_members=0)


def test_runs_through_run_bandit_with_regret_recorded():
    res = run_bandit(ENV_ID, {"ensemble": (EnsembleGAMBITTS, {"n_members": 3, "warmup": 20})}, horizon=60,
                     replications=3, seed=0, progress=False)
    assert res.cumulative_regret["ensemble"].shape == (3, 60)


@pytest.mark.slow
def test_robust_where_the_papers_ensemble_was_not():
    """Bundled cached-LLM env, lowest noise, T = 1000, 50 replications (benchmarks/ensemble_robustness.py).

    MLP outcome: lower regret than standard TS. 3-D linear outcome: within 5x of poGAMBITTS (the
    100-round uniform warm-up alone costs a good part of that)."""
    from benchmarks.ensemble_robustness import run_case

    mlp = run_case("mlp", 50).summary()
    lin = run_case("linear-3d", 50).summary()
    for name, s in (("mlp", mlp), ("linear-3d", lin)):
        print(f"\n{name}: " + ", ".join(f"{a} {v['mean']:.1f} +- {v['se']:.1f}" for a, v in s.items()))
    assert mlp["EnsembleGAMBITTS"]["mean"] < mlp["StdTS"]["mean"]
    assert lin["EnsembleGAMBITTS"]["mean"] <= 5 * lin["poGAMBITTS"]["mean"]


def test_hand_written_gradients_equal_autograd():
    """The hand-written backward pass (chunked over nets) equals torch.autograd on the same loss."""
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    agent = EnsembleGAMBITTS.from_env(venv, seed=1, n_members=4, weight_decay=1e-3)
    agent._chunk_floats = 5 * 64 * 7  # several chunks, the last one partial
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, agent.input_dim, generator=g)
    target = torch.randn(3, 4, 5, generator=g)
    grads = agent._gradients(x, target)
    leaves = {k: v.clone().requires_grad_(True) for k, v in agent.weights.items()}
    h = torch.relu(torch.einsum("rmbd,rmdh->rmbh", x, leaves["w1"]) + leaves["b1"][:, :, None])
    pred = torch.einsum("rmbh,rmh->rmb", h, leaves["w2"]) + leaves["b2"][:, :, None]
    loss = ((pred - target) ** 2).mean(dim=2).sum() + 1e-3 * ((leaves["w1"] ** 2).sum() + (leaves["w2"] ** 2).sum())
    expected = torch.autograd.grad(loss, list(leaves.values()))
    for (name, got), want in zip(grads.items(), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


def test_adam_state_persists_and_matches_torch_adam():
    """Three steps of the stacked Adam equal torch.optim.Adam on the same gradients (state carried over)."""
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = EnsembleGAMBITTS.from_env(venv, seed=3, n_members=3, lr=0.01)
    reference = {k: v.clone().requires_grad_(True) for k, v in agent.weights.items()}
    optimiser = torch.optim.Adam(list(reference.values()), lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        grads = {k: torch.randn(v.shape, generator=g) for k, v in agent.weights.items()}
        agent._adam_step(grads)
        for k, p in reference.items():
            p.grad = grads[k].clone()
        optimiser.step()
    for k, p in reference.items():
        torch.testing.assert_close(agent.weights[k], p.detach(), rtol=1e-5, atol=1e-6, msg=k)


def test_each_replication_standardises_its_targets_with_its_own_warm_up_rewards():
    """y_loc and y_scale are per replication: the mean and sd (floored at 1e-6) of that row's warm-up
    rewards, whatever the other rows saw (a row with a constant reward gets the floor alone).
    tests/test_agent_independence.py checks that no other state is shared either."""
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    agent = EnsembleGAMBITTS.from_env(venv, seed=0, n_members=3, warmup=20)
    obs, _ = venv.reset(seed=0)
    fed = []
    for t in range(20):
        a = np.arange(3) % venv.single_action_space.n
        next_obs, r, _, _, info = venv.step(a)
        r = r * np.array([1.0, 10.0, 0.0]) + np.array([0.0, -500.0, 7.0])  # row 2: always exactly 7
        agent.update(obs, a, r, info)
        fed.append(r)
        obs = next_obs
        if t < 19:  # fixed once, at the end of the warm-up
            assert not agent.y_loc.any() and np.all(agent.y_scale == 1.0)
    per_row = np.array(fed).T.copy()  # one contiguous row of rewards per replication, as in the buffer
    assert agent.y_loc.shape == agent.y_scale.shape == (3,)
    for row in range(3):
        assert agent.y_loc[row] == per_row[row].mean()
        assert agent.y_scale[row] == max(per_row[row].std(), 1e-6)
    assert agent.y_loc[2] == 7.0 and agent.y_scale[2] == 1e-6


def test_adam_state_is_the_explicit_arrays_and_resumes_exactly():
    """The optimiser's moments are ``adam_m`` / ``adam_v`` themselves, and an agent rebuilt from a
    mid-run state continues bit for bit like the one that kept running (Adam moments and step included)."""
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = EnsembleGAMBITTS.from_env(venv, seed=1, n_members=3, warmup=10)
    play(agent, venv, 0, 15)
    for k, w in agent.weights.items():
        state = agent._optimiser.state[w]
        assert state["exp_avg"] is agent.adam_m[k] and state["exp_avg_sq"] is agent.adam_v[k]
        assert float(state["step"]) == agent.adam_step == 15 - 10 + 1
    assert all(agent.adam_v[k].abs().sum() > 0 for k in agent.weights)
    saved = agent.state_dict()
    clone = EnsembleGAMBITTS.from_env(venv, seed=99, n_members=3, warmup=10)
    clone.load_state_dict(saved)
    continued = play(agent, GeneratorMediatedVectorEnv(num_envs=2), 5, 10)
    resumed = play(clone, GeneratorMediatedVectorEnv(num_envs=2), 5, 10)
    assert np.array_equal(continued, resumed)
    for k in agent.weights:
        assert torch.equal(agent.weights[k], clone.weights[k]) and torch.equal(agent.adam_v[k], clone.adam_v[k])


@pytest.mark.parametrize("device", ["tpu", "cuda:x", 3])
def test_bad_device_is_rejected(device):
    with pytest.raises(ValueError, match="device"):
        EnsembleGAMBITTS.from_env(GeneratorMediatedVectorEnv(num_envs=2), seed=0, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match="device: 'cuda' asked for"):
        EnsembleGAMBITTS.from_env(GeneratorMediatedVectorEnv(num_envs=2), seed=0, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_and_acts_on_a_gpu_and_its_state_moves_to_the_cpu():
    """On a GPU the nets start from the same weights as on the CPU, learn, save as numpy arrays, and a
    CPU agent loaded from that state predicts what the GPU agent predicts (float32 tolerance)."""
    venv = GeneratorMediatedVectorEnv(num_envs=3)
    gpu = EnsembleGAMBITTS.from_env(venv, seed=2, n_members=4, warmup=10, device="cuda")
    cpu = EnsembleGAMBITTS.from_env(venv, seed=2, n_members=4, warmup=10)
    assert all(torch.equal(gpu.weights[k].cpu(), cpu.weights[k]) for k in cpu.weights)
    actions = play(gpu, venv, 0, 40)
    assert actions.shape == (40, 3) and gpu.weights["w1"].is_cuda and gpu.adam_m["w1"].is_cuda
    state = gpu.state_dict()
    assert all(isinstance(v, np.ndarray) for k, v in state["state"].items() if k.startswith(("weights", "adam")))
    cpu.load_state_dict(state)
    x = torch.randn(3, 4, 25, cpu.input_dim)
    with torch.no_grad():
        torch.testing.assert_close(gpu._forward(x.to(gpu.device)).cpu(), cpu._forward(x), rtol=1e-4, atol=1e-4)
