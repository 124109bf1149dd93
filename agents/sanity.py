"""The embedding sanity check: does the working embedding predict the reward?

GAMBITTS helps only when the working embedding Z carries the reward-relevant
part of the treatment; with an unrelated one it can lose to standard TS. Before
deploying it, fit the reward on logged data (embedding, context, reward, and the
prompt where known) and ask, out of sample:

1. Does the embedding predict the reward beyond the context? (If not, this
   embedding is unlikely to help GAMBITTS.)
2. Do the prompts still predict the reward once the embedding is known? (If so,
   the embedding misses part of what the prompts do: the hedged form,
   ``hedged=True``, guards against that.)

Each question compares two ridge regressions by K-fold cross-validation. The
context enters as unpenalised fixed effects (one mean per context index), the
embedding and prompt dummies are standardised and ridge-penalised, with the
penalty chosen inside each training fold by generalised cross-validation.

**The threshold.** R^2 alone is a poor verdict: when outcome noise dominates (the
paper's field noise is 5 to 10 times the treatment scale) a fully relevant
embedding still has an R^2 of a few percent. The verdict therefore tests the
*gain*: the paired difference of out-of-fold squared errors between the two
models, averaged over rounds, divided by its standard error. A gain counts when
this z-statistic is at least ``z_threshold`` (2: a one-sided test at about the
2.3 % level) *and* the R^2 gain is at least ``min_r2_gain`` (0 by default).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 5))
    >>> y = 80 + 2.0 * z[:, 1] + rng.normal(size=2000)
    >>> report = embedding_sanity_check(z, y)
    >>> report.helps, report.verdict.startswith("this embedding predicts")
    (True, True)
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gambit_gym.validation import check_float, check_int

#: ridge penalties tried (times the number of training rows), chosen by GCV in each training fold
RIDGE_GRID = np.logspace(-6, 2, 17)


@dataclass
class SanityReport:
    """What :func:`embedding_sanity_check` found.

    Attributes:
        n_rounds, embedding_dim: the data's size.
        r2_context: cross-validated R^2 of the context-only model (fixed effects; 0 without contexts).
        r2_embedding: of context + embedding.
        r2_gain, z_gain: the embedding's R^2 gain over the context alone and the paired z-statistic.
        r2_prompts, r2_embedding_prompts: of context + prompt dummies, and of context + embedding + prompts
            (``None`` without actions).
        r2_prompt_gain, z_prompt_gain: what the prompts add once the embedding is known (``None`` without actions).
        dimension_r2_loss: ``(d,)`` the drop in cross-validated R^2 when one embedding dimension is left out
            (its contribution; a negative value means it only adds variance).
        dimension_names: a name per dimension.
        helps: whether the embedding's gain passes the threshold.
        misses_prompt_effect: whether the prompts' gain beyond the embedding passes it (``None`` without actions).
        verdict: the plain-language conclusion; ``threshold``: how it was decided.
    """

    n_rounds: int
    embedding_dim: int
    r2_context: float
    r2_embedding: float
    r2_gain: float
    z_gain: float
    dimension_r2_loss: np.ndarray
    dimension_names: list[str]
    helps: bool
    verdict: str
    threshold: str
    r2_prompts: float | None = None
    r2_embedding_prompts: float | None = None
    r2_prompt_gain: float | None = None
    z_prompt_gain: float | None = None
    misses_prompt_effect: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_text(self, top: int = 10) -> str:
        """A readable report: the R^2 table, the largest per-dimension contributions, the verdict."""
        lines = [f"embedding sanity check: {self.n_rounds} rounds, embedding dimension {self.embedding_dim}", "",
                 "cross-validated R^2 of the reward:",
                 f"  context only                 {self.r2_context: .4f}",
                 f"  context + embedding          {self.r2_embedding: .4f}   "
                 f"(gain {self.r2_gain:+.4f}, z = {self.z_gain:.2f})"]
        if self.r2_prompts is not None:
            lines += [f"  context + prompts            {self.r2_prompts: .4f}",
                      f"  context + embedding + prompts{self.r2_embedding_prompts: .4f}   "
                      f"(prompts beyond the embedding: gain {self.r2_prompt_gain:+.4f}, z = {self.z_prompt_gain:.2f})"]
        order = np.argsort(-self.dimension_r2_loss)[:top]
        lines += ["", f"per-dimension contribution (R^2 lost when left out), top {len(order)}:"]
        lines += [f"  {self.dimension_names[j]:24s} {self.dimension_r2_loss[j]: .5f}" for j in order]
        lines += ["", "verdict: " + self.verdict, "", "threshold: " + self.threshold]
        return "\n".join(lines)


def _fold_ids(n: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    ids = np.arange(n) % n_folds
    rng.shuffle(ids)
    return ids


def _context_means(values: np.ndarray, ctx: np.ndarray, n_ctx: int) -> np.ndarray:
    """Per-context means of ``values`` (rows), ``(n_ctx, ...)``; a context without rows gets the overall mean."""
    sums = np.zeros((n_ctx, *values.shape[1:]))
    np.add.at(sums, ctx, values)
    counts = np.bincount(ctx, minlength=n_ctx).astype(float)
    means = np.broadcast_to(values.mean(axis=0), sums.shape).copy()
    seen = counts > 0
    means[seen] = sums[seen] / counts[seen].reshape(-1, *([1] * (values.ndim - 1)))
    return means


def _ridge_fold(features: np.ndarray | None, y: np.ndarray, ctx: np.ndarray, n_ctx: int, train: np.ndarray,
                test: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold predictions on ``test`` and, per feature, the predictions with that feature left out.

    Context fixed effects are unpenalised (by Frisch-Waugh-Lovell: demean y and the features within
    each context on the training rows), the standardised features ridge-penalised with lambda chosen by GCV.
    """
    y_means = _context_means(y[train], ctx[train], n_ctx)
    base = y_means[ctx[test]]
    if features is None or features.shape[1] == 0:
        return base, None
    f_means = _context_means(features[train], ctx[train], n_ctx)
    xt = features[train] - f_means[ctx[train]]
    scale = xt.std(axis=0)
    scale[scale == 0] = 1.0
    xt /= scale
    yt = y[train] - y_means[ctx[train]]
    xs = (features[test] - f_means[ctx[test]]) / scale
    n = len(train)
    u, s, vt = np.linalg.svd(xt, full_matrices=False)
    uty = u.T @ yt
    best, best_lam = np.inf, None
    resid_perp = max(float(yt @ yt - uty @ uty), 0.0)
    for lam in RIDGE_GRID * n:  # GCV: n |y - H y|^2 / (n - tr H)^2
        shrink = s**2 / (s**2 + lam)
        rss = float(np.sum(((1 - shrink) * uty) ** 2)) + resid_perp
        gcv = n * rss / max(n - shrink.sum(), 1.0) ** 2
        if gcv < best:
            best, best_lam = gcv, lam
    # A = X^T X + lam I through the SVD; beta = A^{-1} X^T y
    a_inv = (vt.T / (s**2 + best_lam)) @ vt + (np.eye(xt.shape[1]) - vt.T @ vt) / best_lam
    beta = a_inv @ (xt.T @ yt)
    pred = base + xs @ beta
    # leaving feature j out of the penalised normal equations: beta - A^{-1}[:, j] beta_j / A^{-1}[j, j]
    drop = beta[:, None] - a_inv * (beta / np.diag(a_inv))[None, :]
    drop[np.arange(len(beta)), np.arange(len(beta))] = 0.0
    return pred, base[:, None] + xs @ drop


def _cv(features: np.ndarray | None, y: np.ndarray, ctx: np.ndarray, n_ctx: int, folds: np.ndarray,
        n_folds: int, per_feature: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    pred = np.empty_like(y)
    dropped = np.empty((len(y), features.shape[1])) if per_feature and features is not None else None
    for k in range(n_folds):
        test, train = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
        p, d = _ridge_fold(features, y, ctx, n_ctx, train, test)
        pred[test] = p
        if dropped is not None:
            dropped[test] = d
    return pred, dropped


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def _paired_z(y: np.ndarray, worse: np.ndarray, better: np.ndarray) -> float:
    diff = (y - worse) ** 2 - (y - better) ** 2
    sd = diff.std(ddof=1)
    if sd == 0:
        return 0.0 if diff.mean() == 0 else math.copysign(math.inf, diff.mean())
    return float(diff.mean() / (sd / math.sqrt(len(diff))))


def embedding_sanity_check(
    embedding: np.ndarray,
    reward: np.ndarray,
    context_index: np.ndarray | None = None,
    action: np.ndarray | None = None,
    n_folds: int = 5,
    z_threshold: float = 2.0,
    min_r2_gain: float = 0.0,
    seed: int = 0,
    dimension_names: list[str] | None = None,
) -> SanityReport:
    """Cross-validated check of how well ``embedding`` predicts ``reward`` (see the module docstring).

    Args:
        embedding: ``(n, d)`` the working embedding of each delivered treatment.
        reward: ``(n,)`` the observed rewards.
        context_index: ``(n,)`` integer context of each round (fixed effects), or ``None`` for none.
        action: ``(n,)`` integer prompt of each round, or ``None``: then the prompts' check is skipped.
        n_folds: cross-validation folds (>= 2).
        z_threshold: the paired z-statistic a gain must reach (> 0).
        min_r2_gain: the R^2 gain it must also reach (>= 0).
        seed: the fold assignment's seed.
        dimension_names: a name per embedding dimension (default ``z0, z1, ...``).

    Raises:
        ValueError: shapes disagree, a value is NaN or infinite, fewer than ``2 * n_folds`` rows, a negative
            index, or a bad setting (named).
    """
    z = np.asarray(embedding, dtype=np.float64)
    y = np.asarray(reward, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"embedding: expected an (n, d) array with d >= 1, got shape {z.shape}")
    if y.shape != (z.shape[0],):
        raise ValueError(f"reward: expected shape ({z.shape[0]},) (one per embedding row), got {y.shape}")
    n, d = z.shape
    n_folds = check_int("n_folds", n_folds, 2)
    z_threshold = check_float("z_threshold", z_threshold, minimum=0.0, strict=True)
    min_r2_gain = check_float("min_r2_gain", min_r2_gain, minimum=0.0)
    if n < 2 * n_folds:
        raise ValueError(f"embedding: expected at least 2 * n_folds = {2 * n_folds} rows, got {n}")
    for name, value in (("embedding", z), ("reward", y)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name}: holds NaN or infinite values")
    if np.var(y) == 0:
        raise ValueError("reward: all rewards are equal; there is nothing to predict")
    ctx = _index("context_index", context_index, n)
    act = _index("action", action, n) if action is not None else None
    names = [f"z{j}" for j in range(d)] if dimension_names is None else [str(v) for v in dimension_names]
    if len(names) != d:
        raise ValueError(f"dimension_names: expected {d} names (one per embedding dimension), got {len(names)}")
    n_ctx = int(ctx.max()) + 1
    folds = _fold_ids(n, n_folds, np.random.default_rng(seed))

    pred_ctx, _ = _cv(None, y, ctx, n_ctx, folds, n_folds)
    pred_emb, dropped = _cv(z, y, ctx, n_ctx, folds, n_folds, per_feature=True)
    r2_ctx, r2_emb = _r2(y, pred_ctx), _r2(y, pred_emb)
    z_gain = _paired_z(y, pred_ctx, pred_emb)
    dim_loss = np.array([r2_emb - _r2(y, dropped[:, j]) for j in range(d)])
    helps = bool(z_gain >= z_threshold and r2_emb - r2_ctx >= min_r2_gain)
    report = SanityReport(n_rounds=n, embedding_dim=d, r2_context=r2_ctx, r2_embedding=r2_emb,
                          r2_gain=r2_emb - r2_ctx, z_gain=z_gain, dimension_r2_loss=dim_loss,
                          dimension_names=names, helps=helps, verdict="", threshold="")
    if act is not None and act.max() > 0:
        dummies = np.eye(int(act.max()) + 1)[act][:, 1:]
        pred_p, _ = _cv(dummies, y, ctx, n_ctx, folds, n_folds)
        pred_ep, _ = _cv(np.hstack([z, dummies]), y, ctx, n_ctx, folds, n_folds)
        report.r2_prompts, report.r2_embedding_prompts = _r2(y, pred_p), _r2(y, pred_ep)
        report.r2_prompt_gain = report.r2_embedding_prompts - r2_emb
        report.z_prompt_gain = _paired_z(y, pred_emb, pred_ep)
        report.misses_prompt_effect = bool(report.z_prompt_gain >= z_threshold
                                           and report.r2_prompt_gain >= min_r2_gain)
        report.extra["z_prompts_over_context"] = _paired_z(y, pred_ctx, pred_p)
    report.verdict = _verdict(report, z_threshold)
    report.threshold = (
        f"a model's gain counts when the paired z-statistic of its out-of-fold squared errors against the "
        f"simpler model is >= {z_threshold:g} (one-sided, about the {100 * _upper_tail(z_threshold):.1f} % level) "
        f"and its R^2 gain is >= {min_r2_gain:g}, over {n_folds}-fold cross-validation. The gain is tested, not "
        "R^2 itself: when outcome noise dominates, a fully relevant embedding still explains only a few percent."
    )
    return report


def _upper_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def _verdict(r: SanityReport, z_threshold: float) -> str:
    gain = f"R^2 gain {r.r2_gain:+.4f}, z = {r.z_gain:.2f}"
    if not r.helps:
        text = (f"this embedding is unlikely to help GAMBITTS: it does not predict the reward beyond the context "
                f"({gain}, below the threshold z >= {z_threshold:g}).")
        if r.extra.get("z_prompts_over_context", -math.inf) >= z_threshold:
            text += (" The prompts do predict it, so the reward-relevant part of the treatment is elsewhere: use "
                     "standard TS, the hedged form (hedged=True), or another embedding.")
        return text
    text = f"this embedding predicts the reward beyond the context ({gain})"
    if r.misses_prompt_effect:
        return text + (f"; but the prompts still predict it once the embedding is known (R^2 gain "
                       f"{r.r2_prompt_gain:+.4f}, z = {r.z_prompt_gain:.2f}): it misses part of the prompts' effect, "
                       "so prefer the hedged form (hedged=True).")
    if r.misses_prompt_effect is False:
        return text + "; the prompts add nothing detectable beyond it: GAMBITTS is likely to help."
    return text + "; GAMBITTS is likely to help (no actions given, so whether it misses a prompt effect is unchecked)."


def _index(name: str, value: np.ndarray | None, n: int) -> np.ndarray:
    if value is None:
        return np.zeros(n, dtype=np.int64)
    arr = np.asarray(value)
    if arr.shape != (n,) or arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected an integer array of shape ({n},), got {arr.dtype} of shape {arr.shape}")
    if n and arr.min() < 0:
        raise ValueError(f"{name}: expected values >= 0")
    return arr.astype(np.int64)


def load_logs(path: str | Path) -> dict[str, Any]:
    """Read logged data for the check: this package's logged-feedback file (``.npz`` / ``.parquet``) or a CSV.

    A CSV needs a header with ``reward``, embedding columns named ``z0, z1, ...`` (or
    ``treatment_embedding_0, ...``) and, optionally, ``context_index`` and ``action`` (integers).
    Returns the keyword arguments of :func:`embedding_sanity_check`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"logs: no file at {path}")
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    from agents.logged import LoggedBanditFeedback

    data = LoggedBanditFeedback.load(path)
    return {"embedding": data.treatment_embedding, "reward": data.reward, "context_index": data.context_index,
            "action": data.action}


def _read_csv(path: Path) -> dict[str, Any]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path}: empty CSV (expected a header with reward and z0, z1, ... columns)")
    header = [h.strip() for h in rows[0]]
    emb_cols = [i for i, h in enumerate(header) if _embedding_column(h) is not None]
    emb_cols.sort(key=lambda i: _embedding_column(header[i]))
    if "reward" not in header or not emb_cols:
        raise ValueError(f"{path}: expected a 'reward' column and embedding columns z0, z1, ... "
                         f"(or treatment_embedding_0, ...); got columns {header}")
    body = rows[1:]
    try:
        values = np.array([[float(r[i]) for i in range(len(header))] for r in body], dtype=np.float64)
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path}: every row needs {len(header)} numeric fields ({err})") from None
    values = values.reshape(len(body), len(header))
    out: dict[str, Any] = {"embedding": values[:, emb_cols], "reward": values[:, header.index("reward")],
                           "dimension_names": [header[i] for i in emb_cols]}
    for name in ("context_index", "action"):
        if name in header:
            col = values[:, header.index(name)]
            if not np.all(col == np.round(col)):
                raise ValueError(f"{path}: column {name!r} must hold integers")
            out[name] = col.astype(np.int64)
    return out


def _embedding_column(name: str) -> int | None:
    for prefix in ("treatment_embedding_", "z"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return int(name[len(prefix):])
    return None


SANITY_HELP = """\
The embedding sanity check: does the working embedding predict the reward?

Reads logged (embedding, context, reward[, action]) data and reports the
cross-validated R^2 of the reward from the context alone, from the context and
the embedding, and (with actions) with the prompts added; each dimension's
contribution; and a plain verdict. A gain counts when the paired z-statistic of
the out-of-fold squared errors reaches --z-threshold (the gain is tested, not
R^2 itself, which stays small whenever outcome noise dominates).

LOGS is this package's logged-feedback file (LoggedBanditFeedback.save: .npz or
.parquet) or a CSV with a header: reward, z0, z1, ... (or
treatment_embedding_0, ...), and optionally context_index and action."""

SANITY_EXAMPLES = """\
examples:
  gambit-gym sanity logs.npz
  gambit-gym sanity my_messages.csv --folds 10 --z-threshold 3"""


def add_command(sub: Any) -> None:
    """Mount ``gambit-gym sanity`` on the command parser's subparsers."""
    import argparse

    p = sub.add_parser("sanity", help="check whether a logged embedding predicts the reward (before using GAMBITTS)",
                       description=SANITY_HELP, epilog=SANITY_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", help="logged feedback (.npz / .parquet from LoggedBanditFeedback.save) or a CSV file")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--z-threshold", type=float, default=2.0,
                   help="paired z-statistic a gain must reach to count (default 2)")
    p.add_argument("--min-r2-gain", type=float, default=0.0, help="R^2 gain it must also reach (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    p.add_argument("--top", type=int, default=10, help="how many dimensions to list by contribution (default 10)")
    p.set_defaults(func=_sanity_command)


def _sanity_command(args: Any) -> int:
    import sys

    try:
        data = load_logs(args.logs)
        report = embedding_sanity_check(**data, n_folds=args.folds, z_threshold=args.z_threshold,
                                        min_r2_gain=args.min_r2_gain, seed=args.seed)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"gambit-gym sanity: error: {err}", file=sys.stderr)
        return 2
    print(report.to_text(top=args.top))
    return 0
