"""The default context space is the mHealth domain file's, and its numbers are those the paper's runs used."""

import numpy as np

from gambit_gym.contexts import MHEALTH_FACTORS, ContextSpace
from gambit_gym.domains import load_domain

#: The factors as they were written in code before the domain file held them: the default must not move.
WRITTEN_BEFORE = (
    ("location", ("home", "work", "other")),
    ("previous_day_steps", ("0-4,999", "5,000-9,999", "10,000-15,000", "more than 15,000")),
)


def test_the_default_contexts_come_from_the_mhealth_domain_file_unchanged():
    domain = load_domain("mhealth")
    assert MHEALTH_FACTORS == WRITTEN_BEFORE
    assert ContextSpace() == domain.contexts == ContextSpace(WRITTEN_BEFORE)
    space, before = ContextSpace(), ContextSpace(WRITTEN_BEFORE)
    assert (space.n_contexts, space.feature_dim) == (12, 7)
    assert np.array_equal(space.features, before.features) and np.array_equal(space.levels, before.levels)
    assert space.describe(5) == {"location": "work", "previous_day_steps": "5,000-9,999"}
