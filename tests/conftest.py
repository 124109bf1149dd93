import warnings

import pytest

import gambit_gym  # noqa: F401  (registers the environments)

#: every variant of the environment with small but representative options
VARIANT_KWARGS = [
    {"variant": "synthetic"},
    {"variant": "synthetic", "outcome": "mlp", "n_actions": 7, "embedding_dim": 4},
    {"variant": "misspecified"},
    {"variant": "misspecified", "view": "projection", "embedding_dim": 2, "embedding_noise_sd": 0.3},
]


def pytest_collection_modifyitems(config, items):
    """``llm`` and ``ray`` tests are slow too, so ``-m "not slow"`` leaves them out."""
    for item in items:
        if item.get_closest_marker("llm") or item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _quiet_gym_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render fps.*")
        yield


#: A tiny real cache: 4 prompts x 2 contexts x 3 messages from SmolLM2, embedded with MiniLM.
TINY_PROMPT_IDS = ("optimistic", "pessimistic", "formal", "informal")
TINY_CONTEXTS = (("location", ("home", "work")),)


class CountingGenerator:
    """Wraps a real generator; counts calls and can stop the build after ``stop_after`` calls."""

    def __init__(self, inner, stop_after=None):
        self.inner, self.stop_after, self.calls = inner, stop_after, 0
        self.name, self.params = inner.name, inner.params

    def generate(self, messages, seed):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return self.inner.generate(messages, seed)


@pytest.fixture(scope="session")
def smollm2():
    from gambit_gym.cache import SmolLM2Generator

    return SmolLM2Generator(max_tokens=80)


@pytest.fixture(scope="session")
def embedder():
    from gambit_gym.cache.embedder import SentenceEmbedder

    return SentenceEmbedder()


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory, smollm2, embedder):
    """Build the tiny cache twice: interrupted after 5 generations, then resumed."""
    from gambit_gym.cache import MHEALTH_PROMPTS, build_cache
    from gambit_gym.contexts import ContextSpace

    prompts = [p for p in MHEALTH_PROMPTS if p.id in TINY_PROMPT_IDS]
    contexts = ContextSpace(TINY_CONTEXTS)
    out = tmp_path_factory.mktemp("tiny") / "tiny.npz"
    first = CountingGenerator(smollm2, stop_after=5)
    with pytest.raises(KeyboardInterrupt):
        build_cache(out, first, per_cell=3, seed=1, prompts=prompts, contexts=contexts, embedder=embedder,
                    progress=False)
    second = CountingGenerator(smollm2)
    cache = build_cache(out, second, per_cell=3, seed=1, prompts=prompts, contexts=contexts, embedder=embedder,
                        progress=False)
    return {"path": out, "cache": cache, "first_calls": first.calls, "second_calls": second.calls}
