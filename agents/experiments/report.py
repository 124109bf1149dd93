"""Plots and a markdown report from a results folder, with the paper's findings checked.

``write_report("results/")`` reads every ``<experiment>/*.csv`` written by the
runner and writes, into the same folder:

* ``regret_<experiment>.png``: cumulative regret against round, mean and 95%
  band (mean +- 1.96 SE), one panel per config;
* ``final_<experiment>.png``: final regret (mean +- 1.96 SE) against the swept
  parameter (K, noise level, d, M_off, ...), one line per agent;
* ``report.md``: a table per experiment and, for each qualitative finding of
  the paper (SPEC §3), whether this run reproduced it, decided from the numbers.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.experiments.config import PAPER_ORDER, RESERVED_PARAMS, config_id
from agents.experiments.runner import read_results, write_atomic


@dataclass
class AgentCurve:
    mean: np.ndarray
    se: np.ndarray
    final: np.ndarray
    seconds: float

    @property
    def final_mean(self) -> float:
        return float(self.final.mean())

    @property
    def final_se(self) -> float:
        n = len(self.final)
        return float(self.final.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    def slope(self, window: int) -> float:
        """Mean regret per round over the last ``window`` rounds."""
        window = min(window, len(self.mean) - 1)
        return float((self.mean[-1] - self.mean[-1 - window]) / window)


@dataclass
class ConfigResult:
    config_id: str
    params: dict[str, str]
    agents: dict[str, AgentCurve] = field(default_factory=dict)


@dataclass
class ExperimentResults:
    name: str
    definition: dict[str, Any]
    configs: list[ConfigResult]

    def config(self, **params: str) -> ConfigResult | None:
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
@dataclass
class Finding:
    claim: str
    status: str  # "reproduced", "not reproduced", "partly reproduced" or "not run"
    evidence: str


def _fmt(c: AgentCurve) -> str:
    return f"{c.final_mean:.1f} +- {c.final_se:.1f}"


def _lower(a: AgentCurve, b: AgentCurve) -> bool:
    """a's final regret significantly below b's (difference beyond 1.96 combined SE)."""
    return a.final_mean + 1.96 * math.hypot(a.final_se, b.final_se) < b.final_mean


def _spearman(x: list[float], y: list[float]) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1]) if len(x) > 2 else float("nan")


def _agents_in(exp: ExperimentResults | None, *agents: str) -> bool:
    return exp is not None and bool(exp.configs) and all(all(a in c.agents for a in agents) for c in exp.configs)


_CHECKS: list[Callable[[dict[str, ExperimentResults]], Finding]] = []


def _finding(claim: str):
    """Register a check of ``claim``; results it cannot read (another sweep, missing configs) give "not run"."""
    def register(check):
        def safe(res: dict[str, ExperimentResults]) -> Finding:
            try:
                return check(res, claim)
            except (KeyError, StopIteration, ValueError, ZeroDivisionError, IndexError) as exc:
                return Finding(claim, "not run", f"these results cannot decide it ({type(exc).__name__}: {exc})")
        _CHECKS.append(safe)
        return safe
    return register


def check_findings(results: dict[str, ExperimentResults]) -> list[Finding]:
    """Each qualitative finding of SPEC §3, decided from this run's numbers."""
    return [check(results) for check in _CHECKS]


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf") if a else 1.0


@_finding("poGAMBITTS has much lower regret than standard TS at low noise")
def _low_noise(res, claim):
    exp = res.get("noise-linear")
    cfg = exp.config(noise_level=0) if exp else None
    if cfg is None or not {"poGAMBITTS", "StdTS"} <= set(cfg.agents):
        return Finding(claim, "not run", "needs noise-linear (noise_level=0) with poGAMBITTS and StdTS")
    po, std = cfg.agents["poGAMBITTS"], cfg.agents["StdTS"]
    ok = _lower(po, std) and po.final_mean < 0.5 * std.final_mean
    return Finding(claim, "reproduced" if ok else "not reproduced",
                   f"noise-linear, level 0: poGAMBITTS {_fmt(po)} vs StdTS {_fmt(std)} "
                   f"(ratio {_ratio(po.final_mean, std.final_mean):.2f}; "
                   "'much lower' = significantly lower and < 0.5x)")


def _advantages(exp, param, a="poGAMBITTS", b="StdTS"):
    labels = next(p["labels"] for p in exp.definition["sweep"] if p["name"] == param)
    out = []
    for lab in labels:
        cfg = exp.config(**{param: lab})
        if cfg is not None and a in cfg.agents and b in cfg.agents:
            out.append((float(lab), cfg.agents[a], cfg.agents[b]))
    return out


@_finding("poGAMBITTS's advantage over standard TS grows with the number of prompts K")
def _grows_with_k(res, claim):
    exp = res.get("arms")
    if not _agents_in(exp, "poGAMBITTS", "StdTS"):
        return Finding(claim, "not run", "needs arms with poGAMBITTS and StdTS")
    pts = _advantages(exp, "n_actions")
    ks = [k for k, _, _ in pts]
    adv = [s.final_mean - p.final_mean for _, p, s in pts]
    rho = _spearman(ks, adv)
    first, last = pts[0], pts[-1]
    se = math.hypot(math.hypot(first[1].final_se, first[2].final_se), math.hypot(last[1].final_se, last[2].final_se))
    ok = rho > 0 and adv[-1] - adv[0] > 1.96 * se
    detail = ", ".join(f"K={k:g}: {a:.1f}" for k, a in zip(ks, adv))
    return Finding(claim, "reproduced" if ok else "not reproduced",
                   f"StdTS - poGAMBITTS final regret: {detail} (Spearman rho {rho:.2f}; "
                   f"largest minus smallest K {adv[-1] - adv[0]:.1f}, 1.96 SE = {1.96 * se:.1f})")


@_finding("poGAMBITTS's advantage shrinks as the reward noise sigma_Y grows")
def _shrinks_with_noise(res, claim):
    exp = res.get("noise-linear")
    if not _agents_in(exp, "poGAMBITTS", "StdTS"):
        return Finding(claim, "not run", "needs noise-linear with poGAMBITTS and StdTS")
    pts = _advantages(exp, "noise_level")
    levels = [lv for lv, _, _ in pts]
    rel = [1 - _ratio(p.final_mean, s.final_mean) for _, p, s in pts]
    rho = _spearman(levels, rel)
    ok = rho < 0 and rel[-1] < rel[0]
    detail = ", ".join(f"level {lv:g}: {r:.2f}" for lv, r in zip(levels, rel))
    return Finding(claim, "reproduced" if ok else "not reproduced",
                   f"relative advantage 1 - po/StdTS: {detail} (Spearman rho {rho:.2f})")


@_finding("foGAMBITTS pays for learning 12 x K treatment models and needs long horizons when K is large")
def _fo_pays(res, claim):
    arms, longh = res.get("arms"), res.get("long-horizon")
    parts, verdicts = [], []
    if _agents_in(arms, "foGAMBITTS", "poGAMBITTS"):
        pts = _advantages(arms, "n_actions", "poGAMBITTS", "foGAMBITTS")
        gaps = [f.final_mean - p.final_mean for _, p, f in pts]
        verdicts.append(gaps[-1] > gaps[0] and _lower(pts[-1][1], pts[-1][2]))
        parts.append("foGAMBITTS - poGAMBITTS at T = 1000: "
                     + ", ".join(f"K={k:g}: {g:.1f}" for (k, _, _), g in zip(pts, gaps)))
    if longh and longh.configs and {"foGAMBITTS", "StdTS"} <= set(longh.configs[0].agents):
        c = longh.configs[0].agents
        fo, std = c["foGAMBITTS"], c["StdTS"]
        T = len(fo.mean)
        w = max(1, T // 10)
        early = min(1000, T)
        fo_early, std_early = fo.mean[early - 1], std.mean[early - 1]
        verdicts.append(fo.slope(w) < std.slope(w))
        parts.append(f"long horizon (K = 40, T = {T}): at round {early} foGAMBITTS {fo_early:.1f} vs StdTS "
                     f"{std_early:.1f}; final {_fmt(fo)} vs {_fmt(std)}; regret per round over the last {w} rounds "
                     f"{fo.slope(w):.3f} vs {std.slope(w):.3f}")
    if not verdicts:
        return Finding(claim, "not run", "needs arms (foGAMBITTS, poGAMBITTS) and/or long-horizon")
    status = "reproduced" if all(verdicts) else "partly reproduced" if any(verdicts) else "not reproduced"
    return Finding(claim, status, "; ".join(parts)
                   + " (criteria: the fo - po gap grows with K and fo is significantly worse at the largest K; "
                     "at the long horizon fo's late per-round regret is below standard TS's)")


@_finding("a misspecified embedding correlated with the true one still helps; an unrelated one can lose to "
             "standard TS")
def _misspecification(res, claim):
    exp = res.get("misspecification-1d")
    if not _agents_in(exp, "poGAMBITTS", "StdTS"):
        return Finding(claim, "not run", "needs misspecification-1d with poGAMBITTS and StdTS")
    cor, unr = exp.config(embedding="correlated"), exp.config(embedding="unrelated")
    if cor is None or unr is None:
        return Finding(claim, "not run", "needs the 'correlated' and 'unrelated' configs")
    helps = _lower(cor.agents["poGAMBITTS"], cor.agents["StdTS"])
    loses = unr.agents["poGAMBITTS"].final_mean > unr.agents["StdTS"].final_mean
    status = "reproduced" if helps and loses else "partly reproduced" if helps or loses else "not reproduced"
    return Finding(claim, status,
                   f"correlated: poGAMBITTS {_fmt(cor.agents['poGAMBITTS'])} vs StdTS {_fmt(cor.agents['StdTS'])}; "
                   f"unrelated: poGAMBITTS {_fmt(unr.agents['poGAMBITTS'])} vs StdTS {_fmt(unr.agents['StdTS'])}")


@_finding("hedging (prompt dummies in the reward model) recovers part of the loss under misspecification")
def _hedging(res, claim):
    exp = res.get("hedged")
    if not _agents_in(exp, "poGAMBITTS", "poGAMBITTS-hedged", "StdTS"):
        return Finding(claim, "not run", "needs hedged with poGAMBITTS, poGAMBITTS-hedged and StdTS")
    parts, wins = [], {}
    for label in ("correlated", "unrelated"):
        cfg = exp.config(embedding=label)
        if cfg is None:
            continue
        po, hd = cfg.agents["poGAMBITTS"], cfg.agents["poGAMBITTS-hedged"]
        wins[label] = _lower(hd, po)
        parts.append(f"{label}: hedged {_fmt(hd)} vs plain {_fmt(po)} (StdTS {_fmt(cfg.agents['StdTS'])})")
    if "unrelated" not in wins:
        return Finding(claim, "not run", "needs the hedged experiment's 'unrelated' config")
    status = "reproduced" if wins["unrelated"] else "partly reproduced" if any(wins.values()) else "not reproduced"
    return Finding(claim, status, "; ".join(parts) + " (criterion: hedged significantly lower for the unrelated "
                                                     "embedding)")


@_finding("(gambit-gym, not the paper) the ensemble beats standard TS on the non-linear outcome at the lowest "
             "noise")
def _ensemble(res, claim):
    exp = res.get("noise-mlp")
    cfg = exp.config(noise_level=0) if exp else None
    if cfg is None or not {"ensemble", "StdTS"} <= set(cfg.agents):
        return Finding(claim, "not run", "needs noise-mlp (noise_level=0) with ensemble and StdTS")
    ens, std = cfg.agents["ensemble"], cfg.agents["StdTS"]
    return Finding(claim, "reproduced" if _lower(ens, std) else "not reproduced",
                   f"noise-mlp, level 0: ensemble {_fmt(ens)} vs StdTS {_fmt(std)}")


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
            cells = [_fmt(cfg.agents[a]) if a in cfg.agents else "" for a in agents]
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
