"""Plots and a markdown report from a results folder, with the findings of its experiments checked.

``write_report("results/")`` reads every ``<experiment>/*.csv`` written by the
runner and writes, into the same folder:

* ``regret_<experiment>.png``: cumulative regret against round, mean and 95%
  band (mean +- 1.96 SE), one panel per config;
* ``final_<experiment>.png``: final regret (mean +- 1.96 SE) against the swept
  parameter (K, noise level, d, M_off, ...), one line per agent;
* ``report.md``: a table per experiment (and one of its metrics, when it records
  some: each series at the last round, mean +- SE over replications) and, for each finding that reads one of
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

from agents.experiments.beyond import FINDINGS as BEYOND_FINDINGS
from agents.experiments.config import PAPER_ORDER, RESERVED_PARAMS, config_id
from agents.experiments.findings import Finding, FindingCheck, fmt_final
from agents.experiments.paper import FINDINGS as PAPER_FINDINGS
from agents.experiments.runner import STATISTICS, read_columns, write_atomic
from agents.plotting import agent_colors, pyplot
from agents.results import standard_error

#: Every shipped finding: the paper's (``paper/__init__.py``), then those beyond it (``beyond/__init__.py``).
FINDINGS: tuple[FindingCheck, ...] = (*PAPER_FINDINGS, *BEYOND_FINDINGS)


@dataclass
class AgentCurve:
    """One agent's numbers in one config: mean and SE of the cumulative regret per round, final regrets.

    ``regret`` ``(replications, len(regret_rounds))``: each replication's cumulative regret at the
    rounds ``regret_rounds`` (see :func:`agents.experiments.runner.regret_rounds`); ``None`` for
    results files written before the runner kept them.

    ``metrics``: the config's metric series (:mod:`agents.experiments.metrics`), name ->
    ``(replications, len(metric_rounds))`` array, or a number (``harm.budget``); empty without metrics.
    Read them with :meth:`metric` and :meth:`metric_final`."""

    mean: np.ndarray
    se: np.ndarray
    final: np.ndarray
    seconds: float
    regret: np.ndarray | None = None
    regret_rounds: np.ndarray | None = None
    metrics: dict[str, np.ndarray | float] = field(default_factory=dict)
    metric_rounds: np.ndarray | None = None

    #: Series derived from others on reading: name -> (series, budget series) whose difference it is.
    DERIVED = {"harm.excess": ("harm.mean", "harm.budget")}

    @property
    def metric_names(self) -> list[str]:
        """The recorded series, then the derived ones they allow (``harm.excess`` with a budget)."""
        names = list(self.metrics)
        return names + [d for d, (a, b) in self.DERIVED.items() if a in self.metrics and b in self.metrics]

    def metric(self, name: str) -> np.ndarray | float:
        """A metric series: ``(replications, len(metric_rounds))``, or a number; ``harm.excess`` is
        ``harm.mean`` minus ``harm.budget`` (positive: over budget)."""
        if name in self.DERIVED and name not in self.metrics:
            a, b = self.DERIVED[name]
            if a in self.metrics and b in self.metrics:
                return self.metrics[a] - self.metrics[b]
        if name not in self.metrics:
            raise KeyError(f"metric: no series {name!r} here; recorded: {self.metric_names}")
        return self.metrics[name]

    def metric_final(self, name: str) -> np.ndarray:
        """Each replication's value of a per-replication series at the last recorded round ``(replications,)``."""
        values = self.metric(name)
        if np.ndim(values) != 2:
            raise ValueError(f"metric: {name!r} is one number, not a series per replication")
        return values[:, -1]

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
                cols = read_columns(path)
            except (KeyError, ValueError):  # not a results file of the runner (a user's own CSV)
                continue
            if not RESERVED_PARAMS <= set(cols) or not len(cols["value"]):
                continue
            params = {k: str(v[0]) for k, v in cols.items() if k not in RESERVED_PARAMS}
            cfg = ConfigResult(str(cols["config"][0]), params)
            for agent in dict.fromkeys(cols["agent"].tolist()):
                mine = cols["agent"] == agent
                stat, value = cols["statistic"][mine], cols["value"][mine]
                reps, rounds = cols["replication"][mine], cols["round"][mine]
                regret = stat == "regret"
                curve = AgentCurve(value[stat == "mean"], value[stat == "se"], value[stat == "final"],
                                   float(value[stat == "seconds"][0]),
                                   *_replication_curves(reps[regret], rounds[regret], value[regret]))
                for name in dict.fromkeys(stat[~np.isin(stat, STATISTICS)].tolist()):  # metric series, in order
                    rows = stat == name
                    if (rounds[rows] < 0).all():  # one number for the config
                        curve.metrics[name] = float(value[rows][0])
                    else:
                        curve.metrics[name], curve.metric_rounds = _replication_curves(reps[rows], rounds[rows],
                                                                                       value[rows])
                cfg.agents[agent] = curve
            configs.append(cfg)
        order = _grid_order(definition)
        configs.sort(key=lambda c: order.get(c.config_id, len(order)))
        out[definition["name"]] = ExperimentResults(definition["name"], definition, configs)
    if not out:
        raise FileNotFoundError(f"results: no experiment folders (with experiment.json) under {root}")
    names = [n for n in PAPER_ORDER if n in out] + sorted(n for n in out if n not in PAPER_ORDER)
    return {n: out[n] for n in names}


def _replication_curves(reps: np.ndarray, rounds: np.ndarray, values: np.ndarray) -> tuple[np.ndarray | None, ...]:
    """``regret`` rows -> ``(regret (replications, rounds), rounds)``; ``(None, None)`` without such rows."""
    if not len(values):  # a file written before the runner kept per-replication curves
        return None, None
    round_values, round_index = np.unique(rounds, return_inverse=True)
    regret = np.full((int(reps.max()) + 1, len(round_values)), np.nan)
    regret[reps, round_index] = values
    return regret, round_values


def _grid_order(definition: dict[str, Any]) -> dict[str, int]:
    sweep = definition.get("sweep", [])
    combos = itertools.product(*[p["labels"] for p in sweep])
    return {config_id(dict(zip([p["name"] for p in sweep], combo))): i for i, combo in enumerate(combos)}


# -- plots ------------------------------------------------------------------------------------
def _agents(exp: ExperimentResults) -> list[str]:
    """Every agent label of the experiment, in the order of its definition."""
    return list(dict.fromkeys(a for c in exp.configs for a in c.agents))


def plot_regret(exp: ExperimentResults, path: Path) -> Path:
    """Cumulative regret against round with 95% bands, one panel per config; one legend below the panels."""
    return _save(regret_figure(exp), path)


def plot_final(exp: ExperimentResults, path: Path) -> Path | None:
    """Final regret (mean +- 1.96 SE) against each swept parameter (see :func:`final_figure`); None without a
    sweep."""
    fig = final_figure(exp)
    return None if fig is None else _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight" keeps the legends outside the axes in the file
    pyplot().close(fig)
    return path


def regret_figure(exp: ExperimentResults) -> Any:
    """The figure of :func:`plot_regret` (a matplotlib ``Figure``), to show or change before saving."""
    plt = pyplot()
    n = len(exp.configs)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, sharey=False)
    colors = agent_colors(_agents(exp))
    for ax, cfg in zip(axes.ravel(), exp.configs):
        for agent, c in cfg.agents.items():
            t = np.arange(1, len(c.mean) + 1)
            ax.plot(t, c.mean, label=agent, color=colors[agent], lw=1.2)
            ax.fill_between(t, c.mean - 1.96 * c.se, c.mean + 1.96 * c.se, color=colors[agent], alpha=0.2, lw=0)
        ax.set_xlim(1, max(len(c.mean) for c in cfg.agents.values()))
        ax.set_title(cfg.config_id, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("cumulative pseudo-regret", fontsize=8)
    # every agent of the experiment, even one missing from the first panel
    handles = [plt.Line2D([], [], color=colors[a], lw=2) for a in colors]
    fig.legend(handles, list(colors), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(colors), 6),
               fontsize=8, frameon=False)
    fig.suptitle(f"{exp.name}: mean and 95% band", fontsize=10)
    fig.tight_layout()
    return fig


def _x_positions(labels: Sequence[str]) -> tuple[np.ndarray, str]:
    """Where a swept parameter's values sit on the x axis, and the scale: its numbers (a log scale when they are
    positive and span a factor of 10 or more), or the positions 0, 1, ... when any label is not a number."""
    if not all(_is_number(lab) for lab in labels):
        return np.arange(len(labels), dtype=float), "linear"
    xs = np.array([float(lab) for lab in labels])
    if len(xs) > 1 and xs.min() > 0 and xs.max() / xs.min() >= 10:
        return xs, "log"
    return xs, "linear"


def _dodge(xs: np.ndarray, scale: str, i: int, n: int) -> np.ndarray:
    """Shift agent ``i`` of ``n`` sideways by a fraction of the smallest gap, so error bars do not overlap."""
    u = np.log10(xs) if scale == "log" else xs
    gaps = np.diff(np.unique(u))
    step = 0.06 * (gaps.min() if len(gaps) else 1.0)
    u = u + (i - (n - 1) / 2) * step
    return 10**u if scale == "log" else u


def final_figure(exp: ExperimentResults) -> Any:
    """Final regret (mean +- 1.96 SE) against each swept parameter, one panel per parameter: colour = agent,
    line style = the values of the other swept parameters; the swept values are the ticks (categories at
    0, 1, ... when not numbers), and the legend sits below each panel. None when nothing is swept."""
    sweep = exp.definition.get("sweep", [])
    if not sweep:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(sweep), figsize=(5.5 * len(sweep), 3.8), squeeze=False)
    agents = _agents(exp)
    colors = agent_colors(agents)
    styles = ["-", "--", ":", "-."]
    for ax, param in zip(axes[0], sweep):
        labels = param["labels"]
        xs, scale = _x_positions(labels)
        others = [q for q in sweep if q["name"] != param["name"]]
        # with several swept parameters: one line per agent and combination of the others
        combos = [dict(zip([q["name"] for q in others], combo))
                  for combo in itertools.product(*[q["labels"] for q in others])]
        for j, combo in enumerate(combos):
            for i, agent in enumerate(agents):
                pts = []
                for x, lab in zip(_dodge(xs, scale, i, len(agents)), labels):
                    cfg = exp.config(**{param["name"]: lab}, **combo)
                    if cfg is not None and agent in cfg.agents:
                        pts.append((x, cfg.agents[agent].final_mean, cfg.agents[agent].final_se))
                if pts:
                    x, m, s = map(np.asarray, zip(*pts))
                    ax.errorbar(x, m, yerr=1.96 * s, marker="o", ms=4, capsize=3, color=colors[agent],
                                linestyle=styles[j % len(styles)], lw=1.2)
        ax.set_xscale(scale)
        ax.set_xticks(xs, labels)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel(param["name"])
        ax.set_ylabel("final cumulative regret")
        handles = [plt.Line2D([], [], color=colors[a], marker="o", ms=4, lw=1.2) for a in agents]
        names = list(agents)
        if len(combos) > 1:
            handles += [plt.Line2D([], [], color="0.3", lw=1.2, linestyle=styles[j % len(styles)])
                        for j in range(len(combos))]
            names += [", ".join(f"{k}={v}" for k, v in combo.items()) for combo in combos]
        ax.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(len(names), 3),
                  fontsize=8, frameon=False)
    fig.suptitle(f"{exp.name}: final regret (mean +- 1.96 SE)", fontsize=10)
    fig.tight_layout()
    return fig


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- findings ---------------------------------------------------------------------------------
def check_findings(results: Mapping[str, ExperimentResults],
                   findings: Sequence[FindingCheck] = FINDINGS) -> list[Finding]:
    """Each finding that reads an experiment in ``results``, decided from its numbers (by default every shipped
    finding: the paper's, then those beyond it).

    A finding these results cannot decide comes back ``"undecided"`` with the reason as its evidence; results
    of experiments no finding reads (a sweep of your own) give no findings."""
    return [f.decide(results) for f in findings if f.applies_to(results)]


# -- the report -------------------------------------------------------------------------------
def fmt_metric(values: np.ndarray | float) -> str:
    """A series at its last round as ``mean +- SE`` over replications, or one number (4 significant digits).

    Example:
        >>> fmt_metric(np.array([[0.0, 0.1], [0.0, 0.3]])), fmt_metric(0.2)
        ('0.2 +- 0.1', '0.2')
    """
    if np.ndim(values) == 0:
        return f"{float(values):.4g}"
    last = np.asarray(values)[:, -1]
    return f"{last.mean():.4g} +- {float(standard_error(last)):.2g}"


def metrics_table(exp: ExperimentResults) -> list[str]:
    """The markdown lines of an experiment's metrics table (none without metrics): one row per config and
    agent, each series at the last recorded round (see :func:`fmt_metric`)."""
    names = list(dict.fromkeys(n for c in exp.configs for a in c.agents.values() for n in a.metric_names))
    if not names:
        return []
    lines = ["| config | agent | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for cfg in exp.configs:
        for agent, curve in cfg.agents.items():
            cells = [fmt_metric(curve.metric(n)) if n in curve.metric_names else "" for n in names]
            lines.append(f"| {cfg.config_id} | {agent} | " + " | ".join(cells) + " |")
    return [*lines, "", "Metrics at the last round, mean +- SE over replications (for harm.violation the share of "
            "replications over budget); each series is described in agents.experiments.metrics.", ""]



def write_report(root: str | Path, plots: bool = True,
                 results: dict[str, ExperimentResults] | None = None) -> Path:
    """Write plots and ``report.md`` into ``root``; returns the report's path.

    ``results``: ``load_results(root)`` if already loaded (read otherwise)."""
    root = Path(root)
    if results is None:
        results = load_results(root)
    lines = ["# gambit-gym experiment report", ""]
    for title, checks in (("The paper's findings", PAPER_FINDINGS), ("Findings beyond the paper", BEYOND_FINDINGS)):
        findings = check_findings(results, checks)
        if findings:
            lines += [f"## {title}, checked against this run", "",
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
        lines += metrics_table(exp)
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
