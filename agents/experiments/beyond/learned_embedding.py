"""The finding read from ``learned-embedding.toml`` and ``learned-embedding-synthetic.toml``: how much of the gap
between a misspecified and the oracle embedding GAMBITTS closes by learning its embedding online."""

from __future__ import annotations

from agents.experiments.findings import Results, Undecidable, finding, require_agents, significantly_lower

#: the experiments this finding reads, in the order its evidence lists them
EXPERIMENTS = ("learned-embedding", "learned-embedding-synthetic")


def gap_closed(misspecified: float, learned: float, oracle: float) -> float:
    """The share of the misspecified-to-oracle regret gap the learned agent closes: 1 = as good as the oracle,
    0 = no better than the misspecified embedding (negative: worse). NaN when the gap is not positive.

    Example:
        >>> gap_closed(126.0, 50.0, 24.0)
        0.745...
    """
    gap = misspecified - oracle
    return (misspecified - learned) / gap if gap > 0 else float("nan")


@finding("learning the embedding online closes most of the gap between a misspecified and the oracle embedding",
         reads=EXPERIMENTS)
def learned_closes_gap(results: Results) -> tuple[str, str]:
    parts, verdicts = [], []
    for name in EXPERIMENTS:
        exp = results.get(name)
        if exp is None or not exp.configs:
            continue
        cfg = exp.configs[0]
        require_agents(exp, "learned", "oracle", "misspecified", cfg=cfg)
        learned, oracle, mis = cfg.agents["learned"], cfg.agents["oracle"], cfg.agents["misspecified"]
        horizon = len(learned.mean)
        shares = []
        for t in sorted({max(horizon // 10, 1), horizon // 2, horizon}):
            share = gap_closed(mis.mean[t - 1], learned.mean[t - 1], oracle.mean[t - 1])
            shares.append(f"T={t}: {share:.0%}")
        final = gap_closed(mis.final_mean, learned.final_mean, oracle.final_mean)
        verdicts.append((final >= 0.5 and significantly_lower(learned, mis), final > 0))
        others = [f"{label} {gap_closed(mis.final_mean, agent.final_mean, oracle.final_mean):.0%} "
                  f"({agent.final_mean:.1f})" for label, agent in cfg.agents.items()
                  if label.startswith("learned-")]  # the other estimators, for comparison (no verdict)
        parts.append(f"{name}: gap closed {', '.join(shares)} (final regret learned {learned.final_mean:.1f}, oracle "
                     f"{oracle.final_mean:.1f}, misspecified {mis.final_mean:.1f})"
                     + (f"; at T={horizon}: {', '.join(others)}" if others else ""))
    if not parts:
        raise Undecidable(f"none of {', '.join(EXPERIMENTS)} in these results")
    if all(most for most, _ in verdicts):
        status = "reproduced"
    elif any(some for _, some in verdicts):
        status = "partly reproduced"
    else:
        status = "not reproduced"
    return status, "; ".join(parts)
