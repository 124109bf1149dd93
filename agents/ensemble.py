"""Ensemble GAMBITTS: a perturbed MLP ensemble as a non-linear reward model.

Reward model: M one-hidden-layer ReLU MLPs on [z, context one-hot]. Each
stored observation carries one N(0, 1) perturbation per member; a member
trains on y + sigma_hat * perturbation, so the ensemble spreads like a
posterior (randomised least squares). Differences from the paper's code:

* ``sigma_hat`` is estimated from data, not the true noise sd: it is the
  posterior-mean noise sd of a Bayesian linear model on [z, context, 1]
  fitted alongside (an upper bound when the linear model misfits, which only
  widens exploration).
* targets are standardised with the mean and sd of the warm-up rewards, so the
  nets work at any reward scale (the mHealth reward is ~80); each replication
  uses its own warm-up rewards (``y_loc`` and ``y_scale`` are ``(R,)``), so
  nothing learned is shared between the replications of a batch.
* one persistent Adam state per member (the paper re-created its optimiser
  every round), element-wise, so exactly M (x R) independent optimisers.
* context is an input (the paper ignored it).

All members of all replications train and predict in one call per round, in
float32, never a Python loop over members: on the CPU through compiled kernels
(:mod:`agents.mlp_kernels`, numba: a net's weights stay in cache while its
minibatch streams through, gradient and Adam step fused), on a GPU
(``device="cuda"``) through batched torch products and torch's fused Adam.
The two agree to float32 rounding (tests/test_ensemble.py).

Decision: pick one member uniformly per replication; score each action by the
member's mean output over Monte-Carlo draws of Z for (a, x): from the offline
bank (``simulation=True``, the po form) or from the Normal-Inverse-Wishart
treatment model learned online (``simulation=False``, the fo form).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agents.base import BatchedAgent, IncompatibleEnvError
from agents.gambitts import offline_treatment_draws
from agents.posteriors import NormalInverseWishart
from agents.reward_model import LinearRewardModel
from agents.state import State, prefixed, unprefixed
from gambit_gym.extras import require
from gambit_gym.validation import check_float, check_int

_GROUPS = ("weights", "adam_m", "adam_v")  # the nets' arrays: weights and Adam's two moments
_PARAMS = ("w1", "b1", "w2", "b2")
_ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}  # torch.optim.Adam's defaults


class _CompiledNets:
    """The (R, M) grid of nets on the CPU: float32 numpy arrays and :mod:`agents.mlp_kernels`."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        require("numba", "torch", "EnsembleGAMBITTS on the CPU")
        from agents import mlp_kernels

        self._kernels = mlp_kernels
        self.weights = weights
        self.adam_m = {k: np.zeros_like(v) for k, v in weights.items()}
        self.adam_v = {k: np.zeros_like(v) for k, v in weights.items()}

    def outputs(self, z: np.ndarray, x: np.ndarray, members: np.ndarray) -> np.ndarray:
        """Member ``members[r]``'s outputs on ``[z[r, i], x[r]]``: ``z (R, N, d)``, ``x (R, F)`` -> ``(R, N)``."""
        out = np.empty(z.shape[:2], dtype=np.float32)
        self._kernels.member_outputs(np.ascontiguousarray(z, dtype=np.float32),
                                     np.ascontiguousarray(x, dtype=np.float32),
                                     np.ascontiguousarray(members, dtype=np.int64),
                                     *(self.weights[k] for k in _PARAMS), out)
        return out

    def train(self, buffer: tuple[np.ndarray, np.ndarray, np.ndarray], idx: np.ndarray, sigma: np.ndarray,
              loc: np.ndarray, scale: np.ndarray, lr: float, weight_decay: float, step: int) -> None:
        """One Adam step (number ``step``) of every net on its minibatch (see ``mlp_kernels.train_step``)."""
        self._kernels.train_step(*buffer, idx, sigma, loc, scale,
                                 *(getattr(self, g)[k] for g in _GROUPS for k in _PARAMS),
                                 lr, weight_decay, step, _ADAM["beta1"], _ADAM["beta2"], _ADAM["eps"])

    def arrays(self, group: str) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in getattr(self, group).items()}

    def load(self, groups: dict[str, dict[str, np.ndarray]], step: int) -> None:
        for group, arrays in groups.items():
            setattr(self, group, {k: np.array(v, dtype=np.float32, order="C") for k, v in arrays.items()})


class _TorchNets:
    """The (R, M) grid of nets as torch tensors on ``device`` (a GPU): batched products over the grid,
    a hand-written backward pass and one fused ``torch.optim.Adam`` over the stacked weights."""

    def __init__(self, weights: dict[str, np.ndarray], device: Any) -> None:
        self._torch = torch = require("torch", "torch", "EnsembleGAMBITTS on a GPU")
        self.device = device
        self.weights = {k: torch.from_numpy(v).to(device) for k, v in weights.items()}
        self.adam_m = {k: torch.zeros_like(v) for k, v in self.weights.items()}
        self.adam_v = {k: torch.zeros_like(v) for k, v in self.weights.items()}
        self._make_optimiser(0)

    def outputs(self, z: np.ndarray, x: np.ndarray, members: np.ndarray) -> np.ndarray:
        """As :meth:`_CompiledNets.outputs`. The context's part of the first layer is one vector per row (the
        same for all its inputs), so the N inputs pay only for their d treatment coordinates."""
        torch = self._torch
        z, x, members = (torch.from_numpy(np.ascontiguousarray(a, dtype=t)).to(self.device)
                         for a, t in ((z, np.float32), (x, np.float32), (members, np.int64)))
        rows = torch.arange(z.shape[0], device=self.device)
        w1, b1, w2, b2 = (self.weights[k][rows, members] for k in _PARAMS)
        d = z.shape[-1]
        with torch.no_grad():
            bias = torch.baddbmm(b1[:, None, :], x[:, None, :], w1[:, d:, :]) if w1.shape[1] > d else b1[:, None, :]
            h = torch.baddbmm(bias, z, w1[:, :d, :]).relu_()
            return torch.baddbmm(b2[:, None, None], h, w2[:, :, None])[:, :, 0].cpu().numpy()

    def gradients(self, x, target, weight_decay: float) -> dict[str, Any]:
        """Exact gradients of ``sum_{r,m} mean_b (f_rm(x_rmb) - target_rmb)^2 + wd * (|W1|^2 + |w2|^2)``,
        written out (a one-hidden-layer ReLU net has a three-line backward pass); ``x (R, M, B, D)``,
        ``target (R, M, B)``; all nets in one ``bmm``."""
        torch = self._torch
        R, M, B, D = x.shape
        w = self.weights
        H = w["b1"].shape[-1]
        w1, b1 = w["w1"].view(R * M, D, H), w["b1"].view(R * M, 1, H)
        w2, b2 = w["w2"].view(R * M, H, 1), w["b2"].view(R * M, 1, 1)
        x, target = x.view(R * M, B, D), target.view(R * M, B, 1)
        h = torch.baddbmm(b1, x, w1).relu_()  # (R M, B, H)
        g_out = (torch.baddbmm(b2, h, w2) - target).mul_(2.0 / B)  # dLoss/dprediction
        # dLoss/dh masked by the ReLU: an outer product (a broadcast multiply) and ReLU's own backward kernel
        g_h = torch.ops.aten.threshold_backward(g_out * w2.transpose(1, 2), h, 0.0)
        grads = {"w1": torch.bmm(x.transpose(1, 2), g_h), "b1": g_h.sum(dim=1, keepdim=True),
                 "w2": torch.bmm(h.transpose(1, 2), g_out), "b2": g_out.sum(dim=1, keepdim=True)}
        grads = {k: g.reshape(w[k].shape) for k, g in grads.items()}
        if weight_decay:
            grads["w1"].add_(w["w1"], alpha=2 * weight_decay)
            grads["w2"].add_(w["w2"], alpha=2 * weight_decay)
        return grads

    def train(self, buffer: tuple[np.ndarray, np.ndarray, np.ndarray], idx: np.ndarray, sigma: np.ndarray,
              loc: np.ndarray, scale: np.ndarray, lr: float, weight_decay: float, step: int) -> None:
        """As :meth:`_CompiledNets.train`: the minibatches gathered here, then one fused Adam step."""
        torch = self._torch
        buf_x, buf_y, buf_eps = buffer
        R, M, _ = idx.shape
        rows = np.arange(R)[:, None, None]
        x = torch.from_numpy(buf_x[rows, idx]).to(self.device)  # (R, M, B, D)
        y, eps = buf_y[rows, idx], buf_eps[rows, idx, np.arange(M)[None, :, None]]
        target = ((y + sigma[:, None, None] * eps - loc[:, None, None]) / scale[:, None, None]).astype(np.float32)
        grads = self.gradients(x, torch.from_numpy(target).to(self.device), weight_decay)
        for g in self._optimiser.param_groups:
            g["lr"] = lr
        for k, w in self.weights.items():
            w.grad = grads[k]
        self._optimiser.step()
        for w in self.weights.values():
            w.grad = None

    def _make_optimiser(self, step: int) -> None:
        """One fused ``torch.optim.Adam`` over the stacked weights whose state is ``adam_m``, ``adam_v``."""
        torch = self._torch
        params = list(self.weights.values())
        betas = (_ADAM["beta1"], _ADAM["beta2"])
        try:
            optimiser = torch.optim.Adam(params, betas=betas, eps=_ADAM["eps"], fused=True)
        except (RuntimeError, TypeError):  # no fused Adam for this device in this torch
            optimiser = torch.optim.Adam(params, betas=betas, eps=_ADAM["eps"], foreach=True)
        for k, w in self.weights.items():
            optimiser.state[w] = {"step": torch.tensor(float(step), dtype=torch.float32, device=self.device),
                                  "exp_avg": self.adam_m[k], "exp_avg_sq": self.adam_v[k]}
        self._optimiser = optimiser

    def arrays(self, group: str) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in getattr(self, group).items()}

    def load(self, groups: dict[str, dict[str, np.ndarray]], step: int) -> None:
        torch = self._torch
        for group, arrays in groups.items():
            setattr(self, group, {k: torch.from_numpy(np.array(v, dtype=np.float32)).to(self.device)
                                  for k, v in arrays.items()})
        self._make_optimiser(step)


class EnsembleGAMBITTS(BatchedAgent):
    """Thompson sampling with a perturbed MLP ensemble reward model.

    Args:
        n_members: M (10; the paper used 60).
        hidden: hidden ReLU units per member (64).
        buffer_size: FIFO replay buffer per replication (1024).
        batch_size: minibatch per member per training step (32; the paper used 100: 32 had lower
            regret in all three cases of ``benchmarks/ensemble_robustness.py`` at a third of the cost).
        train_every: one training step (one Adam step of every member) every this many rounds after
            the warm-up (4; the paper trained every round). Every 2, 3 or 4 rounds had lower regret
            than every round in all six cases of ``benchmarks/ensemble_robustness.py`` (250
            replications), at a quarter of the training cost; every 8 was worse on the MLP outcome.
        warmup: rounds of uniform random actions before the first update (100).
        lr: Adam learning rate (0.003), on standardised targets.
        weight_decay: L2 penalty per member (1e-4).
        simulation: use the environment's simulation access (po form, default
            when the env has it) or learn the treatment model online (fo form).
        n_offline: bank draws kept per (context, action) for the po form (100).
        n_mc: Monte-Carlo draws of Z per action for the fo form (32).
        n_score: for the po form, score each round with a fresh random subset of this
            many bank draws per action (None: the whole bank). Keeps the cost of acting
            flat when the simulation budget ``n_offline`` is large.
        use_context: feed the context one-hot to the nets (True).
        device: where the nets train and predict: ``"cpu"`` (default: compiled kernels, needs numba),
            ``"cuda"``, ``"cuda:1"``, ... (torch on that GPU). Everything else stays in numpy.

    Example:
        >>> import gymnasium as gym, gambit_gym
        >>> env = gym.make("GeneratorMediated-v0")
        >>> agent = EnsembleGAMBITTS.from_env(env, n_members=4, seed=0)
        >>> obs, info = env.reset(seed=0)
        >>> action = agent.act(obs)
        >>> obs2, reward, _, _, info = env.step(action)
        >>> agent.update(obs, action, reward, info)
    """

    uses_embedding = True
    wants_simulator = True

    def __init__(
        self,
        n_actions: int,
        obs_dim: int,
        n_members: int = 10,
        hidden: int = 64,
        buffer_size: int = 1024,
        batch_size: int = 32,
        warmup: int = 100,
        lr: float = 0.003,
        weight_decay: float = 1e-4,
        simulation: bool | None = None,
        simulator: Callable[..., np.ndarray] | None = None,
        n_offline: int = 100,
        n_mc: int = 32,
        n_score: int | None = None,
        train_every: int = 4,
        use_context: bool = True,
        device: str | None = None,
        **base: Any,
    ) -> None:
        self.n_members = check_int("n_members", n_members, 1)
        self.hidden = check_int("hidden", hidden, 1)
        self.buffer_size = check_int("buffer_size", buffer_size, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.warmup = check_int("warmup", warmup, 1)
        self.lr = check_float("lr", lr, minimum=0.0, strict=True)
        self.weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        self.n_offline = check_int("n_offline", n_offline, 1)
        self.n_mc = check_int("n_mc", n_mc, 1)
        self.n_score = None if n_score is None else check_int("n_score", n_score, 1)
        self.train_every = check_int("train_every", train_every, 1)
        self.use_context = bool(use_context)
        if simulation is None:
            simulation = simulator is not None
        if simulation and simulator is None:
            raise IncompatibleEnvError(
                "env: EnsembleGAMBITTS(simulation=True) needs simulation access (env.unwrapped.sample_treatments)"
            )
        self.simulation = bool(simulation)
        if self.n_score is not None and not self.simulation:
            raise ValueError("n_score: applies to the po form (simulation=True) only; the fo form draws n_mc")
        self._simulator = simulator
        self.device = self._check_device(device)
        super().__init__(n_actions, obs_dim, **base)
        if self.simulation:
            self.bank = self._offline_bank()

    @staticmethod
    def _check_device(device: Any) -> Any:
        """``None`` (the CPU) or a ``torch.device`` of a GPU this machine has."""
        if device is None or device == "cpu":
            return None
        torch = require("torch", "torch", f"EnsembleGAMBITTS(device={device!r})")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device: must be 'cpu' or a CUDA device such as 'cuda', got {device!r}") from None
        if dev.type == "cpu":
            return None
        if dev.type != "cuda":
            raise ValueError(f"device: must be 'cpu' or a CUDA device, got {device!r}")
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} asked for, but torch sees no CUDA GPU here (use 'cpu')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device: {device!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
        return dev

    # -- state ---------------------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        return self.embedding_dim + (self.obs_dim if self.use_context else 0)

    def _init_state(self) -> None:
        R, M, D, H = self.n_rows, self.n_members, self.input_dim, self.hidden
        g = np.random.default_rng(int(self.rng.integers(2**62)))  # drawn on the CPU: the same nets on any device
        weights = {
            "w1": g.standard_normal((R, M, D, H), dtype=np.float32) * np.float32(np.sqrt(2.0 / D)),
            "b1": np.zeros((R, M, H), dtype=np.float32),
            "w2": g.standard_normal((R, M, H), dtype=np.float32) * np.float32(np.sqrt(1.0 / H)),
            "b2": np.zeros((R, M), dtype=np.float32),
        }
        self.nets = _CompiledNets(weights) if self.device is None else _TorchNets(weights, self.device)
        self.adam_step = 0
        self.buf_x = np.zeros((R, self.buffer_size, D), dtype=np.float32)
        self.buf_y = np.zeros((R, self.buffer_size))
        self.buf_eps = np.zeros((R, self.buffer_size, M))
        self.n_seen = 0  # rounds seen, shared by all rows (they step together)
        self.y_loc = np.zeros(R)  # per replication: a batch is R independent runs
        self.y_scale = np.ones(R)
        # sigma_hat comes from a Bayesian linear model on [z, context, 1] (no oracle knowledge).
        blocks = {"z": self.embedding_dim, **({"context": self.obs_dim} if self.use_context else {})}
        self.noise_model = LinearRewardModel(R, blocks)
        if not self.simulation:
            self.treatment = NormalInverseWishart(R, self.contexts.n_contexts * self.n_actions, self.embedding_dim)

    def _offline_bank(self) -> np.ndarray:
        """``(R, C, K, n_offline, d)`` simulated treatments, drawn once with the agent's stream."""
        C, K, d, R, n = self.contexts.n_contexts, self.n_actions, self.embedding_dim, self.n_rows, self.n_offline
        bank = np.empty((R, C, K, n, d), dtype=np.float32)
        for c, a, draws in offline_treatment_draws(self._simulator, R, C, K, n, d, self.rng):
            bank[:, c, a] = draws
        return bank

    @property
    def weights(self) -> dict[str, Any]:
        """The nets' weights ``w1 (R, M, D, H)``, ``b1 (R, M, H)``, ``w2 (R, M, H)``, ``b2 (R, M)``:
        float32 numpy arrays on the CPU, torch tensors on a GPU."""
        return self.nets.weights

    def _state(self) -> State:
        state: State = {}
        for group in _GROUPS:
            state.update(prefixed(group, self.nets.arrays(group)))
        state.update({
            "adam_step": self.adam_step,
            "buffer.x": self.buf_x.copy(),
            "buffer.y": self.buf_y.copy(),
            "buffer.eps": self.buf_eps.copy(),
            "n_seen": self.n_seen,
            "y_loc": self.y_loc.copy(),
            "y_scale": self.y_scale.copy(),
            **prefixed("noise", self.noise_model.posterior.state()),
        })
        if self.simulation:
            state["bank"] = self.bank.copy()  # drawn from the agent's stream, so it is state
        else:
            state.update(prefixed("treatment", self.treatment.state()))
        return state

    def _load_state(self, state: State) -> None:
        self.adam_step = state["adam_step"]
        self.nets.load({group: unprefixed(group, state) for group in _GROUPS}, self.adam_step)
        self.buf_x, self.buf_y, self.buf_eps = state["buffer.x"], state["buffer.y"], state["buffer.eps"]
        self.n_seen, self.y_loc, self.y_scale = state["n_seen"], state["y_loc"], state["y_scale"]
        self.noise_model.posterior.load_state(unprefixed("noise", state))
        if self.simulation:
            self.bank = state["bank"]
        else:
            self.treatment.load_state(unprefixed("treatment", state))

    def _train_step(self) -> None:
        size = min(self.n_seen, self.buffer_size)
        R, M, B = self.n_rows, self.n_members, min(self.batch_size, size)
        idx = self.rng.integers(size, size=(R, M, B))
        a_n, b_n = self.noise_model.posterior.noise_params()
        sigma = np.sqrt(b_n / np.maximum(a_n - 1.0, 1e-9))  # posterior mean of v, per row
        self.adam_step += 1
        self.nets.train((self.buf_x, self.buf_y, self.buf_eps), idx, sigma, self.y_loc, self.y_scale,
                        self.lr, self.weight_decay, self.adam_step)

    # -- the protocol hooks --------------------------------------------------------------
    def _inputs(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``z (R, ..., d)``, ``x (R, F)`` -> ``(R, ..., D)``."""
        if not self.use_context:
            return z
        xb = np.broadcast_to(x.reshape((x.shape[0],) + (1,) * (z.ndim - 2) + (x.shape[1],)),
                             z.shape[:-1] + (x.shape[1],))
        return np.concatenate([z, xb], axis=-1)

    def _treatment_draws(self, ctx: np.ndarray) -> np.ndarray:
        """Monte-Carlo draws of Z for every action in each row's context: ``(R, K, n, d)`` (the bank's float32
        for the po form: the nets compute in float32)."""
        if self.simulation:
            if self.n_score is None or self.n_score >= self.n_offline:
                return self.bank[self._rows, ctx]
            draws = self.rng.choice(self.n_offline, size=self.n_score, replace=False)
            actions = np.arange(self.n_actions)[None, :, None]
            return self.bank[self._rows[:, None, None], ctx[:, None, None], actions, draws]
        cells = self._action_cells(ctx)
        rows = self._rows[:, None]
        mean = self.treatment.sample_mean(self.rng, rows, cells)  # a posterior draw of each cell's mean
        scale = self.treatment.mode_covariance_factor(rows, cells)  # covariance at its posterior mode
        eps = self.rng.standard_normal(mean.shape[:2] + (self.n_mc, self.embedding_dim))
        return mean[:, :, None, :] + np.einsum("rkij,rknj->rkni", scale, eps)

    def _act(self, ctx, x):
        if self.n_seen < self.warmup:
            return self.rng.integers(self.n_actions, size=self.n_rows)
        z = self._treatment_draws(ctx)  # (R, K, n, d)
        R, K, n, d = z.shape
        members = self.rng.integers(self.n_members, size=R)
        context = x if self.use_context else x[:, :0]
        out = self.nets.outputs(z.reshape(R, K * n, d), context, members)
        return out.reshape(R, K, n).mean(axis=2).argmax(axis=1)

    def _update(self, ctx, x, a, y, z):
        pos = self.n_seen % self.buffer_size
        self.buf_x[:, pos] = self._inputs(z, x)
        self.buf_y[:, pos] = y
        self.buf_eps[:, pos] = self.rng.standard_normal((self.n_rows, self.n_members))
        self.n_seen += 1
        parts = {"z": z, **({"context": x} if self.use_context else {})}
        self.noise_model.posterior.update(self.noise_model.features(parts), y)
        if not self.simulation:
            self.treatment.update(self._rows, self._cell(ctx, a), z)
        if self.n_seen == self.warmup:  # fix each replication's target scale from its own warm-up rewards
            seen = self.buf_y[:, : self.warmup]
            self.y_loc = seen.mean(axis=1)
            self.y_scale = np.maximum(seen.std(axis=1), 1e-6)
        if self.n_seen >= self.warmup and (self.n_seen - self.warmup) % self.train_every == 0:
            self._train_step()
