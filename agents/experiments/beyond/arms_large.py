"""The finding read from ``arms-large.toml``: does GAMBITTS's advantage over the treatment-blind baselines keep
growing with the number of prompts K, up to K = 200?

The criteria, for one GAMBITTS agent against one baseline (as the paper's ``arms`` check,
``agents/experiments/paper/arms.py``): the advantage is the baseline's final regret minus the agent's; it
*grows with K* when its Spearman rank correlation with K is positive and the advantage at the largest K exceeds
the one at the smallest K by more than 1.96 combined standard errors of the four final regrets. Each of the four
pairs (poGAMBITTS, foGAMBITTS) x (StdTS, LinTS) is checked; all four growing is "reproduced", some "partly
reproduced", none "not reproduced"; a pair the results cannot decide (an agent not run, fewer than three K) is
named and left out, and the finding is undecided only when no pair can be decided. The evidence gives every
pair's advantage at every K.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agents.experiments.findings import Results, Undecidable, experiment, finding, spearman, sweep_points

if TYPE_CHECKING:  # only for annotations, as in findings.py
    from agents.experiments.report import ExperimentResults

#: (GAMBITTS agent, baseline) pairs whose advantage is checked, in the order the evidence lists them
PAIRS = (("poGAMBITTS", "StdTS"), ("poGAMBITTS", "LinTS"), ("foGAMBITTS", "StdTS"), ("foGAMBITTS", "LinTS"))


def advantage_growth(exp: ExperimentResults, agent: str, baseline: str) -> tuple[bool, str]:
    """Whether ``baseline``'s final regret minus ``agent``'s grows with ``n_actions`` (criteria in the module
    docstring), and the numbers that decide it."""
    pts = sweep_points(exp, "n_actions", agent, baseline, minimum=3)  # a rank correlation needs three points
    ks = [k for k, _, _ in pts]
    adv = [b.final_mean - a.final_mean for _, a, b in pts]
    rho = spearman(ks, adv)
    (_, a0, b0), (_, a1, b1) = pts[0], pts[-1]
    se = math.hypot(a0.final_se, b0.final_se, a1.final_se, b1.final_se)
    grows = rho > 0 and adv[-1] - adv[0] > 1.96 * se
    detail = ", ".join(f"K={k:g}: {a:+.1f}" for k, a in zip(ks, adv))
    return grows, (f"{baseline} - {agent}: {detail} (Spearman rho {rho:.2f}; K={ks[-1]:g} minus K={ks[0]:g} "
                   f"{adv[-1] - adv[0]:+.1f}, 1.96 SE = {1.96 * se:.1f}; {'grows' if grows else 'does not grow'})")


@finding("GAMBITTS's advantage over StdTS and LinTS grows with the number of prompts K, up to K = 200",
         reads=("arms-large",))
def grows_up_to_k200(results: Results) -> tuple[str, str]:
    exp = experiment(results, "arms-large")
    verdicts, parts, undecided = [], [], []
    for agent, baseline in PAIRS:
        try:
            grows, evidence = advantage_growth(exp, agent, baseline)
        except Undecidable as exc:
            undecided.append(f"{agent} vs {baseline}: {exc}")
            continue
        verdicts.append(grows)
        parts.append(evidence)
    if not verdicts:
        raise Undecidable("; ".join(undecided))
    parts += [f"undecided {reason}" for reason in undecided]
    status = "reproduced" if all(verdicts) else "partly reproduced" if any(verdicts) else "not reproduced"
    return status, "; ".join(parts)


FINDINGS = [grows_up_to_k200]
