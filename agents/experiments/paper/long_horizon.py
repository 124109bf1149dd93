"""The finding read from ``long-horizon.toml`` and ``arms.toml``: what foGAMBITTS pays for its treatment models.

Each experiment gives one criterion; the finding is decided from those whose experiment is in the results.
"""

from __future__ import annotations

from agents.experiments.findings import (
    Results,
    Undecidable,
    experiment,
    finding,
    fmt_final,
    require_agents,
    significantly_lower,
    sweep_points,
)


def _gap_grows_with_k(results: Results) -> tuple[bool, str]:
    """arms: the fo - po gap grows with K and fo is significantly worse at the largest K."""
    arms = experiment(results, "arms")
    require_agents(arms, "foGAMBITTS", "poGAMBITTS")
    pts = sweep_points(arms, "n_actions", "poGAMBITTS", "foGAMBITTS", minimum=2)
    gaps = [f.final_mean - p.final_mean for _, p, f in pts]
    verdict = gaps[-1] > gaps[0] and significantly_lower(pts[-1][1], pts[-1][2])
    return verdict, ("foGAMBITTS - poGAMBITTS at T = 1000: "
                     + ", ".join(f"K={k:g}: {g:.1f}" for (k, _, _), g in zip(pts, gaps)))


def _late_regret_below_standard_ts(results: Results) -> tuple[bool, str]:
    """long-horizon: fo's per-round regret over the last tenth of the rounds is below standard TS's."""
    longh = experiment(results, "long-horizon")
    cfg = longh.configs[0]
    require_agents(longh, "foGAMBITTS", "StdTS", cfg=cfg)
    fo, std = cfg.agents["foGAMBITTS"], cfg.agents["StdTS"]
    T = len(fo.mean)
    w = max(1, T // 10)
    early = min(1000, T)
    fo_early, std_early = fo.mean[early - 1], std.mean[early - 1]
    return fo.slope(w) < std.slope(w), (
        f"long horizon (K = 40, T = {T}): at round {early} foGAMBITTS {fo_early:.1f} vs StdTS "
        f"{std_early:.1f}; final {fmt_final(fo)} vs {fmt_final(std)}; regret per round over the last {w} rounds "
        f"{fo.slope(w):.3f} vs {std.slope(w):.3f}")


@finding("foGAMBITTS pays for learning 12 x K treatment models and needs long horizons when K is large",
         reads=("arms", "long-horizon"))
def fo_pays(results: Results) -> tuple[str, str]:
    parts, verdicts, reasons = [], [], []
    for criterion in (_gap_grows_with_k, _late_regret_below_standard_ts):
        try:
            verdict, part = criterion(results)
        except Undecidable as exc:  # the other experiment may still decide it
            reasons.append(str(exc))
            continue
        verdicts.append(verdict)
        parts.append(part)
    if not verdicts:
        raise Undecidable("; ".join(reasons))
    status = "reproduced" if all(verdicts) else "partly reproduced" if any(verdicts) else "not reproduced"
    return status, ("; ".join(parts)
                    + " (criteria: the fo - po gap grows with K and fo is significantly worse at the largest K; "
                      "at the long horizon fo's late per-round regret is below standard TS's)")
