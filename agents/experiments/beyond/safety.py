"""The findings read from ``safety.toml``: what a content filter between generation and delivery does to agents
that model the generator with or without it."""

from __future__ import annotations

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


FINDINGS = [filter_aware_bank, naive_gap_grows]
