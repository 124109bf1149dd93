import warnings

import pytest

import gambit_gym  # noqa: F401  (registers the environments)

ENV_ID = "GeneratorMediated-v0"
#: every variant of the environment with small but representative options
VARIANT_KWARGS = [
    {"variant": "synthetic"},
    {"variant": "synthetic", "outcome": "mlp", "n_actions": 7, "embedding_dim": 4},
    {"variant": "misspecified"},
    {"variant": "misspecified", "view": "projection", "embedding_dim": 2, "embedding_noise_sd": 0.3},
]


@pytest.fixture(autouse=True)
def _quiet_gym_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render fps.*")
        yield
