"""The findings read from ``noise-linear.toml``: poGAMBITTS against standard TS as the reward noise grows."""

from __future__ import annotations

from agents.experiments.findings import (
    Results,
    config,
    experiment,
    finding,
    fmt_final,
    ratio,
    require_agents,
    significantly_lower,
    spearman,
    sweep_points,
)


@finding("poGAMBITTS has much lower regret than standard TS at low noise", reads=("noise-linear",))
def low_noise(results: Results) -> tuple[str, str]:
    exp = experiment(results, "noise-linear")
    cfg = config(exp, noise_level=0)
    require_agents(exp, "poGAMBITTS", "StdTS", cfg=cfg)
    po, std = cfg.agents["poGAMBITTS"], cfg.agents["StdTS"]
    ok = significantly_lower(po, std) and po.final_mean < 0.5 * std.final_mean
    return ("reproduced" if ok else "not reproduced",
            f"noise-linear, level 0: poGAMBITTS {fmt_final(po)} vs StdTS {fmt_final(std)} "
            f"(ratio {ratio(po.final_mean, std.final_mean):.2f}; "
            "'much lower' = significantly lower and < 0.5x)")


@finding("poGAMBITTS's advantage shrinks as the reward noise sigma_Y grows", reads=("noise-linear",))
def shrinks_with_noise(results: Results) -> tuple[str, str]:
    exp = experiment(results, "noise-linear")
    require_agents(exp, "poGAMBITTS", "StdTS")
    # a rank correlation needs three points
    pts = sweep_points(exp, "noise_level", "poGAMBITTS", "StdTS", minimum=3)
    levels = [lv for lv, _, _ in pts]
    rel = [1 - ratio(p.final_mean, s.final_mean) for _, p, s in pts]
    rho = spearman(levels, rel)
    ok = rho < 0 and rel[-1] < rel[0]
    detail = ", ".join(f"level {lv:g}: {r:.2f}" for lv, r in zip(levels, rel))
    return ("reproduced" if ok else "not reproduced",
            f"relative advantage 1 - po/StdTS: {detail} (Spearman rho {rho:.2f})")
