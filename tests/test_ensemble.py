"""EnsembleGAMBITTS: batched members, hand-written training, determinism, bad input (save/restore:
test_agent_state.py)."""

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("numba")  # the CPU kernels
torch = pytest.importorskip("torch")  # the reference implementation (and the GPU)

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
    R, K, n, d = z.shape
    out = np.stack([agent.nets.outputs(z.reshape(R, K * n, d), x, np.full(R, m)) for m in range(8)], axis=1)
    pred = out.reshape(R, 8, K, n).mean(axis=(1, 3))
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


def _minibatch(R, M, D, size=12, B=5, seed=0):
    """A replay buffer of ``size`` slots per row (inputs with zeros, as context one-hots have) and a
    minibatch of B slots per net: what ``train`` takes."""
    rng = np.random.default_rng(seed)
    buf_x = rng.standard_normal((R, size, D)).astype(np.float32)
    buf_x[:, :, 3:] *= rng.random((R, size, D - 3)) < 0.3  # mostly zeros past the embedding
    buffer = (buf_x, rng.normal(80, 5, (R, size)), rng.standard_normal((R, size, M)))
    idx = rng.integers(size, size=(R, M, B))
    sigma, loc, scale = rng.uniform(0.5, 2, R), rng.normal(80, 1, R), rng.uniform(1, 3, R)
    return buffer, idx, sigma, loc, scale


def _autograd_adam_steps(weights, batches, lr, weight_decay):
    """torch.autograd + torch.optim.Adam on the ensemble's loss: the reference for both implementations."""
    leaves = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in weights.items()}
    optimiser = torch.optim.Adam(list(leaves.values()), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    for buffer, idx, sigma, loc, scale in batches:
        buf_x, buf_y, buf_eps = buffer
        R, M, _ = idx.shape
        rows = np.arange(R)[:, None, None]
        x = torch.from_numpy(buf_x[rows, idx])
        eps = buf_eps[rows, idx, np.arange(M)[None, :, None]]
        target = torch.from_numpy(((buf_y[rows, idx] + sigma[:, None, None] * eps - loc[:, None, None])
                                   / scale[:, None, None]).astype(np.float32))
        h = torch.relu(torch.einsum("rmbd,rmdh->rmbh", x, leaves["w1"]) + leaves["b1"][:, :, None])
        pred = torch.einsum("rmbh,rmh->rmb", h, leaves["w2"]) + leaves["b2"][:, :, None]
        loss = (((pred - target) ** 2).mean(dim=2).sum()
                + weight_decay * ((leaves["w1"] ** 2).sum() + (leaves["w2"] ** 2).sum()))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return {k: v.detach().numpy() for k, v in leaves.items()}


@pytest.mark.parametrize("nets", ["compiled", "torch"])
def test_training_steps_equal_autograd_with_torch_adam(nets):
    """Three training steps (written-out gradient, weight decay, Adam with its state carried over) equal
    torch.autograd + torch.optim.Adam on the same loss, for the compiled CPU kernels and for the torch
    implementation that runs on a GPU (here on the CPU)."""
    from agents.ensemble import _CompiledNets, _TorchNets

    venv = GeneratorMediatedVectorEnv(num_envs=3)
    agent = EnsembleGAMBITTS.from_env(venv, seed=1, n_members=4, hidden=16)
    weights = {k: v.copy() for k, v in agent.weights.items()}
    grid = _CompiledNets(weights) if nets == "compiled" else _TorchNets(weights, torch.device("cpu"))
    batches = [_minibatch(3, 4, agent.input_dim, seed=s) for s in range(3)]
    for step, batch in enumerate(batches, start=1):
        grid.train(*batch, lr=0.01, weight_decay=1e-3, step=step)
    want = _autograd_adam_steps(agent.weights, batches, lr=0.01, weight_decay=1e-3)
    got = grid.arrays("weights")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)
        assert not np.allclose(got[k], agent.weights[k])  # every array did move


@pytest.mark.parametrize("d", [3, 6])
def test_compiled_and_torch_nets_predict_alike(d):
    """Both implementations give each row's chosen member's output f([z, x]) to float32 rounding (d = 6:
    the CPU kernel takes the treatment coordinates in two blocks of four); with no context (F = 0) the
    first layer sees z alone."""
    from agents.ensemble import _CompiledNets, _TorchNets

    contexts = GeneratorMediatedVectorEnv(num_envs=3).contexts
    agent = EnsembleGAMBITTS(n_actions=5, obs_dim=7, contexts=contexts, embedding_dim=d, n_envs=3, seed=2,
                             n_members=4, simulation=False)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 50, d)).astype(np.float32)
    x = contexts.features[[0, 5, 11]].astype(np.float64)
    members = np.array([3, 0, 2])
    compiled = _CompiledNets({k: v.copy() for k, v in agent.weights.items()}).outputs(z, x, members)
    reference = _TorchNets(agent.weights, torch.device("cpu")).outputs(z, x, members)
    w = {k: v[np.arange(3), members].astype(np.float64) for k, v in agent.weights.items()}
    u = np.concatenate([z, np.broadcast_to(x[:, None], (3, 50, x.shape[1]))], axis=2)
    exact = np.einsum("rnh,rh->rn", np.maximum(np.einsum("rnd,rdh->rnh", u, w["w1"]) + w["b1"][:, None], 0),
                      w["w2"]) + w["b2"][:, None]
    np.testing.assert_allclose(compiled, exact, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reference, exact, rtol=1e-5, atol=1e-5)
    no_context = EnsembleGAMBITTS(n_actions=5, obs_dim=7, contexts=contexts, embedding_dim=d, n_envs=3, seed=2,
                                  n_members=4, simulation=False, use_context=False)
    assert no_context.weights["w1"].shape[2] == d
    w = {k: v[np.arange(3), members].astype(np.float64) for k, v in no_context.weights.items()}
    exact = np.einsum("rnh,rh->rn", np.maximum(np.einsum("rnd,rdh->rnh", z, w["w1"]) + w["b1"][:, None], 0),
                      w["w2"]) + w["b2"][:, None]
    np.testing.assert_allclose(no_context.nets.outputs(z, x[:, :0], members), exact, rtol=1e-5, atol=1e-5)


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
    """The Adam moments are the arrays ``adam_m`` / ``adam_v`` of the state, with the step count, and an
    agent rebuilt from a mid-run state continues bit for bit like the one that kept running."""
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = EnsembleGAMBITTS.from_env(venv, seed=1, n_members=3, warmup=10)
    play(agent, venv, 0, 15)
    assert agent.adam_step == 2  # rounds 10 and 14: every train_every = 4 rounds from the end of the warm-up
    state = agent.state_dict()["state"]
    for k in agent.weights:
        assert np.array_equal(state[f"adam_v.{k}"], agent.nets.adam_v[k]) and np.abs(state[f"adam_v.{k}"]).sum() > 0
    saved = agent.state_dict()
    clone = EnsembleGAMBITTS.from_env(venv, seed=99, n_members=3, warmup=10)
    clone.load_state_dict(saved)
    continued = play(agent, GeneratorMediatedVectorEnv(num_envs=2), 5, 10)
    resumed = play(clone, GeneratorMediatedVectorEnv(num_envs=2), 5, 10)
    assert np.array_equal(continued, resumed)
    for k in agent.weights:
        assert np.array_equal(agent.weights[k], clone.weights[k])
        assert np.array_equal(agent.nets.adam_v[k], clone.nets.adam_v[k])


@pytest.mark.parametrize("train_every", [1, 3])
def test_trains_every_train_every_rounds_from_the_end_of_the_warm_up(train_every):
    venv = GeneratorMediatedVectorEnv(num_envs=2)
    agent = EnsembleGAMBITTS.from_env(venv, seed=0, n_members=2, warmup=10, train_every=train_every)
    obs, _ = venv.reset(seed=0)
    steps = []
    for _ in range(30):
        a = agent.act(obs)
        obs2, r, _, _, info = venv.step(a)
        before = agent.weights["w1"].copy()
        agent.update(obs, a, r, info)
        steps.append(not np.array_equal(before, agent.weights["w1"]))
        obs = obs2
    trained = [t + 1 for t, moved in enumerate(steps) if moved]  # n_seen after the rounds that trained
    assert trained == list(range(10, 31, train_every)) and agent.adam_step == len(trained)
    with pytest.raises(ValueError, match="train_every"):
        EnsembleGAMBITTS.from_env(venv, train_every=0)


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
    assert all(np.array_equal(gpu.weights[k].cpu().numpy(), cpu.weights[k]) for k in cpu.weights)
    actions = play(gpu, venv, 0, 40)
    assert actions.shape == (40, 3) and gpu.weights["w1"].is_cuda and gpu.nets.adam_m["w1"].is_cuda
    state = gpu.state_dict()
    assert all(isinstance(v, np.ndarray) for k, v in state["state"].items() if k.startswith(("weights", "adam")))
    cpu.load_state_dict(state)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 25, 3)).astype(np.float32)
    x = cpu.contexts.features[[1, 4, 9]]
    members = np.array([0, 3, 1])
    np.testing.assert_allclose(gpu.nets.outputs(z, x, members), cpu.nets.outputs(z, x, members),
                               rtol=1e-4, atol=1e-4)
