"""The finding read from ``hedged.toml``: hedged poGAMBITTS (prompt dummies) under misspecification."""

from __future__ import annotations

from agents.experiments.findings import (
    Results,
    config,
    experiment,
    finding,
    fmt_final,
    require_agents,
    significantly_lower,
)


@finding("hedging (prompt dummies in the reward model) recovers part of the loss under misspecification",
         reads=("hedged",))
def hedging(results: Results) -> tuple[str, str]:
    exp = experiment(results, "hedged")
    require_agents(exp, "poGAMBITTS", "poGAMBITTS-hedged", "StdTS")
    config(exp, embedding="unrelated")  # the criterion reads it
    parts, wins = [], {}
    for label in ("correlated", "unrelated"):
        cfg = exp.config(embedding=label)
        if cfg is None:
            continue
        po, hd = cfg.agents["poGAMBITTS"], cfg.agents["poGAMBITTS-hedged"]
        wins[label] = significantly_lower(hd, po)
        parts.append(f"{label}: hedged {fmt_final(hd)} vs plain {fmt_final(po)} "
                     f"(StdTS {fmt_final(cfg.agents['StdTS'])})")
    status = "reproduced" if wins["unrelated"] else "partly reproduced" if any(wins.values()) else "not reproduced"
    return status, "; ".join(parts) + " (criterion: hedged significantly lower for the unrelated embedding)"
