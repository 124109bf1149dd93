"""Scenarios: named ways of composing context -> prompt -> treatment -> embedding -> reward.

``make_scenario(variant, **options)`` validates the options and returns a
:class:`Scenario`, the batched core that both the single and the vector
environment step through. The problem instance (treatment means, outcome
weights) is fixed by explicit arrays or by ``problem_seed``; it never depends
on the episode seed.

Each variant has a builder (:data:`VARIANTS`) and a table of its options with
defaults (:data:`VARIANT_OPTIONS`), the source of the environment's Arguments table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gambit_gym.safety import SafeScenario, apply_safety
from gambit_gym.scenarios.base import Option, Scenario
from gambit_gym.scenarios.cached_llm import CACHED_LLM_OPTIONS, CachedLLMScenario, cached_llm
from gambit_gym.scenarios.gaussian import (
    MISSPECIFIED_OPTIONS,
    SYNTHETIC_OPTIONS,
    GaussianScenario,
    misspecified,
    synthetic,
)

#: variant name -> scenario builder.
VARIANTS: dict[str, Callable[..., Scenario]] = {
    "synthetic": synthetic,
    "misspecified": misspecified,
    "cached-llm": cached_llm,
}

#: variant name -> its options (name, type, default, meaning).
VARIANT_OPTIONS: dict[str, tuple[Option, ...]] = {
    "synthetic": SYNTHETIC_OPTIONS,
    "misspecified": MISSPECIFIED_OPTIONS,
    "cached-llm": CACHED_LLM_OPTIONS,
}


def make_scenario(variant: str = "synthetic", **options: Any) -> Scenario:
    """Build the named scenario; an unknown variant lists the valid ones."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    scenario = VARIANTS[variant](**options)
    # The safety layer (an option of every variant) wraps the raw scenario, and drift the layered one;
    # without them nothing changes.
    scenario = apply_safety(scenario, scenario.options.get("safety"))
    from gambit_gym.drift import apply_drift  # here: gambit_gym.drift builds on this package

    return apply_drift(scenario, scenario.options.get("drift"))


__all__ = [
    "VARIANTS",
    "VARIANT_OPTIONS",
    "CachedLLMScenario",
    "GaussianScenario",
    "Option",
    "SafeScenario",
    "Scenario",
    "make_scenario",
]
