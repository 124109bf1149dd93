"""Results of bandit runs: :class:`BanditResult` and the mean / standard-error helpers every summary uses.

``run_bandit`` and ``run_sb3`` both return a ``BanditResult``; neither imports the other for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def standard_error(values: Any, axis: int = 0) -> Any:
    """Standard error of the mean along ``axis`` (sample sd with ddof=1 over sqrt(n)); NaN when n < 2.

    Example:
        >>> round(float(standard_error([1.0, 2.0, 3.0, 4.0])), 4)
        0.6455
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[axis]
    if n < 2:
        out = np.full(np.delete(x.shape, axis), np.nan) if x.ndim > 1 else np.float64("nan")
        return out
    return x.std(axis=axis, ddof=1) / math.sqrt(n)


@dataclass
class BanditResult:
    """Cumulative pseudo-regret per agent, shape ``(replications, horizon)``.

    Example:
        >>> from agents import StandardTS, run_bandit
        >>> res = run_bandit("GeneratorMediated-v0", {"StdTS": StandardTS}, horizon=20,
        ...                  replications=4, seed=0, progress=False)
        >>> res.cumulative_regret["StdTS"].shape
        (4, 20)
    """

    cumulative_regret: dict[str, np.ndarray]
    horizon: int
    replications: int
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and standard error of the final cumulative regret per agent."""
        out = {}
        for name, reg in self.cumulative_regret.items():
            final = reg[:, -1]
            se = standard_error(final)
            out[name] = {"mean": float(final.mean()), "se": float(se), "seconds": self.seconds.get(name, 0.0)}
        return out

    def table(self) -> str:
        """The summary as a Markdown table."""
        rows = [f"| agent | final cumulative regret (mean +- SE, {self.replications} reps, T = {self.horizon}) |",
                "|---|---|"]
        for name, s in sorted(self.summary().items(), key=lambda kv: kv[1]["mean"]):
            rows.append(f"| {name} | {s['mean']:.2f} +- {s['se']:.2f} |")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None, ax: Any = None, title: str | None = None):
        """Mean cumulative regret against round with 95% bands (mean +- 1.96 SE)."""
        try:
            import matplotlib

            if path is not None and ax is None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError('plotting needs matplotlib: pip install "gambit-gym[plots]"') from exc
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        rounds = np.arange(1, self.horizon + 1)
        for name, reg in self.cumulative_regret.items():
            mean = reg.mean(axis=0)
            se = standard_error(reg, axis=0) if len(reg) > 1 else np.zeros_like(mean)
            ax.plot(rounds, mean, label=name)
            ax.fill_between(rounds, mean - 1.96 * se, mean + 1.96 * se, alpha=0.2)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative pseudo-regret")
        ax.set_title(title or f"{self.replications} replications, 95% bands")
        ax.legend()
        if path is not None:
            ax.figure.tight_layout()
            ax.figure.savefig(path, dpi=120)
        return ax

    def save(self, path: str | Path) -> None:
        """``.npz`` with one array per agent (no pickle)."""
        np.savez_compressed(path, **{f"regret/{k}": v for k, v in self.cumulative_regret.items()})
