"""Findings: a qualitative claim about some experiments, and the check that decides it from their numbers.

A finding declares the experiments it reads; its check sees only those (a check
that reads another experiment finds it missing) and returns ``(status,
evidence)``, or raises :class:`Undecidable` with the reason when the results
cannot decide it (an experiment not run, an agent label missing, a parameter
not swept). Any other exception is a bug in the check and propagates.

    from agents.experiments.findings import config, experiment, finding, fmt_final, require_agents, \
        significantly_lower

    @finding("A beats B", reads=("my_sweep",))
    def a_beats_b(results):
        exp = experiment(results, "my_sweep")
        cfg = config(exp, n_actions=5)
        require_agents(exp, "A", "B", cfg=cfg)
        a, b = cfg.agents["A"], cfg.agents["B"]
        verdict = "reproduced" if significantly_lower(a, b) else "not reproduced"
        return verdict, f"A {fmt_final(a)} vs B {fmt_final(b)}"

    check_findings(load_results("results/"), [a_beats_b])

The paper's findings live beside the experiments they read, in
``agents/experiments/paper/<name>.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gambit_gym.validation import check_choice

if TYPE_CHECKING:  # only for annotations: the report imports this module
    from agents.experiments.report import AgentCurve, ConfigResult, ExperimentResults

#: What a check can conclude; ``UNDECIDED`` is set by :meth:`FindingCheck.decide` from an :class:`Undecidable`.
DECIDED = ("reproduced", "partly reproduced", "not reproduced")
UNDECIDED = "undecided"

Results = Mapping[str, "ExperimentResults"]


class Undecidable(Exception):
    """These results cannot decide a finding; the message says why (shown as the finding's evidence)."""


@dataclass(frozen=True)
class Finding:
    """A finding as decided from one run: ``status`` is one of ``DECIDED`` or ``UNDECIDED``."""

    claim: str
    status: str
    evidence: str  # the numbers behind a decision, or why it cannot be decided


@dataclass(frozen=True)
class FindingCheck:
    """A claim, the experiments whose results decide it, and the check that decides it."""

    claim: str
    reads: tuple[str, ...]
    check: Callable[[Results], tuple[str, str]]

    def applies_to(self, results: Results) -> bool:
        """Whether ``results`` hold any experiment this finding reads."""
        return any(name in results for name in self.reads)

    def decide(self, results: Results) -> Finding:
        """Run the check on the experiments it declares; an :class:`Undecidable` becomes ``UNDECIDED``."""
        visible = {name: results[name] for name in self.reads if name in results}
        try:
            status, evidence = self.check(visible)
        except Undecidable as exc:
            return Finding(self.claim, UNDECIDED, str(exc))
        return Finding(self.claim, check_choice("status", status, DECIDED), evidence)


def finding(claim: str, reads: Sequence[str]) -> Callable[[Callable[[Results], tuple[str, str]]], FindingCheck]:
    """Decorator: a check function of the experiments ``reads`` becomes a :class:`FindingCheck` of ``claim``."""
    if isinstance(reads, str) or not reads or not all(isinstance(name, str) for name in reads):
        raise TypeError(f"reads: expected a non-empty sequence of experiment names, got {reads!r}")

    def make(check: Callable[[Results], tuple[str, str]]) -> FindingCheck:
        return FindingCheck(claim, tuple(reads), check)

    return make


# -- reading results: each helper raises Undecidable with the reason ------------------------------
def experiment(results: Results, name: str) -> ExperimentResults:
    """The results of experiment ``name``, with at least one finished config."""
    exp = results.get(name)
    if exp is None:
        raise Undecidable(f"experiment {name} not in these results")
    if not exp.configs:
        raise Undecidable(f"experiment {name} has no finished configs")
    return exp


def config(exp: ExperimentResults, **params: object) -> ConfigResult:
    """The finished config of ``exp`` with these parameter labels (``noise_level=0``)."""
    cfg = exp.config(**params)
    if cfg is None:
        wanted = ",".join(f"{k}={v}" for k, v in params.items())
        raise Undecidable(f"no finished config {wanted} in {exp.name}")
    return cfg


def require_agents(exp: ExperimentResults, *agents: str, cfg: ConfigResult | None = None) -> None:
    """Every finished config of ``exp`` (or only ``cfg``) holds these agent labels."""
    for c in exp.configs if cfg is None else [cfg]:
        for agent in agents:
            if agent not in c.agents:
                raise Undecidable(f"missing agent {agent} in {exp.name} (config {c.config_id} has "
                                  f"{', '.join(c.agents)})")


def sweep_points(exp: ExperimentResults, param: str, a: str, b: str,
                 minimum: int) -> list[tuple[float, AgentCurve, AgentCurve]]:
    """``(value, a's curve, b's curve)`` for each finished config along ``param``, in sweep order.

    ``param`` must be swept with numeric labels, and at least ``minimum`` configs must hold both agents."""
    labels = next((p["labels"] for p in exp.definition.get("sweep", []) if p["name"] == param), None)
    if labels is None:
        raise Undecidable(f"{exp.name} does not sweep {param}")
    out = []
    for label in labels:
        cfg = exp.config(**{param: label})
        if cfg is not None and a in cfg.agents and b in cfg.agents:
            try:
                value = float(label)
            except ValueError:
                raise Undecidable(f"{exp.name}: {param} label {label!r} is not a number") from None
            out.append((value, cfg.agents[a], cfg.agents[b]))
    if len(out) < minimum:
        have = "only one value" if len(out) == 1 else f"{len(out)} values"
        raise Undecidable(f"{have} of {param} in {exp.name} with {a} and {b} (needs {minimum})")
    return out


# -- comparing results ----------------------------------------------------------------------------
def fmt_final(c: AgentCurve) -> str:
    """Final regret as ``mean +- SE``."""
    return f"{c.final_mean:.1f} +- {c.final_se:.1f}"


def significantly_lower(a: AgentCurve, b: AgentCurve) -> bool:
    """a's final regret significantly below b's (difference beyond 1.96 combined SE)."""
    return a.final_mean + 1.96 * math.hypot(a.final_se, b.final_se) < b.final_mean


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation; NaN for fewer than three points."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1]) if len(x) > 2 else float("nan")


def ratio(a: float, b: float) -> float:
    """a / b, with 0 / 0 = 1 and a / 0 = inf."""
    return a / b if b else float("inf") if a else 1.0
