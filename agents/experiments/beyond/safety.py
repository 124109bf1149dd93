"""The findings read from ``safety.toml``: what a content filter between generation and delivery does to agents
that model the generator with or without it."""

from __future__ import annotations

import math

import numpy as np

from agents.experiments.findings import (
    Results,
    Undecidable,
    config,
    experiment,
    finding,
    fmt_final,
    require_agents,
    significantly_lower,
    spearman,
)

#: the strictness levels of one way of handling a rejection, from none to strict: (label, share of messages rejected)
STRICTNESS = {"fallback": (("none", 0.0), ("fallback-0.9", 0.1), ("fallback-0.7", 0.3), ("fallback-0.5", 0.5)),
              "withhold": (("none", 0.0), ("withhold-0.9", 0.1), ("withhold-0.7", 0.3), ("withhold-0.5", 0.5))}


@finding("a poGAMBITTS bank drawn through the safety layer beats one drawn from the raw generator under a strict "
         "filter", reads=("safety",))
def filter_aware_bank(results: Results) -> tuple[str, str]:
    exp = experiment(results, "safety")
    parts, wins = [], []
    for label in ("fallback-0.5", "withhold-0.5"):
        try:
            cfg = config(exp, filter=label)
        except Undecidable:
            continue
        require_agents(exp, "poGAMBITTS", "poGAMBITTS-naive", cfg=cfg)
        aware, naive = cfg.agents["poGAMBITTS"], cfg.agents["poGAMBITTS-naive"]
        wins.append(significantly_lower(aware, naive))
        parts.append(f"{label}: filter-aware {fmt_final(aware)} vs naive {fmt_final(naive)}")
    if not parts:
        raise Undecidable("neither filter=fallback-0.5 nor filter=withhold-0.5 finished in safety")
    status = "reproduced" if all(wins) else "partly reproduced" if any(wins) else "not reproduced"
    return status, "; ".join(parts) + " ('beats' = significantly lower final regret, 1.96 combined SE)"


@finding("the naive bank's extra regret grows with the filter's strictness", reads=("safety",))
def naive_gap_grows(results: Results) -> tuple[str, str]:
    exp = experiment(results, "safety")
    parts, verdicts = [], []
    for mode, levels in STRICTNESS.items():
        shares, gaps = [], []
        for label, share in levels:
            cfg = exp.config(filter=label)
            if cfg is None or "poGAMBITTS" not in cfg.agents or "poGAMBITTS-naive" not in cfg.agents:
                continue
            shares.append(share)
            gaps.append(cfg.agents["poGAMBITTS-naive"].final_mean - cfg.agents["poGAMBITTS"].final_mean)
        if len(shares) < 3:  # a rank correlation needs three points
            continue
        rho = spearman(shares, gaps)
        verdicts.append(rho > 0 and gaps[-1] > gaps[0])
        detail = ", ".join(f"{s:.0%} rejected: {g:+.1f}" for s, g in zip(shares, gaps))
        parts.append(f"{mode}: naive minus filter-aware final regret {detail} (Spearman rho {rho:.2f})")
    if not parts:
        raise Undecidable("fewer than three strictness levels of either rejection mode finished in safety")
    status = "reproduced" if all(verdicts) else "partly reproduced" if any(verdicts) else "not reproduced"
    return status, "; ".join(parts)


#: The budgeted agent's stated level: at most this share of its replications may end over the harm budget.
VIOLATION_LEVEL = 0.05


def _final(exp, cfg, agent: str, series: str) -> tuple[float, float]:
    """Mean and SE over replications of ``agent``'s metric ``series`` at the last recorded round."""
    curve = cfg.agents[agent]
    if series not in curve.metric_names:
        raise Undecidable(f"no {series} series for {agent} in {exp.name} (config {cfg.config_id}); run it with "
                          "its metrics (safety.toml's [metrics.*])")
    values = curve.metric_final(series)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


@finding(f"the harm-budgeted agent keeps the realised mean harm within its budget (at most "
         f"{VIOLATION_LEVEL:.0%} of replications over budget at the horizon) where unrestricted poGAMBITTS breaks it",
         reads=("safety",))
def budget_kept(results: Results) -> tuple[str, str]:
    exp = experiment(results, "safety")
    require_agents(exp, "budgeted", "poGAMBITTS")
    parts, kept, binding = [], [], []
    for cfg in exp.configs:
        budgeted, se = _final(exp, cfg, "budgeted", "harm.violation")
        free, _ = _final(exp, cfg, "poGAMBITTS", "harm.violation")
        binds = free > 0.5  # the budget binds: unrestricted TS ends over it in most replications
        binding.append(binds)
        if binds:
            kept.append(budgeted <= VIOLATION_LEVEL)
        parts.append(f"{cfg.config_id}: budgeted {budgeted:.1%} +- {se:.1%} vs poGAMBITTS {free:.1%}"
                     + ("" if binds else " (budget not binding)"))
    if not kept:
        raise Undecidable("the budget binds in no finished config of safety (poGAMBITTS over budget in at most half "
                          "its replications everywhere): " + "; ".join(parts))
    status = "reproduced" if all(kept) else "partly reproduced" if any(kept) else "not reproduced"
    return status, ("replications over the budget at T (harm.violation): " + "; ".join(parts)
                    + f" (kept: at most {VIOLATION_LEVEL:.0%}, in every config where poGAMBITTS breaks the budget in "
                    "more than half its replications)")


@finding("a stricter filter means more rounds without the generated message: the share of rounds that send the "
         "fallback (or nothing) grows with the filter's strictness", reads=("safety",))
def fallbacks_grow(results: Results) -> tuple[str, str]:
    exp = experiment(results, "safety")
    parts, verdicts = [], []
    for mode, levels in STRICTNESS.items():
        shares, rates = [], []
        for label, share in levels:
            cfg = exp.config(filter=label)
            if cfg is None or not cfg.agents:
                continue
            # per config: the mean over its agents of the share of rounds not delivered as generated
            per_agent = []
            for agent in cfg.agents:
                fallback, _ = _final(exp, cfg, agent, "fallback_rate")
                delivered, _ = _final(exp, cfg, agent, "delivered_rate")
                per_agent.append(fallback + 1.0 - delivered)
            shares.append(share)
            rates.append(float(np.mean(per_agent)))
        if len(shares) < 3:  # a rank correlation needs three points
            continue
        rho = spearman(shares, rates)
        verdicts.append(rho == 1.0)
        detail = ", ".join(f"{s:.0%} rejected: {r:.1%}" for s, r in zip(shares, rates))
        parts.append(f"{mode}: rounds without the generated message (fallback_rate + 1 - delivered_rate, mean over "
                     f"agents) {detail} (Spearman rho {rho:.2f})")
    if not parts:
        raise Undecidable("fewer than three strictness levels of either rejection mode finished in safety")
    status = "reproduced" if all(verdicts) else "partly reproduced" if any(verdicts) else "not reproduced"
    return status, "; ".join(parts) + " (grows: Spearman rho = 1 from no filter to the strictest)"


FINDINGS = [filter_aware_bank, naive_gap_grows, budget_kept, fallbacks_grow]
