"""Compiled CPU kernels (numba) of EnsembleGAMBITTS's one-hidden-layer ReLU nets.

Every (replication r, member m) net maps its D inputs u = [z, x] to

    f(u) = w2 . relu(W1^T u + b1) + b2,    W1 (D, H), b1 (H,), w2 (H,), b2 scalar,

with the weights of all nets in float32 arrays over a leading (R, M) grid: ``w1 (R, M, D, H)``,
``b1 (R, M, H)``, ``w2 (R, M, H)``, ``b2 (R, M)``. One kernel call serves every net of a round: a
net's weights and its hidden layer stay in the core's L1 cache while its inputs stream through,
which the batched matrix products of a tensor library (one pass over memory per operation) do not
manage at these sizes (D about 10, H = 64, a minibatch of 32).

Inputs that are exactly zero are skipped (the context one-hots are mostly zeros): adding ``0 * w``
changes nothing for finite weights. The hidden-unit sums may be reassociated (``fastmath`` with
``reassoc`` and ``contract`` only: NaN and infinities are still honoured), so outputs agree with
other implementations to float32 rounding, and repeat exactly run after run on one machine.
"""

from __future__ import annotations

import numba
import numpy as np

_FASTMATH = {"reassoc", "contract"}


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
def member_outputs(z, x, members, w1, b1, w2, b2, out):  # pragma: no cover - runs compiled
    """``out[r, i] = f_{r, members[r]}([z[r, i], x[r]])``: ``z (R, N, d)``, ``x (R, F)`` (F may be 0),
    ``members (R,)``, ``out (R, N)``; all float32 but ``members``.

    Hidden unit by hidden unit, each one pass over the row's N inputs (hundreds: a long loop that
    vectorises) taking the treatment coordinates four at a time (zero-padded), where a pass over the
    H units per input would be N short loops."""
    R, N, d = z.shape
    F = x.shape[1]
    H = b1.shape[2]
    n_blocks = (d + 3) // 4
    bias = np.empty(H, dtype=np.float32)
    zt = np.zeros((4 * n_blocks, N), dtype=np.float32)  # the row's inputs, coordinate by coordinate
    wz = np.zeros((H, 4 * n_blocks), dtype=np.float32)
    pre = np.empty(N, dtype=np.float32)
    acc = np.empty(N, dtype=np.float32)
    zero = np.float32(0.0)
    for r in range(R):
        m = members[r]
        # the context is the same for all N inputs of a row: its part of the first layer once per row
        for j in range(H):
            bias[j] = b1[r, m, j]
        for f in range(F):
            xf = x[r, f]
            if xf != 0.0:
                for j in range(H):
                    bias[j] += xf * w1[r, m, d + f, j]
        for k in range(d):
            for i in range(N):
                zt[k, i] = z[r, i, k]
            for j in range(H):
                wz[j, k] = w1[r, m, k, j]
        acc[:] = b2[r, m]
        for j in range(H):
            c, wj = bias[j], w2[r, m, j]
            if n_blocks == 1:  # d <= 4: the whole unit in one pass
                a0, a1, a2, a3 = wz[j, 0], wz[j, 1], wz[j, 2], wz[j, 3]
                for i in range(N):
                    acc[i] += max(c + zt[0, i] * a0 + zt[1, i] * a1 + zt[2, i] * a2 + zt[3, i] * a3, zero) * wj
            else:
                pre[:] = c
                for k in range(0, 4 * n_blocks, 4):
                    a0, a1, a2, a3 = wz[j, k], wz[j, k + 1], wz[j, k + 2], wz[j, k + 3]
                    for i in range(N):
                        pre[i] += zt[k, i] * a0 + zt[k + 1, i] * a1 + zt[k + 2, i] * a2 + zt[k + 3, i] * a3
                for i in range(N):
                    acc[i] += max(pre[i], zero) * wj
        out[r] = acc


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
def _adam(w, m, v, g, beta1, beta2, step_size, bias2_sqrt, eps):  # pragma: no cover - runs compiled
    """One Adam step on flat float32 arrays, as torch's fused Adam writes it (bias-corrected); every
    constant is float32, so nothing is computed in float64."""
    one = np.float32(1.0)
    for i in range(w.shape[0]):
        m[i] += (one - beta1) * (g[i] - m[i])
        v[i] = beta2 * v[i] + (one - beta2) * g[i] * g[i]
        w[i] -= step_size * m[i] / (np.sqrt(v[i]) / bias2_sqrt + eps)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
def train_step(buf_x, buf_y, buf_eps, idx, sigma, loc, scale,  # pragma: no cover - runs compiled
               w1, b1, w2, b2, m1, mb1, m2, mb2, v1, vb1, v2, vb2,
               lr, weight_decay, step, beta1, beta2, eps):
    """One Adam step of every net on its own minibatch of the replay buffer.

    Net (r, m) trains on the buffer slots ``idx[r, m]`` (``(R, M, B)``) of row r: inputs ``buf_x[r, s]``
    (``(R, S, D)`` float32) and perturbed, standardised targets
    ``((buf_y[r, s] + sigma[r] * buf_eps[r, s, m]) - loc[r]) / scale[r]`` (float64, then float32), with
    the loss ``mean_b (f(u_b) - target_b)^2 + weight_decay * (|W1|^2 + |w2|^2)``. Gradient (written out:
    three lines for one hidden layer) and Adam update are fused per net, so no gradient array of the
    whole grid is ever stored. Adam moments ``m*``, ``v*`` are laid out like the weights; ``step`` is the
    step count after this one.
    """
    R, M, B = idx.shape
    D = buf_x.shape[2]
    H = b1.shape[2]
    g1 = np.empty((D, H), dtype=np.float32)
    gb1 = np.empty(H, dtype=np.float32)
    g2 = np.empty(H, dtype=np.float32)
    gb2 = np.empty(1, dtype=np.float32)
    h = np.empty(H, dtype=np.float32)
    inputs = np.empty((M, B, D), dtype=np.float32)
    targets = np.empty((M, B), dtype=np.float32)
    grad_scale = np.float32(2.0 / B)
    decay = np.float32(2.0 * weight_decay)
    beta1_32, beta2_32 = np.float32(beta1), np.float32(beta2)
    step_size = np.float32(lr / (1.0 - beta1**step))
    bias2_sqrt = np.float32(np.sqrt(1.0 - beta2**step))
    eps_32 = np.float32(eps)
    for r in range(R):
        # the row's minibatches gathered first: a loop of independent loads keeps many of the cache misses
        # of these random reads in flight at once, where inside the arithmetic they would come one by one
        for m in range(M):
            for b in range(B):
                s = idx[r, m, b]
                for k in range(D):
                    inputs[m, b, k] = buf_x[r, s, k]
                targets[m, b] = np.float32((buf_y[r, s] + sigma[r] * buf_eps[r, s, m] - loc[r]) / scale[r])
        for m in range(M):
            g1[:] = 0.0
            gb1[:] = 0.0
            g2[:] = 0.0
            gb2[0] = 0.0
            for b in range(B):
                for j in range(H):
                    h[j] = b1[r, m, j]
                for k in range(D):
                    uk = inputs[m, b, k]
                    if uk != 0.0:
                        for j in range(H):
                            h[j] += uk * w1[r, m, k, j]
                acc = b2[r, m]
                for j in range(H):
                    h[j] = max(h[j], np.float32(0.0))
                    acc += h[j] * w2[r, m, j]
                g = (acc - targets[m, b]) * grad_scale  # d loss / d prediction
                gb2[0] += g
                for j in range(H):
                    g2[j] += h[j] * g
                    h[j] = g * w2[r, m, j] if h[j] > 0.0 else np.float32(0.0)  # d loss / d hidden, ReLU-masked
                    gb1[j] += h[j]
                for k in range(D):
                    uk = inputs[m, b, k]
                    if uk != 0.0:
                        for j in range(H):
                            g1[k, j] += uk * h[j]
            if decay != 0.0:
                for k in range(D):
                    for j in range(H):
                        g1[k, j] += decay * w1[r, m, k, j]
                for j in range(H):
                    g2[j] += decay * w2[r, m, j]
            _adam(w1[r, m].reshape(D * H), m1[r, m].reshape(D * H), v1[r, m].reshape(D * H), g1.reshape(D * H),
                  beta1_32, beta2_32, step_size, bias2_sqrt, eps_32)
            _adam(b1[r, m], mb1[r, m], vb1[r, m], gb1, beta1_32, beta2_32, step_size, bias2_sqrt, eps_32)
            _adam(w2[r, m], m2[r, m], v2[r, m], g2, beta1_32, beta2_32, step_size, bias2_sqrt, eps_32)
            _adam(b2[r, m : m + 1], mb2[r, m : m + 1], vb2[r, m : m + 1], gb2, beta1_32, beta2_32, step_size,
                  bias2_sqrt, eps_32)
