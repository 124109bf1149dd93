"""The findings read from ``drift.toml`` and ``drift-llm.toml``: what a generator that changes during deployment
does to agents that trust an offline bank, and what the bank-as-prior agent with drift detection recovers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agents.experiments.findings import (
    Results,
    Undecidable,
    config,
    experiment,
    finding,
    fmt_final,
    require_agents,
    significantly_lower,
)

if TYPE_CHECKING:
    from agents.experiments.report import ConfigResult

#: the drift kinds that change the generator, per experiment
CHANGES = {"drift": ("abrupt", "gradual", "periodic"), "drift-llm": ("abrupt", "gradual", "endogenous")}


def _drifting_configs(results: Results, *agents: str) -> list[tuple[str, str, ConfigResult]]:
    """``(experiment, drift kind, config)`` of every finished drifting config, each holding ``agents``."""
    out = []
    for name, kinds in CHANGES.items():
        try:
            exp = experiment(results, name)
        except Undecidable:
            continue
        for kind in kinds:
            cfg = exp.config(drift=kind)
            if cfg is not None:
                require_agents(exp, *agents, cfg=cfg)
                out.append((name, kind, cfg))
    if not out:
        raise Undecidable("no drifting config of drift or drift-llm finished")
    return out


def _status(wins: list[bool]) -> str:
    return "reproduced" if all(wins) else "partly reproduced" if any(wins) else "not reproduced"


@finding("under generator drift, poGAMBITTS with its bank as a prior and a drift test that refreshes the bank "
         "beats poGAMBITTS, which trusts its bank for ever", reads=("drift", "drift-llm"))
def refresh_beats_trusting_the_bank(results: Results) -> tuple[str, str]:
    parts, wins = [], []
    for name, kind, cfg in _drifting_configs(results, "poGAMBITTS", "bank-prior-refresh"):
        refresh, po = cfg.agents["bank-prior-refresh"], cfg.agents["poGAMBITTS"]
        wins.append(significantly_lower(refresh, po))
        parts.append(f"{name} {kind}: refresh {fmt_final(refresh)} vs poGAMBITTS {fmt_final(po)}")
    return _status(wins), "; ".join(parts) + " ('beats' = significantly lower final regret, 1.96 combined SE)"


@finding("without drift, the bank as a prior costs nothing: its regret is not significantly above poGAMBITTS's",
         reads=("drift", "drift-llm"))
def bank_prior_costs_nothing_without_drift(results: Results) -> tuple[str, str]:
    parts, wins = [], []
    for name in CHANGES:
        try:
            exp = experiment(results, name)
            cfg = config(exp, drift="none")
        except Undecidable:
            continue
        require_agents(exp, "poGAMBITTS", "bank-prior", "bank-prior-refresh", cfg=cfg)
        po = cfg.agents["poGAMBITTS"]
        for label in ("bank-prior", "bank-prior-refresh"):
            agent = cfg.agents[label]
            excess = agent.final_mean - po.final_mean
            wins.append(excess <= 1.96 * math.hypot(agent.final_se, po.final_se))
            parts.append(f"{name}: {label} {fmt_final(agent)} vs poGAMBITTS {fmt_final(po)}")
    if not parts:
        raise Undecidable("no drift=none config of drift or drift-llm finished")
    return _status(wins), "; ".join(parts) + " (not significantly above: excess within 1.96 combined SE)"


@finding("under generator drift, the bank-prior agent with refresh beats standard Thompson sampling and its "
         "discounted form", reads=("drift", "drift-llm"))
def refresh_beats_generic_baselines(results: Results) -> tuple[str, str]:
    parts, wins = [], []
    for name, kind, cfg in _drifting_configs(results, "bank-prior-refresh", "StdTS", "StdTS-discounted"):
        refresh = cfg.agents["bank-prior-refresh"]
        for label in ("StdTS", "StdTS-discounted"):
            wins.append(significantly_lower(refresh, cfg.agents[label]))
        parts.append(f"{name} {kind}: refresh {fmt_final(refresh)} vs StdTS {fmt_final(cfg.agents['StdTS'])}, "
                     f"discounted StdTS {fmt_final(cfg.agents['StdTS-discounted'])}")
    return _status(wins), "; ".join(parts)


FINDINGS = [refresh_beats_trusting_the_bank, bank_prior_costs_nothing_without_drift, refresh_beats_generic_baselines]
