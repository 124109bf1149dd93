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
  every round): one ``torch.optim.Adam`` (fused) over the stacked weights.
  Adam is element-wise, so this is exactly M (x R) independent optimisers.
* context is an input (the paper ignored it).

All members of all replications train and predict in single batched tensor
products (``bmm`` over a leading (replication, member) grid, in float32),
never a Python loop over members, on the CPU or on a GPU (``device=``).
Needs the ``torch`` extra.

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


def _torch():
    return require("torch", "torch", "EnsembleGAMBITTS")


class EnsembleGAMBITTS(BatchedAgent):
    """Thompson sampling with a perturbed MLP ensemble reward model.

    Args:
        n_members: M (10; the paper used 60).
        hidden: hidden ReLU units per member (64).
        buffer_size: FIFO replay buffer per replication (1024).
        batch_size: minibatch per member per round (32; the paper used 100: 32 had lower regret
            in all three cases of ``benchmarks/ensemble_robustness.py`` at a third of the cost).
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
        device: where the nets train and predict: ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"``, ...
            (anything ``torch.device`` takes that this machine has). Everything else stays in numpy.

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
        self._torch = _torch()
        self.device = self._check_device(device)
        super().__init__(n_actions, obs_dim, **base)
        if self.simulation:
            self.bank = self._offline_bank()

    def _check_device(self, device: str | None) -> Any:
        torch = self._torch
        try:
            dev = torch.device("cpu" if device is None else device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device: must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} asked for, but torch sees no CUDA GPU here (use 'cpu')")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device: {device!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device: must be 'cpu' or a CUDA device, got {device!r}")
        return dev

    # -- state ---------------------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        return self.embedding_dim + (self.obs_dim if self.use_context else 0)

    def _init_state(self) -> None:
        torch = self._torch
        R, M, D, H = self.n_rows, self.n_members, self.input_dim, self.hidden
        g = torch.Generator().manual_seed(int(self.rng.integers(2**62)))
        self.weights = {
            "w1": torch.randn(R, M, D, H, generator=g, dtype=torch.float32) * np.sqrt(2.0 / D),
            "b1": torch.zeros(R, M, H, dtype=torch.float32),
            "w2": torch.randn(R, M, H, generator=g, dtype=torch.float32) * np.sqrt(1.0 / H),
            "b2": torch.zeros(R, M, dtype=torch.float32),
        }
        self.weights = {k: v.to(self.device) for k, v in self.weights.items()}  # drawn on the CPU: same nets anywhere
        self.adam_m = {k: torch.zeros_like(v) for k, v in self.weights.items()}
        self.adam_v = {k: torch.zeros_like(v) for k, v in self.weights.items()}
        self.adam_step = 0
        self._make_optimiser()
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

    #: the torch tensors of the state: the members' weights and their Adam moments
    _TENSOR_GROUPS = ("weights", "adam_m", "adam_v")

    def _state(self) -> State:
        state: State = {}
        for group in self._TENSOR_GROUPS:
            state.update(prefixed(group, {k: v.detach().cpu().numpy().copy() for k, v in getattr(self, group).items()}))
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
        torch = self._torch
        for group in self._TENSOR_GROUPS:
            setattr(self, group, {k: torch.from_numpy(v).to(self.device) for k, v in unprefixed(group, state).items()})
        self.adam_step = state["adam_step"]
        self._make_optimiser()
        self.buf_x, self.buf_y, self.buf_eps = state["buffer.x"], state["buffer.y"], state["buffer.eps"]
        self.n_seen, self.y_loc, self.y_scale = state["n_seen"], state["y_loc"], state["y_scale"]
        self.noise_model.posterior.load_state(unprefixed("noise", state))
        if self.simulation:
            self.bank = state["bank"]
        else:
            self.treatment.load_state(unprefixed("treatment", state))

    # -- the networks --------------------------------------------------------------------
    def _forward(self, x, members=None):
        """Outputs of all members ``x (R, M, n, D) -> (R, M, n)``, or of one member per row
        (``members (R,)``, ``x (R, n, D) -> (R, n)``), in cache-sized chunks of nets."""
        torch = self._torch
        w = self.weights
        if members is None:
            R, M = self.n_rows, self.n_members
            w1, b1, w2, b2 = (w[k].reshape((R * M,) + w[k].shape[2:]) for k in ("w1", "b1", "w2", "b2"))
            x = x.reshape((R * M,) + x.shape[2:])
        else:
            rows = torch.arange(self.n_rows, device=self.device)
            w1, b1, w2, b2 = (w[k][rows, members] for k in ("w1", "b1", "w2", "b2"))
        n_nets, n = x.shape[0], x.shape[1]
        out = torch.empty(n_nets, n, 1, dtype=torch.float32, device=self.device)
        step = self._chunk(n)
        for s in range(0, n_nets, step):
            c = slice(s, s + step)
            h = torch.baddbmm(b1[c, None, :], x[c], w1[c]).relu_()
            torch.baddbmm(b2[c, None, None], h, w2[c, :, None], out=out[c])
        return out.reshape(x.shape[:2] if members is not None else (self.n_rows, self.n_members, n))

    def _gradients(self, x, target) -> dict[str, Any]:
        """Exact gradients of ``sum_{r,m} mean_b (f_rm(x_rmb) - target_rmb)^2 + wd * |w|^2``.

        Written out by hand (a one-hidden-layer ReLU net has a three-line backward pass):
        autograd kept every intermediate of all (R x M) nets alive at once, and the
        activations of one round (R x M x B x H floats) overflow the CPU caches, so the
        (replication, member) grid is processed in chunks of nets that fit in cache.
        ``x (R, M, B, D)``, ``target (R, M, B)``; all members of a chunk in one ``bmm``.
        """
        torch = self._torch
        R, M, B, D = x.shape
        H = self.hidden
        w = self.weights
        w1, b1 = w["w1"].view(R * M, D, H), w["b1"].view(R * M, 1, H)
        w2, b2 = w["w2"].view(R * M, H, 1), w["b2"].view(R * M, 1, 1)
        x, target = x.view(R * M, B, D), target.view(R * M, B, 1)
        grads = {k: torch.empty_like(v) for k, v in w.items()}
        g1, gb1 = grads["w1"].view(R * M, D, H), grads["b1"].view(R * M, 1, H)
        g2, gb2 = grads["w2"].view(R * M, H, 1), grads["b2"].view(R * M, 1, 1)
        step = self._chunk(B)
        for s in range(0, R * M, step):
            c = slice(s, s + step)
            h = torch.baddbmm(b1[c], x[c], w1[c]).relu_()  # (n, B, H)
            g_out = (torch.baddbmm(b2[c], h, w2[c]) - target[c]).mul_(2.0 / B)  # dLoss/dprediction
            torch.bmm(h.transpose(1, 2), g_out, out=g2[c])
            torch.sum(g_out, dim=1, keepdim=True, out=gb2[c])
            # dLoss/dh masked by the ReLU: an outer product (a broadcast multiply, not a K = 1 bmm) and
            # ReLU's own backward kernel (one pass, where multiplying by the mask h > 0 took two)
            g_h = torch.ops.aten.threshold_backward(g_out * w2[c].transpose(1, 2), h, 0.0)
            torch.bmm(x[c].transpose(1, 2), g_h, out=g1[c])
            torch.sum(g_h, dim=1, keepdim=True, out=gb1[c])
        if self.weight_decay:
            grads["w1"].add_(w["w1"], alpha=2 * self.weight_decay)
            grads["w2"].add_(w["w2"], alpha=2 * self.weight_decay)
        return grads

    #: hidden activations per chunk in ``_gradients`` (~1.3 MB of float32: fits in L2)
    _chunk_floats = 320_000

    def _chunk(self, n: int) -> int:
        """Nets per chunk for ``n`` inputs each: cache-sized on the CPU, all at once on a GPU."""
        if self.device.type != "cpu":
            return self.n_rows * self.n_members
        return max(1, self._chunk_floats // (n * self.hidden))

    def _train_step(self) -> None:
        torch = self._torch
        size = min(self.n_seen, self.buffer_size)
        R, M, B = self.n_rows, self.n_members, min(self.batch_size, size)
        idx = self.rng.integers(size, size=(R, M, B))
        rows = np.arange(R)[:, None, None]
        x = torch.from_numpy(self.buf_x[rows, idx]).to(self.device)  # (R, M, B, D) float32: half float64's cost
        y = self.buf_y[rows, idx]
        eps = self.buf_eps[rows, idx, np.arange(M)[None, :, None]]
        a_n, b_n = self.noise_model.posterior.noise_params()
        sigma = np.sqrt(b_n / np.maximum(a_n - 1.0, 1e-9))[:, None, None]  # posterior mean of v, per row
        loc, scale = self.y_loc[:, None, None], self.y_scale[:, None, None]
        target = torch.from_numpy(((y + sigma * eps - loc) / scale).astype(np.float32)).to(self.device)
        self._adam_step(self._gradients(x, target))

    def _make_optimiser(self) -> None:
        """One ``torch.optim.Adam`` (beta = 0.9, 0.999; eps = 1e-8) over the stacked weights, its state
        the explicit tensors ``adam_m``, ``adam_v`` and the count ``adam_step`` (so saving and loading see
        them). Fused (one vectorised pass, about 5x the hand-written step) where torch has it."""
        torch = self._torch
        params = list(self.weights.values())
        try:
            optimiser = torch.optim.Adam(params, lr=self.lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
        except (RuntimeError, TypeError):  # no fused Adam for this device in this torch
            optimiser = torch.optim.Adam(params, lr=self.lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)
        for k, w in self.weights.items():
            optimiser.state[w] = {"step": torch.tensor(float(self.adam_step), dtype=torch.float32, device=self.device),
                                  "exp_avg": self.adam_m[k], "exp_avg_sq": self.adam_v[k]}
        self._optimiser = optimiser

    def _adam_step(self, grads: dict[str, Any]) -> None:
        """One Adam step (bias-corrected) with these gradients; state kept across rounds. Element-wise,
        so it is M x R independent optimisers."""
        self.adam_step += 1
        for k, w in self.weights.items():
            w.grad = grads[k]
        self._optimiser.step()
        for w in self.weights.values():
            w.grad = None

    # -- the protocol hooks --------------------------------------------------------------
    def _inputs(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``z (R, ..., d)``, ``x (R, F)`` -> ``(R, ..., D)``."""
        if not self.use_context:
            return z
        xb = np.broadcast_to(x.reshape((x.shape[0],) + (1,) * (z.ndim - 2) + (x.shape[1],)),
                             z.shape[:-1] + (x.shape[1],))
        return np.concatenate([z, xb], axis=-1)

    def _treatment_draws(self, ctx: np.ndarray) -> np.ndarray:
        """Monte-Carlo draws of Z for every action in each row's context: ``(R, K, n, d)``."""
        if self.simulation:
            if self.n_score is None or self.n_score >= self.n_offline:
                return self.bank[self._rows, ctx].astype(np.float64)
            draws = self.rng.choice(self.n_offline, size=self.n_score, replace=False)
            actions = np.arange(self.n_actions)[None, :, None]
            return self.bank[self._rows[:, None, None], ctx[:, None, None], actions, draws].astype(np.float64)
        cells = self._action_cells(ctx)
        rows = self._rows[:, None]
        mean = self.treatment.sample_mean(self.rng, rows, cells)  # a posterior draw of each cell's mean
        scale = self.treatment.mode_covariance_factor(rows, cells)  # covariance at its posterior mode
        eps = self.rng.standard_normal(mean.shape[:2] + (self.n_mc, self.embedding_dim))
        return mean[:, :, None, :] + np.einsum("rkij,rknj->rkni", scale, eps)

    def _act(self, ctx, x):
        if self.n_seen < self.warmup:
            return self.rng.integers(self.n_actions, size=self.n_rows)
        torch = self._torch
        z = self._treatment_draws(ctx)  # (R, K, n, d)
        R, K, n, _ = z.shape
        inputs = torch.from_numpy(self._inputs(z, x).reshape(R, K * n, -1).astype(np.float32)).to(self.device)
        members = torch.from_numpy(self.rng.integers(self.n_members, size=R)).to(self.device)
        with torch.no_grad():
            out = self._forward(inputs, members).reshape(R, K, n).mean(dim=2)
        return out.cpu().numpy().argmax(axis=1)

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
        if self.n_seen >= self.warmup:
            self._train_step()
