"""The mHealth prompt set of the paper, read from its domain file (:file:`gambit_gym/domains/mhealth.toml`).

20 style dimensions x 2 poles = 40 prompts, each asking for a single 2-3
sentence step-count nudge written "mildly {id}". These names are views of the
``mhealth`` domain, kept for code written before domain files existed; new code
uses :func:`gambit_gym.domains.load_domain`.
"""

from __future__ import annotations

from gambit_gym.domains import Prompt, StyleDimension, load_domain

_MHEALTH = load_domain("mhealth")

#: The 40 mHealth prompts, positive then negative pole of each dimension, in the paper's order.
MHEALTH_PROMPTS: tuple[Prompt, ...] = _MHEALTH.prompts
#: The 20 style dimensions with their exemplar sentences.
STYLE_DIMENSIONS: tuple[StyleDimension, ...] = _MHEALTH.styles
DIMENSION_NAMES: tuple[str, ...] = tuple(_MHEALTH.style_dimensions)

__all__ = ["DIMENSION_NAMES", "MHEALTH_PROMPTS", "STYLE_DIMENSIONS", "Prompt"]
