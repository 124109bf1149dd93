"""The finding read from ``misspecification-1d.toml``: poGAMBITTS with a correlated or an unrelated embedding."""

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


@finding("a misspecified embedding correlated with the true one still helps; an unrelated one can lose to "
         "standard TS", reads=("misspecification-1d",))
def misspecification(results: Results) -> tuple[str, str]:
    exp = experiment(results, "misspecification-1d")
    require_agents(exp, "poGAMBITTS", "StdTS")
    cor, unr = config(exp, embedding="correlated"), config(exp, embedding="unrelated")
    helps = significantly_lower(cor.agents["poGAMBITTS"], cor.agents["StdTS"])
    loses = unr.agents["poGAMBITTS"].final_mean > unr.agents["StdTS"].final_mean
    status = "reproduced" if helps and loses else "partly reproduced" if helps or loses else "not reproduced"
    return status, (f"correlated: poGAMBITTS {fmt_final(cor.agents['poGAMBITTS'])} vs StdTS "
                    f"{fmt_final(cor.agents['StdTS'])}; unrelated: poGAMBITTS {fmt_final(unr.agents['poGAMBITTS'])} "
                    f"vs StdTS {fmt_final(unr.agents['StdTS'])}")
