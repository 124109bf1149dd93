"""Plots and a markdown report from a results folder, with the findings of its experiments checked.

``write_report("results/")`` reads every ``<experiment>/*.csv`` written by the
runner and writes, into the same folder:

* ``regret_<experiment>.png``: cumulative regret against round, mean and 95%
  band (mean +- 1.96 SE), one panel per config;
* ``final_<experiment>.png``: final regret (mean +- 1.96 SE) against the swept
  parameter (K, noise level, d, M_off, ...), one line per agent;
* ``report.md``: a table per experiment and, for each finding that reads one of
  these experiments (the paper's, declared in
  ``agents/experiments/paper/<name>.py``), whether this run reproduced it,
  decided from the numbers, or why it cannot be decided. A sweep of your own
  gets the tables and plots only.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.experiments.config import PAPER_ORDER, RESERVED_PARAMS, config_id
from agents.experiments.findings import Finding, FindingCheck, fmt_final
from agents.experiments.paper import FINDINGS
from agents.experiments.runner import read_results, write_atomic
from agents.results import standard_error


@dataclass
class AgentCurve:
    """One agent's numbers in one config: mean and SE of the cumulative regret per round, final regrets."""

    mean: np.ndarray
    se: np.ndarray
    final: np.ndarray
    seconds: float

    @property
    def final_mean(self) -> float:
        return float(self.final.mean())

    @property
    def final_se(self) -> float:
        return float(standard_error(self.final))

    def slope(self, window: int) -> float:
        """Mean regret per round over the last ``window`` rounds."""
        window = min(window, len(self.mean) - 1)
        return float((self.mean[-1] - self.mean[-1 - window]) / window)


@dataclass
class ConfigResult:
    """One finished config: its parameter labels and each agent's curve."""

    config_id: str
    params: dict[str, str]
    agents: dict[str, AgentCurve] = field(default_factory=dict)


@dataclass
class ExperimentResults:
    """One experiment's definition (``experiment.json``) and its finished configs, in grid order."""

    name: str
    definition: dict[str, Any]
    configs: list[ConfigResult]

    def config(self, **params: object) -> ConfigResult | None:
        """The first finished config with these parameter labels (compared as text), or None."""
        for c in self.configs:
            if all(c.params.get(k) == str(v) for k, v in params.items()):
                return c
        return None


def load_results(root: str | Path) -> dict[str, ExperimentResults]:
    """Every experiment under ``root`` (a results root, or one experiment's folder), grid order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"results: {root} is not a folder")
    if (root / "experiment.json").exists():
        folders = [root]
    else:
        folders = sorted(p.parent for p in root.glob("*/experiment.json"))
    out: dict[str, ExperimentResults] = {}
    for folder in folders:
        definition = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
        configs = []
        for path in sorted(folder.glob("*.csv")):
            try:
                rows = read_results(path)
            except (KeyError, ValueError):  # not a results file of the runner (a user's own CSV)
                continue
            if not rows or not RESERVED_PARAMS <= set(rows[0]):
                continue
            params = {k: v for k, v in rows[0].items() if k not in RESERVED_PARAMS}
            cfg = ConfigResult(rows[0]["config"], params)
            by_agent: dict[str, dict[str, list]] = {}
            for row in rows:
                by_agent.setdefault(row["agent"], {}).setdefault(row["statistic"], []).append(row["value"])
            for agent, stats in by_agent.items():
                cfg.agents[agent] = AgentCurve(np.asarray(stats["mean"]), np.asarray(stats["se"]),
                                               np.asarray(stats["final"]), float(stats["seconds"][0]))
            configs.append(cfg)
        order = _grid_order(definition)
        configs.sort(key=lambda c: order.get(c.config_id, len(order)))
        out[definition["name"]] = ExperimentResults(definition["name"], definition, configs)
    if not out:
        raise FileNotFoundError(f"results: no experiment folders (with experiment.json) under {root}")
    names = [n for n in PAPER_ORDER if n in out] + sorted(n for n in out if n not in PAPER_ORDER)
    return {n: out[n] for n in names}


def _grid_order(definition: dict[str, Any]) -> dict[str, int]:
    sweep = definition.get("sweep", [])
    combos = itertools.product(*[p["labels"] for p in sweep])
    return {config_id(dict(zip([p["name"] for p in sweep], combo))): i for i, combo in enumerate(combos)}


# -- plots ------------------------------------------------------------------------------------
def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError('plots need matplotlib: pip install "gambit-gym[plots]"') from exc
    return plt


def plot_regret(exp: ExperimentResults, path: Path) -> Path:
    """Cumulative regret against round with 95% bands, one panel per config."""
    plt = _plt()
    n = len(exp.configs)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, sharey=False)
    for ax, cfg in zip(axes.ravel(), exp.configs):
        for i, (agent, c) in enumerate(cfg.agents.items()):
            t = np.arange(1, len(c.mean) + 1)
            ax.plot(t, c.mean, label=agent, color=f"C{i}", lw=1.2)
            ax.fill_between(t, c.mean - 1.96 * c.se, c.mean + 1.96 * c.se, color=f"C{i}", alpha=0.2, lw=0)
        ax.set_title(cfg.config_id, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("cumulative pseudo-regret", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    fig.suptitle(f"{exp.name}: mean and 95% band", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_final(exp: ExperimentResults, path: Path) -> Path | None:
    """Final regret (mean +- 1.96 SE) against each swept parameter, one line per agent."""
    sweep = exp.definition.get("sweep", [])
    if not sweep:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(sweep), figsize=(5.5 * len(sweep), 3.8), squeeze=False)
    for ax, param in zip(axes[0], sweep):
        labels = param["labels"]
        numeric = all(_is_number(lab) for lab in labels)
        xs = [float(lab) for lab in labels] if numeric else list(range(len(labels)))
        agents = list(dict.fromkeys(a for c in exp.configs for a in c.agents))
        others = [q for q in sweep if q["name"] != param["name"]]
        # with several swept parameters: one line per agent and combination of the others
        combos = [dict(zip([q["name"] for q in others], combo))
                  for combo in itertools.product(*[q["labels"] for q in others])]
        styles = ["-", "--", ":", "-."]
        for j, combo in enumerate(combos):
            suffix = " [" + ", ".join(f"{k}={v}" for k, v in combo.items()) + "]" if combo else ""
            for i, agent in enumerate(agents):
                pts = []
                for x, lab in zip(xs, labels):
                    cfg = exp.config(**{param["name"]: lab}, **combo)
                    if cfg is not None and agent in cfg.agents:
                        pts.append((x, cfg.agents[agent].final_mean, cfg.agents[agent].final_se))
                if pts:
                    x, m, s = map(np.asarray, zip(*pts))
                    ax.errorbar(x, m, yerr=1.96 * s, marker="o", ms=4, capsize=3, label=agent + suffix,
                                color=f"C{i}", linestyle=styles[j % len(styles)])
        if not numeric:
            ax.set_xticks(xs, labels)
        ax.set_xlabel(param["name"])
        ax.set_ylabel("final cumulative regret")
        ax.legend(fontsize=8)
    fig.suptitle(f"{exp.name}: final regret (mean +- 1.96 SE)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- findings ---------------------------------------------------------------------------------
def check_findings(results: Mapping[str, ExperimentResults],
                   findings: Sequence[FindingCheck] = FINDINGS) -> list[Finding]:
    """Each finding that reads an experiment in ``results``, decided from its numbers (the paper's by default).

    A finding these results cannot decide comes back ``"undecided"`` with the reason as its evidence; results
    of experiments no finding reads (a sweep of your own) give no findings."""
    return [f.decide(results) for f in findings if f.applies_to(results)]


# -- the report -------------------------------------------------------------------------------
def write_report(root: str | Path, plots: bool = True,
                 results: dict[str, ExperimentResults] | None = None) -> Path:
    """Write plots and ``report.md`` into ``root``; returns the report's path.

    ``results``: ``load_results(root)`` if already loaded (read otherwise)."""
    root = Path(root)
    if results is None:
        results = load_results(root)
    lines = ["# gambit-gym experiment report", ""]
    findings = check_findings(results)
    if findings:
        lines += ["## The paper's findings, checked against this run", "",
                  "| finding | this run | evidence |", "|---|---|---|"]
        for f in findings:
            lines.append(f"| {f.claim} | **{f.status}** | {f.evidence} |")
        lines.append("")
    total = 0.0
    for exp in results.values():
        d = exp.definition
        lines += [f"## {exp.name}", "", d.get("description", ""), "",
                  f"T = {d['horizon']}, {d['replications']} replications, root seed {d['seed']}; env "
                  f"`{json.dumps(d['env'], default=str)}`", ""]
        agents = list(dict.fromkeys(a for c in exp.configs for a in c.agents))
        lines.append("| config | " + " | ".join(agents) + " | seconds |")
        lines.append("|---" * (len(agents) + 2) + "|")
        for cfg in exp.configs:
            cells = [fmt_final(cfg.agents[a]) if a in cfg.agents else "" for a in agents]
            secs = sum(c.seconds for c in cfg.agents.values())
            total += secs
            lines.append(f"| {cfg.config_id} | " + " | ".join(cells) + f" | {secs:.0f} |")
        missing = len(_grid_order(d)) - len(exp.configs)
        if missing > 0:
            lines.append(f"\n{missing} config(s) of this experiment have no results yet.")
        lines.append("")
        lines.append("Final cumulative pseudo-regret, mean +- SE over replications; seconds = compute time of the "
                     "config (all agents).")
        lines.append("")
        if plots and exp.configs:
            reg = plot_regret(exp, root / f"regret_{exp.name}.png")
            lines.append(f"![{exp.name} regret]({reg.name})")
            fin = plot_final(exp, root / f"final_{exp.name}.png")
            if fin is not None:
                lines.append(f"![{exp.name} final regret]({fin.name})")
            lines.append("")
    lines.append(f"Total compute time of the configs reported: {total:.0f} s.")
    path = root / "report.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path
