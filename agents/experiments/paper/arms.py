"""The finding read from ``arms.toml``: poGAMBITTS's advantage over standard TS as the number of prompts grows.

(``long_horizon.py`` reads this experiment too, for foGAMBITTS.)
"""

from __future__ import annotations

import math

from agents.experiments.findings import Results, experiment, finding, require_agents, spearman, sweep_points


@finding("poGAMBITTS's advantage over standard TS grows with the number of prompts K", reads=("arms",))
def grows_with_k(results: Results) -> tuple[str, str]:
    exp = experiment(results, "arms")
    require_agents(exp, "poGAMBITTS", "StdTS")
    # a rank correlation needs three points
    pts = sweep_points(exp, "n_actions", "poGAMBITTS", "StdTS", minimum=3)
    ks = [k for k, _, _ in pts]
    adv = [s.final_mean - p.final_mean for _, p, s in pts]
    rho = spearman(ks, adv)
    first, last = pts[0], pts[-1]
    se = math.hypot(math.hypot(first[1].final_se, first[2].final_se), math.hypot(last[1].final_se, last[2].final_se))
    ok = rho > 0 and adv[-1] - adv[0] > 1.96 * se
    detail = ", ".join(f"K={k:g}: {a:.1f}" for k, a in zip(ks, adv))
    return ("reproduced" if ok else "not reproduced",
            f"StdTS - poGAMBITTS final regret: {detail} (Spearman rho {rho:.2f}; "
            f"largest minus smallest K {adv[-1] - adv[0]:.1f}, 1.96 SE = {1.96 * se:.1f})")
