"""Conjugate posteriors used by the Thompson-sampling agents, batched over replications.

Every class keeps a leading replication axis ``R`` on its state, updates all
replications at once, and samples with one call. The linear models keep a
Cholesky factor of the posterior precision and update it by rank-one
(Givens-free) updates; no matrix is ever inverted.

* :class:`NormalGamma` -- unknown mean and precision per cell (standard TS).
* :class:`LinearGaussian` -- Bayesian linear regression with a fixed noise
  variance or a learned one (Normal-Inverse-Gamma).
* :class:`NormalInverseWishart` -- unknown mean and covariance of a
  d-dimensional treatment embedding per cell (foGAMBITTS).

Each class lists its learned state explicitly: ``state()`` returns copies of
the named arrays, ``load_state(state)`` checks names, shapes and dtypes and
puts copies back. The prior (constructor arguments) is not state.

Forgetting (non-stationary problems): each class takes ``discount`` (gamma in
(0, 1]). Every ``update`` call is one round; an observation made s rounds ago
then weighs gamma^s in every sufficient statistic, while the prior keeps its
full weight (the posterior is the prior times the likelihood of the data raised
to those weights). ``discount=1`` (the default) is the plain posterior, computed
exactly as without the option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from agents.state import State, check_state, snapshot
from gambit_gym.validation import check_array, check_float

# -- batched triangular algebra ------------------------------------------------------------
# Each kernel is written twice with the same arithmetic: as plain loops over (batch row, entry)
# that numba compiles when it is installed (the ``fast`` extra), so that a round at R = 1 costs
# microseconds instead of a Python loop over p of small numpy calls, and as numpy operations over
# the batch (one Python step per column) when it is not. Every entry goes through the same IEEE
# operations in the same order in both (no reductions, no fused multiply-adds), so the results are
# identical bit for bit either way. The loop orders are the faster of the two measured (rows or
# columns of L, benchmarks/bench_posteriors.py), from p = 11 to LinTS's p = 1,608 at K = 200.
# The per-round kernels further down (a posterior's whole update or draw in one call) exist for the same
# reason: at R = 1 each numpy call on a one-element array costs ~0.3-0.5 us, the compiled loop ~0.4 us in all.
try:
    import numba
except ImportError:  # the numpy form of every kernel serves
    numba = None


def _jitable(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` unchanged, made callable from the compiled kernels too (when numba is installed)."""
    return f if numba is None else numba.extending.register_jitable(f)


@_jitable
def _rank_one_loops(L, x):  # pragma: no cover - runs compiled
    n, p = x.shape
    w = np.empty(p)
    for row in range(n):
        for i in range(p):
            w[i] = x[row, i]
        for k in range(p):  # column by column: the updates within a column are independent (pipelined)
            lkk = L[row, k, k]
            r = np.hypot(lkk, w[k])
            c = r / lkk
            s = w[k] / lkk
            L[row, k, k] = r
            for i in range(k + 1, p):
                col = (L[row, i, k] + s * w[i]) / c
                L[row, i, k] = col
                w[i] = c * w[i] - s * col


@_jitable
def _solve_lower_loops(L, w):  # pragma: no cover - runs compiled
    n, p = w.shape
    for row in range(n):
        for i in range(p):
            acc = w[row, i]
            for k in range(i):
                acc -= L[row, i, k] * w[row, k]
            w[row, i] = acc / L[row, i, i]


@_jitable
def _solve_lower_transpose_loops(L, t):  # pragma: no cover - runs compiled
    n, p = t.shape
    for row in range(n):
        for k in range(p - 1, -1, -1):
            tk = t[row, k] / L[row, k, k]
            t[row, k] = tk
            for j in range(k):
                t[row, j] -= L[row, k, j] * tk


def _linear_update_loops(L, b, yy, n, phi, y):  # pragma: no cover - runs compiled
    """LinearGaussian.update's data step for every row: rank-one update of ``L`` by ``phi``, then
    ``b += y phi``, ``yy += y^2``, ``n += 1`` (the numpy form's operations, in its order)."""
    _rank_one_loops(L, phi)
    rows, p = phi.shape
    for row in range(rows):
        for i in range(p):
            b[row, i] += y[row] * phi[row, i]
        yy[row] += y[row] * y[row]
        n[row] += 1.0


def _noise_params_loops(n, yy, quad, a0, b0, prior_quad, out):  # pragma: no cover - runs compiled
    """LinearGaussian.noise_params given ``quad = |w|^2`` per row: ``out[0] = a_n``, ``out[1] = b_n``."""
    for row in range(n.shape[0]):
        out[0, row] = a0 + n[row] / 2
        resid = yy[row] + prior_quad - quad[row]
        if not (resid >= 0.0 or resid != resid):  # np.maximum(resid, 0.0): NaN passes through
            resid = 0.0
        out[1, row] = b0 + 0.5 * resid


def _perturb_solve_loops(L, w, v, eps):  # pragma: no cover - runs compiled
    """LinearGaussian.sample's last step, into ``eps``: ``L^{-T} (w + sqrt(v) eps)`` per row."""
    rows, p = w.shape
    for row in range(rows):
        scale = np.sqrt(v[row])
        for i in range(p):
            eps[row, i] = w[row, i] + scale * eps[row, i]
    _solve_lower_transpose_loops(L, eps)


def _normal_gamma_params_loops(count, mean, ssq, rows, cells, m, nu, alpha, beta, out):  # pragma: no cover
    """NormalGamma._params of cells ``cells (n, K)`` of rows ``rows (n, 1)`` into ``out (4, n, K)``: alpha_n,
    beta_n, loc, kappa. False (nothing computed) when an index is out of range: numpy then raises."""
    n_rows, n_cells = count.shape
    for i in range(cells.shape[0]):
        r = rows[i, 0]
        if r < 0 or r >= n_rows:
            return False
        for j in range(cells.shape[1]):
            if cells[i, j] < 0 or cells[i, j] >= n_cells:
                return False
    numer = nu * m
    for i in range(cells.shape[0]):
        r = rows[i, 0]
        for j in range(cells.shape[1]):
            c = cells[i, j]
            cnt, ybar = count[r, c], mean[r, c]
            dev = ybar - m
            out[0, i, j] = alpha + cnt / 2
            out[1, i, j] = beta + ssq[r, c] / 2 + cnt * nu * (dev * dev) / (2 * (cnt + nu))
            out[2, i, j] = (numer + cnt * ybar) / (nu + cnt)
            out[3, i, j] = nu + cnt
    return True


def _normal_gamma_draw_loops(params, g, z):  # pragma: no cover - runs compiled
    """NormalGamma.sample's draw from ``params (4, n, K)`` (_params) and the gamma draws ``g``, into
    ``z`` (standard normals): ``loc + z / sqrt(g / beta_n * kappa)``."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] = params[2, i, j] + z[i, j] / np.sqrt(g[i, j] / params[1, i, j] * params[3, i, j])


def _normal_gamma_update_loops(count, mean, ssq, rows, cells, y, discount):  # pragma: no cover
    """NormalGamma.update in place. False (nothing changed) unless ``rows`` strictly increase (so no row is
    discounted twice, as in numpy's fancy-indexed form) and every index is in range."""
    n_rows, n_cells = count.shape
    prev = -1
    for i in range(rows.shape[0]):
        if rows[i] <= prev or rows[i] >= n_rows or cells[i] < 0 or cells[i] >= n_cells:
            return False
        prev = rows[i]
    for i in range(rows.shape[0]):
        r, c = rows[i], cells[i]
        if discount < 1.0:
            for j in range(n_cells):
                count[r, j] *= discount
                ssq[r, j] *= discount
        cnt = count[r, c] + 1.0
        old = mean[r, c]
        delta = y[i] - old
        new = old + delta / cnt
        ssq[r, c] += delta * (y[i] - new)
        mean[r, c] = new
        count[r, c] = cnt
    return True


_compiled = None if numba is None else {
    f.__name__: numba.njit(cache=True, nogil=True)(f)
    for f in (_rank_one_loops, _solve_lower_loops, _solve_lower_transpose_loops, _linear_update_loops,
              _noise_params_loops, _perturb_solve_loops, _normal_gamma_params_loops, _normal_gamma_draw_loops,
              _normal_gamma_update_loops)
}

try:  # np.einsum without its Python wrapper (~0.7 us a call): the very C routine np.einsum runs (optimize off)
    from numpy._core.multiarray import c_einsum as einsum
except ImportError:  # pragma: no cover - older numpy
    einsum = np.einsum


def _flat_batch(L: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``L (..., p, p)`` and ``v (..., p)`` (same batch shape, ``v`` C-contiguous float64) as ``(n, p, p)`` and
    ``(n, p)`` views for the compiled kernels, or None when they are not available or ``L`` is not such an array."""
    if _compiled is None or L.dtype != np.float64 or not L.flags.c_contiguous or L.ndim < 2:
        return None
    if L.ndim == 3:  # already (n, p, p) and (n, p): no reshape (~0.3 us a call at R = 1)
        return L, v
    p = L.shape[-1]
    return L.reshape(-1, p, p), v.reshape(-1, p)


def _batch_copy(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A fresh C-contiguous float64 copy of ``b`` with the batch shape of ``L`` (broadcast if needed)."""
    if b.shape != L.shape[:-1]:
        b = np.broadcast_to(b, L.shape[:-1])
    return np.array(b, dtype=np.float64, order="C")


def cholesky_rank_one_update(L: np.ndarray, x: np.ndarray) -> None:
    """In place: ``L L^T + x x^T`` for every batch row. ``L (..., p, p)`` lower, ``x (..., p)``."""
    x = _batch_copy(L, x)  # a copy: the numpy form overwrites it
    flat = _flat_batch(L, x)
    if flat is not None:
        _compiled["_rank_one_loops"](*flat)
        return
    p = L.shape[-1]
    for k in range(p):
        lkk = L[..., k, k]
        r = np.hypot(lkk, x[..., k])
        c = r / lkk
        s = x[..., k] / lkk
        L[..., k, k] = r
        if k + 1 < p:
            col = (L[..., k + 1 :, k] + s[..., None] * x[..., k + 1 :]) / c[..., None]
            L[..., k + 1 :, k] = col
            x[..., k + 1 :] = c[..., None] * x[..., k + 1 :] - s[..., None] * col


def solve_lower(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L^{-1} b`` by forward substitution, batched: ``L (..., p, p)``, ``b (..., p)``."""
    w = _batch_copy(L, b)
    flat = _flat_batch(L, w)
    if flat is not None:
        _compiled["_solve_lower_loops"](*flat)  # in place, through the view
        return w
    for k in range(L.shape[-1]):
        w[..., k] /= L[..., k, k]
        w[..., k + 1 :] -= L[..., k + 1 :, k] * w[..., k, None]
    return w


def solve_lower_transpose(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L^{-T} b`` by back substitution, batched: ``L (..., p, p)``, ``b (..., p)``."""
    t = _batch_copy(L, b)
    flat = _flat_batch(L, t)
    if flat is not None:
        _compiled["_solve_lower_transpose_loops"](*flat)
        return t
    for k in range(L.shape[-1] - 1, -1, -1):
        t[..., k] /= L[..., k, k]
        t[..., :k] -= L[..., k, :k] * t[..., k, None]
    return t


def check_discount(discount: float) -> float:
    """The forgetting factor gamma, a number in (0, 1] (1: no forgetting).

    Example:
        >>> check_discount(0.99)
        0.99
    """
    gamma = check_float("discount", discount, minimum=0.0, strict=True)
    if gamma > 1.0:
        raise ValueError(f"discount: expected a number in (0, 1] (1 = no forgetting), got {gamma}")
    return gamma


def _standard_gamma(rng: np.random.Generator, shape: np.ndarray) -> np.ndarray:
    """``rng.gamma(shape)`` (unit scale), the same draws from the same stream: a Generator call with an
    array of shapes costs ~10 us of argument checking however small the array, a scalar call ~0.6 us, so
    small arrays (a single replication's K arms) are drawn one scalar at a time, in the same C order."""
    if shape.size <= 8:
        return np.array([rng.standard_gamma(a) for a in shape.ravel().tolist()]).reshape(shape.shape)
    return rng.standard_gamma(shape)


# -- Normal-Gamma --------------------------------------------------------------------------
class NormalGamma:
    """Independent Normal-Gamma models, one per (replication, cell).

    Prior: tau ~ Gamma(alpha, rate=beta), mu | tau ~ N(m, 1 / (nu tau)). After
    N observations with mean ybar and centred sum of squares S:
    alpha_N = alpha + N/2, beta_N = beta + S/2 + N nu (ybar - m)^2 / (2 (N + nu)),
    mu | tau ~ N((nu m + N ybar) / (nu + N), 1 / (tau (nu + N))).

    With ``discount`` gamma < 1, every cell of an updated row is discounted each
    ``update`` call (a round), played or not: N, ybar and S become the weighted
    count, mean and centred sum of squares with weights gamma^(rounds since).

    Example:
        >>> import numpy as np
        >>> ng = NormalGamma(n_rows=2, n_cells=3, m=0.0, nu=1.0, alpha=1.0, beta=1.0)
        >>> ng.update(np.array([0, 1]), np.array([2, 2]), np.array([1.0, 3.0]))
        >>> ng.posterior_mean()[:, 2]
        array([0.5, 1.5])
    """

    def __init__(self, n_rows: int, n_cells: int, m: float, nu: float, alpha: float, beta: float,
                 discount: float = 1.0) -> None:
        self.discount = check_discount(discount)
        self.m = check_float("prior_mean", m)
        self.nu = check_float("prior_count", nu, minimum=0.0, strict=True)
        self.alpha = check_float("prior_shape", alpha, minimum=0.0, strict=True)
        self.beta = check_float("prior_rate", beta, minimum=0.0, strict=True)
        self.count = np.zeros((n_rows, n_cells))
        self.mean = np.zeros((n_rows, n_cells))
        self.ssq = np.zeros((n_rows, n_cells))

    def state(self) -> State:
        """Copies of the sufficient statistics ``count``, ``mean``, ``ssq``, each ``(R, cells)``."""
        return snapshot({"count": self.count, "mean": self.mean, "ssq": self.ssq})

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` returned (same names, shapes and dtypes)."""
        state = check_state(type(self).__name__, self.state(), state)
        self.count, self.mean, self.ssq = state["count"], state["mean"], state["ssq"]

    def update(self, rows: np.ndarray, cells: np.ndarray, y: np.ndarray) -> None:
        """Add one observation ``y[i]`` to cell ``cells[i]`` of row ``rows[i]`` (Welford; weighted Welford
        after discounting every cell of the rows when ``discount < 1``: the mean keeps, count and S scale)."""
        if self._compiled_update(rows, cells, y):
            return
        if self.discount < 1.0:
            self.count[rows] *= self.discount
            self.ssq[rows] *= self.discount
        n = self.count[rows, cells] + 1.0
        old_mean = self.mean[rows, cells]
        delta = y - old_mean
        mean = old_mean + delta / n
        self.ssq[rows, cells] += delta * (y - mean)
        self.mean[rows, cells] = mean
        self.count[rows, cells] = n

    def _compiled_update(self, rows: np.ndarray, cells: np.ndarray, y: np.ndarray) -> bool:
        """:meth:`update` by the compiled kernel for an agent's arguments (``rows``, ``cells`` integer and ``y``
        float64 arrays, all ``(n,)``); False, nothing changed, where the numpy form serves."""
        if (_compiled is None or type(rows) is not np.ndarray or type(cells) is not np.ndarray
                or type(y) is not np.ndarray or rows.ndim != 1 or not rows.shape == cells.shape == y.shape
                or rows.dtype.kind != "i" or cells.dtype.kind != "i" or y.dtype != np.float64):
            return False
        return _compiled["_normal_gamma_update_loops"](self.count, self.mean, self.ssq, rows, cells, y, self.discount)

    def _params(self, rows, cells):
        n, ybar, ssq = self.count[rows, cells], self.mean[rows, cells], self.ssq[rows, cells]
        alpha_n = self.alpha + n / 2
        beta_n = self.beta + ssq / 2 + n * self.nu * (ybar - self.m) ** 2 / (2 * (n + self.nu))
        loc = (self.nu * self.m + n * ybar) / (self.nu + n)
        return alpha_n, beta_n, loc, self.nu + n

    def _compiled_params(self, rows: np.ndarray | slice, cells: np.ndarray | slice) -> np.ndarray | None:
        """:meth:`_params` stacked ``(4, n, K)`` by the compiled kernel for an agent's indices (``rows (n, 1)``
        and ``cells (n, K)`` integer arrays), or None where the numpy form serves."""
        if (_compiled is None or type(rows) is not np.ndarray or type(cells) is not np.ndarray or rows.ndim != 2
                or cells.ndim != 2 or rows.shape != (cells.shape[0], 1) or rows.dtype.kind != "i"
                or cells.dtype.kind != "i"):
            return None
        out = np.empty((4, *cells.shape))
        if not _compiled["_normal_gamma_params_loops"](self.count, self.mean, self.ssq, rows, cells, self.m, self.nu,
                                                       self.alpha, self.beta, out):
            return None  # an index out of range: numpy's indexing raises the error
        return out

    def posterior_mean(self) -> np.ndarray:
        return self._params(slice(None), slice(None))[2]

    def sample(self, rng: np.random.Generator, rows=slice(None), cells=slice(None)) -> np.ndarray:
        """One joint draw of the mean for the selected cells (fancy indices broadcast)."""
        params = self._compiled_params(rows, cells)
        if params is None:
            alpha_n, beta_n, loc, kappa = self._params(rows, cells)
            tau = _standard_gamma(rng, alpha_n) / beta_n
            return loc + rng.standard_normal(loc.shape) / np.sqrt(tau * kappa)
        g = _standard_gamma(rng, params[0])  # the same draws, in the same order, as the numpy form
        z = rng.standard_normal(params.shape[1:])
        _compiled["_normal_gamma_draw_loops"](params, g, z)
        return z


# -- Bayesian linear regression -------------------------------------------------------------
class LinearGaussian:
    """Bayesian linear regression y = theta^T phi + eps, eps ~ N(0, v), batched over rows.

    Prior theta | v ~ N(mu0, v B0^{-1}). Posterior: B = B0 + sum phi phi^T,
    b = B0 mu0 + sum y phi, mu = B^{-1} b. With ``noise_var=None`` the variance
    is learned: v ~ InvGamma(a0, b0) a priori and
    a_n = a0 + n/2, b_n = b0 + (y^T y + mu0^T B0 mu0 - mu^T B mu) / 2.
    With a number, v is fixed at it.

    With ``discount`` gamma < 1 each update first discounts the data part:
    B <- gamma B + (1 - gamma) B0, b <- gamma b + (1 - gamma) B0 mu0, yy and n
    times gamma; so B = B0 + sum gamma^(n-i) phi_i phi_i^T and so on (weighted
    least squares, the prior at full weight). The factor is scaled by
    sqrt(gamma) and (1 - gamma) B0 added as p rank-one updates (columns of its
    Cholesky factor), then phi's rank-one update as usual.

    State: ``chol`` (R, p, p), the lower Cholesky factor of B; ``b`` (R, p);
    ``yy`` and ``n`` (R,).
    """

    def __init__(
        self,
        n_rows: int,
        prior_mean: np.ndarray,
        prior_precision: np.ndarray,
        noise_var: float | None = None,
        a0: float = 2.0,
        b0: float = 1.0,
        discount: float = 1.0,
    ) -> None:
        self.discount = check_discount(discount)
        mu0 = check_array("prior_mean", prior_mean, (None,))
        p = mu0.shape[0]
        B0 = np.asarray(prior_precision, dtype=np.float64)
        if B0.ndim == 1:
            B0 = np.diag(B0)
        B0 = check_array("prior_precision", B0, (p, p))
        try:
            L0 = np.linalg.cholesky(B0)
        except np.linalg.LinAlgError:
            raise ValueError("prior_precision: must be symmetric positive definite") from None
        self.noise_var = None if noise_var is None else check_float("noise_var", noise_var, 0.0, strict=True)
        self.a0 = check_float("a0", a0, minimum=0.0, strict=True)
        self.b0 = check_float("b0", b0, minimum=0.0, strict=True)
        self.mu0 = mu0
        self.prior_quad = float(mu0 @ B0 @ mu0)
        self.prior_chol, self.prior_b = L0, B0 @ mu0  # what a discounted update restores (1 - gamma) of
        self.chol = np.broadcast_to(L0, (n_rows, p, p)).copy()
        self.b = np.broadcast_to(B0 @ mu0, (n_rows, p)).copy()
        self.yy = np.zeros(n_rows)
        self.n = np.zeros(n_rows)

    @property
    def dim(self) -> int:
        return self.b.shape[1]

    def state(self) -> State:
        """Copies of ``chol`` (R, p, p), ``b`` (R, p), ``yy`` and ``n`` (R,)."""
        return snapshot({"chol": self.chol, "b": self.b, "yy": self.yy, "n": self.n})

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` returned (same names, shapes and dtypes)."""
        state = check_state(type(self).__name__, self.state(), state)
        self.chol, self.b, self.yy, self.n = state["chol"], state["b"], state["yy"], state["n"]

    def update(self, phi: np.ndarray, y: np.ndarray) -> None:
        """One observation per row: ``phi (R, p)``, ``y (R,)``."""
        if self.discount < 1.0:
            self._discount_data()
        if (_compiled is not None and self.chol.flags.c_contiguous and type(phi) is np.ndarray
                and type(y) is np.ndarray and phi.shape == self.b.shape and y.shape == self.n.shape
                and phi.dtype == y.dtype == np.float64):
            _compiled["_linear_update_loops"](self.chol, self.b, self.yy, self.n, phi, y)
            return
        cholesky_rank_one_update(self.chol, phi)
        self.b += y[:, None] * phi
        self.yy += y * y
        self.n += 1.0

    def _discount_data(self) -> None:
        """The data part of every statistic times gamma, the prior kept whole (see the class doc)."""
        g = self.discount
        self.chol *= np.sqrt(g)
        restore = np.sqrt(1.0 - g) * self.prior_chol
        for j in range(self.dim):  # (1 - g) B0 = sum_j c_j c_j^T over the columns c_j of sqrt(1 - g) L0
            if np.any(restore[:, j]):
                cholesky_rank_one_update(self.chol, restore[:, j])
        self.b = g * self.b + (1.0 - g) * self.prior_b
        self.yy *= g
        self.n *= g

    def _whitened(self) -> np.ndarray:
        return solve_lower(self.chol, self.b)  # w = L^{-1} b, so mu = L^{-T} w and mu^T B mu = |w|^2

    def posterior_mean(self) -> np.ndarray:
        return solve_lower_transpose(self.chol, self._whitened())

    def noise_params(self, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Inverse-gamma shape and scale of v (learned-variance model)."""
        w = self._whitened() if w is None else w
        quad = einsum("rp,rp->r", w, w)
        if _compiled is not None and quad.shape == self.n.shape:
            out = np.empty((2, len(quad)))
            _compiled["_noise_params_loops"](self.n, self.yy, quad, self.a0, self.b0, self.prior_quad, out)
            return out[0], out[1]
        a_n = self.a0 + self.n / 2
        b_n = self.b0 + 0.5 * np.maximum(self.yy + self.prior_quad - quad, 0.0)
        return a_n, b_n

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of theta per row, ``(R, p)``."""
        w = self._whitened()
        if self.noise_var is None:
            a_n, b_n = self.noise_params(w)
            v = b_n / _standard_gamma(rng, a_n)
        else:
            v = np.full(len(w), self.noise_var)
        eps = rng.standard_normal(w.shape)
        if _compiled is not None and self.chol.flags.c_contiguous:
            _compiled["_perturb_solve_loops"](self.chol, w, v, eps)  # into eps
            return eps
        return solve_lower_transpose(self.chol, w + np.sqrt(v)[:, None] * eps)


# -- Normal-Inverse-Wishart -----------------------------------------------------------------
class NormalInverseWishart:
    """Unknown mean and covariance of Z per (row, cell), Z in R^d.

    Prior (the paper's defaults): mu0 = 0, Psi0 = I, kappa0 = 1, nu0 = d.
    Sequential update for one z: Psi <- Psi + kappa/(kappa+1) (z - m)(z - m)^T,
    m <- (kappa m + z)/(kappa + 1), kappa += 1, nu += 1, which equals the batch
    formula. ``Psi`` is stored as its Cholesky factor.

    ``sample_mean`` draws the treatment mean from its exact marginal, the
    multivariate t with nu - d + 1 degrees of freedom, location m and scale
    Psi / (kappa (nu - d + 1)): the same law as first drawing
    Sigma ~ IW(Psi, nu) and then mean ~ N(m, Sigma / kappa).

    With ``discount`` gamma < 1 every ``update`` call is a round and a treatment
    seen s rounds ago weighs gamma^s; cells not played decay towards the prior.
    The decay is applied lazily, when a cell is updated or sampled: data
    discounted by g (= gamma^rounds since the cell was last brought up to date)
    turn (m, kappa, Psi, nu) into kappa' = g kappa + (1 - g) kappa0,
    m' = (g kappa m + (1 - g) kappa0 mu0) / kappa', nu' = g nu + (1 - g) nu0,
    Psi' = g Psi + (1 - g) Psi0 + g kappa (1 - g) kappa0 / kappa' (m - mu0)(m - mu0)^T.
    The state then also holds ``rounds`` and ``last`` (R, cells), the round
    each cell was last brought up to date. :meth:`_prior` gives each cell's
    prior (a subclass may keep one prior per cell).
    """

    def __init__(
        self,
        n_rows: int,
        n_cells: int,
        dim: int,
        mu0: np.ndarray | float = 0.0,
        psi0: np.ndarray | float = 1.0,
        kappa0: float = 1.0,
        nu0: float | None = None,
        discount: float = 1.0,
    ) -> None:
        self.discount = check_discount(discount)
        d = dim
        mu0 = np.broadcast_to(np.asarray(mu0, dtype=np.float64), (d,))
        psi0 = np.asarray(psi0, dtype=np.float64)
        psi0 = psi0 * np.eye(d) if psi0.ndim == 0 else check_array("psi0", psi0, (d, d))
        self.kappa0 = check_float("kappa0", kappa0, minimum=0.0, strict=True)
        self.nu0 = float(d) if nu0 is None else check_float("nu0", nu0)
        if self.nu0 <= d - 1:
            raise ValueError(f"nu0: must be > d - 1 = {d - 1}, got {self.nu0}")
        try:
            L0 = np.linalg.cholesky(psi0)
        except np.linalg.LinAlgError:
            raise ValueError("psi0: must be symmetric positive definite") from None
        self.dim = d
        self.prior_mean, self.prior_chol_psi = mu0, L0
        self.mean = np.broadcast_to(mu0, (n_rows, n_cells, d)).copy()
        self.chol_psi = np.broadcast_to(L0, (n_rows, n_cells, d, d)).copy()
        self.kappa = np.full((n_rows, n_cells), self.kappa0)
        self.nu = np.full((n_rows, n_cells), self.nu0)
        if self.discount < 1.0:
            self.rounds = 0
            self.last = np.zeros((n_rows, n_cells))

    def state(self) -> State:
        """Copies of ``mean`` (R, cells, d), ``chol_psi`` (R, cells, d, d), ``kappa`` and ``nu`` (R, cells);
        with ``discount < 1`` also ``rounds`` (int) and ``last`` (R, cells)."""
        state = {"mean": self.mean, "chol_psi": self.chol_psi, "kappa": self.kappa, "nu": self.nu}
        if self.discount < 1.0:
            state.update(rounds=self.rounds, last=self.last)
        return snapshot(state)

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` returned (same names, shapes and dtypes)."""
        state = check_state(type(self).__name__, self.state(), state)
        self.mean, self.chol_psi, self.kappa, self.nu = state["mean"], state["chol_psi"], state["kappa"], state["nu"]
        if self.discount < 1.0:
            self.rounds, self.last = state["rounds"], state["last"]

    def _prior(self, rows: np.ndarray | slice, cells: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """Prior mean and Cholesky factor of Psi0 of the selected cells, broadcastable to ``(..., d)`` and
        ``(..., d, d)``: one prior for every cell here."""
        return self.prior_mean, self.prior_chol_psi

    def _decayed(self, rows, cells):
        """The discounted posterior of the selected cells in parts: ``(m', kappa', nu', g, L, L0, c, v)`` with
        Psi' = g L L^T + (1 - g) L0 L0^T + c v v^T (the class doc's formulas)."""
        m, L = self.mean[rows, cells], self.chol_psi[rows, cells]
        kappa, nu = self.kappa[rows, cells], self.nu[rows, cells]
        g = self.discount ** (self.rounds - self.last[rows, cells])
        mu0, L0 = self._prior(rows, cells)
        keep, restore = g * kappa, (1.0 - g) * self.kappa0
        kappa_g = keep + restore
        m_g = (keep[..., None] * m + restore[..., None] * mu0) / kappa_g[..., None]
        return m_g, kappa_g, g * nu + (1.0 - g) * self.nu0, g, L, L0, keep * restore / kappa_g, m - mu0

    def current(self, rows: np.ndarray | slice = slice(None), cells: np.ndarray | slice = slice(None)
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, chol_psi, kappa, nu)`` of the selected cells now: the stored values, discounted for the
        rounds since each cell was last brought up to date when ``discount < 1`` (copies either way)."""
        if self.discount == 1.0:
            return (self.mean[rows, cells].copy(), self.chol_psi[rows, cells].copy(), self.kappa[rows, cells].copy(),
                    self.nu[rows, cells].copy())
        m_g, kappa_g, nu_g, g, L, L0, c, v = self._decayed(rows, cells)
        psi = (g[..., None, None] * (L @ np.swapaxes(L, -1, -2))
               + (1.0 - g)[..., None, None] * (L0 @ np.swapaxes(L0, -1, -2))
               + c[..., None, None] * (v[..., :, None] * v[..., None, :]))
        return m_g, np.linalg.cholesky(psi), kappa_g, nu_g

    def update(self, rows: np.ndarray, cells: np.ndarray, z: np.ndarray) -> None:
        if self.discount < 1.0:
            self.rounds += 1
            m, L, kappa, nu = self.current(rows, cells)
            self.last[rows, cells] = self.rounds
            self.nu[rows, cells] = nu
        elif len(rows) == 1:  # one row: basic indexing gives views of the cell, nothing gathered or scattered
            r, c = int(rows[0]), int(cells[0])
            kappa, m = self.kappa[r, c], self.mean[r, c]
            cholesky_rank_one_update(self.chol_psi[r, c], np.sqrt(kappa / (kappa + 1)) * (z[0] - m))
            self.mean[r, c] = (kappa * m + z[0]) / (kappa + 1)
            self.kappa[r, c] = kappa + 1
            self.nu[r, c] += 1
            return
        else:
            kappa = self.kappa[rows, cells]
            m = self.mean[rows, cells]
            L = self.chol_psi[rows, cells]
        cholesky_rank_one_update(L, np.sqrt(kappa / (kappa + 1))[:, None] * (z - m))
        self.chol_psi[rows, cells] = L
        self.mean[rows, cells] = (kappa[:, None] * m + z) / (kappa + 1)[:, None]
        self.kappa[rows, cells] = kappa + 1
        self.nu[rows, cells] += 1

    def psi(self) -> np.ndarray:
        return self.chol_psi @ np.swapaxes(self.chol_psi, -1, -2)

    def mode_covariance_factor(self, rows: np.ndarray | slice = slice(None),
                               cells: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Lower Cholesky factor of the posterior mode of the covariance, Psi / (nu + d + 1): ``(..., d, d)``."""
        return self.chol_psi[rows, cells] / np.sqrt(self.nu[rows, cells] + self.dim + 1)[..., None, None]

    def sample_mean(self, rng: np.random.Generator, rows=slice(None), cells=slice(None)) -> np.ndarray:
        """Draw the treatment mean of the selected cells: ``(..., d)``."""
        if self.discount < 1.0:
            return self._sample_decayed_mean(rng, rows, cells)
        m = self.mean[rows, cells]
        L = self.chol_psi[rows, cells]
        df = self.nu[rows, cells] - self.dim + 1
        g = einsum("...ij,...j->...i", L, rng.standard_normal(m.shape))
        chi2 = 2.0 * _standard_gamma(rng, df / 2.0)  # rng.chisquare(df), the same draws
        return m + g / np.sqrt(self.kappa[rows, cells] * chi2)[..., None]

    def _sample_decayed_mean(self, rng: np.random.Generator, rows, cells) -> np.ndarray:
        """The discounted cells' draw, the same law without a Cholesky factor of Psi': a N(0, Psi') vector is
        sqrt(g) L e1 + sqrt(1 - g) L0 e2 + sqrt(c) v e3 for independent standard normals e1, e2, e3."""
        m, kappa, nu, g, L, L0, c, v = self._decayed(rows, cells)
        gauss = (np.sqrt(g)[..., None] * einsum("...ij,...j->...i", L, rng.standard_normal(m.shape))
                 + np.sqrt(1.0 - g)[..., None] * einsum("...ij,...j->...i", L0, rng.standard_normal(m.shape))
                 + (np.sqrt(c) * rng.standard_normal(c.shape))[..., None] * v)
        chi2 = 2.0 * _standard_gamma(rng, (nu - self.dim + 1) / 2.0)
        return m + gauss / np.sqrt(kappa * chi2)[..., None]
