"""Experiments beyond the paper: one ``<name>.toml`` per experiment and, beside the experiments a finding is drawn
from, ``<name>.py`` (``-`` written ``_``) with the checks of those findings, as in
:mod:`agents.experiments.paper`.

``named_experiments()`` lists these after the paper's grid, in alphabetical order; the report checks
:data:`FINDINGS` after the paper's findings, under a section of their own.

:data:`FINDINGS` lists every finding in the order the report gives them.
"""

from agents.experiments.beyond import arms_large as _arms_large
from agents.experiments.beyond import drift as _drift
from agents.experiments.beyond import learned_embedding as _learned
from agents.experiments.beyond import safety as _safety
from agents.experiments.findings import FindingCheck

FINDINGS: list[FindingCheck] = [_learned.learned_closes_gap]

# the safety layer's findings (safety.toml), after the learned embedding's
FINDINGS += _safety.FINDINGS

# arms-large.toml's finding: GAMBITTS's advantage as K grows to 200
FINDINGS += _arms_large.FINDINGS

# generator drift (drift.toml, drift-llm.toml)
FINDINGS += _drift.FINDINGS

__all__ = ["FINDINGS"]
