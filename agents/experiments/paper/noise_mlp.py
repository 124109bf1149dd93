"""The finding read from ``noise-mlp.toml`` (gambit-gym's, not the paper's): the ensemble on a non-linear outcome."""

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


@finding("(gambit-gym, not the paper) the ensemble beats standard TS on the non-linear outcome at the lowest "
         "noise", reads=("noise-mlp",))
def ensemble(results: Results) -> tuple[str, str]:
    exp = experiment(results, "noise-mlp")
    cfg = config(exp, noise_level=0)
    require_agents(exp, "ensemble", "StdTS", cfg=cfg)
    ens, std = cfg.agents["ensemble"], cfg.agents["StdTS"]
    return ("reproduced" if significantly_lower(ens, std) else "not reproduced",
            f"noise-mlp, level 0: ensemble {fmt_final(ens)} vs StdTS {fmt_final(std)}")
