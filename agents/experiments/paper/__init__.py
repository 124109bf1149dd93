"""The paper's study grid of the paper: one ``<name>.toml`` per experiment and, beside the experiments the
paper draws a finding from, ``<name>.py`` (``-`` written ``_``) with the checks of those findings.

:data:`FINDINGS` lists every finding in the order the report gives them.
"""

from agents.experiments.paper import arms, hedged, long_horizon, misspecification_1d, noise_linear, noise_mlp

FINDINGS = (
    noise_linear.low_noise,
    arms.grows_with_k,
    noise_linear.shrinks_with_noise,
    long_horizon.fo_pays,
    misspecification_1d.misspecification,
    hedged.hedging,
    noise_mlp.ensemble,
)

__all__ = ["FINDINGS"]
