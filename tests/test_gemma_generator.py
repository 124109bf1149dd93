"""The second real generator: Gemma 3 270M (a base model) prompted few-shot through llama.cpp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gambit_gym.cache import completion_prompt, load_cache
from gambit_gym.domains import load_domain
from tests.conftest import TINY_CONTEXTS, TINY_PROMPT_IDS


def test_completion_prompt_renders_the_domain_request_as_a_few_shot_transcript():
    domain = load_domain("mhealth")
    messages = domain.messages(domain.prompt("formal"), {"location": "work", "previous_day_steps": "0-4,999"},
                               examples=4)
    text = completion_prompt(messages)
    assert text.startswith(domain.system)
    assert text.count("Request: ") == 5 and text.count("Message: ") == 4 and text.endswith("Message:")
    for example in (domain.example, *domain.more_examples):
        assert f"Message: {example.reply}\n\n" in text
    assert "Make the message mildly formal." in text.rsplit("Request: ", 1)[1]


def test_domain_messages_show_as_many_worked_examples_as_asked():
    domain = load_domain("mhealth")
    context = {"location": "home", "previous_day_steps": "0-4,999"}
    for k in (0, 1, 2, 4, 9):
        msgs = domain.messages(domain.prompt("humorous"), context, examples=k)
        assert sum(m["role"] == "assistant" for m in msgs) == min(k, 1 + len(domain.more_examples))
    assert domain.messages(domain.prompt("humorous"), context) == domain.messages(
        domain.prompt("humorous"), context, examples=1)  # what a chat model has always been shown
    with pytest.raises(ValueError, match="examples"):
        domain.messages(domain.prompt("humorous"), context, examples=-1)


def test_completion_prompt_rejects_unknown_roles_and_a_missing_request():
    with pytest.raises(ValueError, match="role 'tool'"):
        completion_prompt([{"role": "tool", "content": "x"}])
    with pytest.raises(ValueError, match="last message must be the user's request"):
        completion_prompt([{"role": "system", "content": "x"}])


def test_more_examples_need_the_first_example(tmp_path):
    from gambit_gym.domains import DomainError, domain_from_text

    mhealth = load_domain("mhealth")
    text = mhealth.text
    start = text.index("[generation.example]")
    end = text.index("[[generation.more_examples]]")
    with pytest.raises(DomainError, match="needs \\[generation.example\\] first"):
        domain_from_text(text[:start] + text[end:], "no-example.toml", Path(mhealth.source).parent)


@pytest.mark.llm
def test_gemma3_builds_a_real_cache_that_the_environment_replays(tmp_path, embedder):
    from gambit_gym.cache import Gemma3Generator, build_cache
    from gambit_gym.cache.prompts import MHEALTH_PROMPTS
    from gambit_gym.contexts import ContextSpace

    gemma = Gemma3Generator(max_tokens=80)
    assert gemma.examples == 4 and gemma.params["mode"] == "few-shot completion"
    prompts = [p for p in MHEALTH_PROMPTS if p.id in TINY_PROMPT_IDS][:2]
    cache = build_cache(tmp_path / "gemma.npz", gemma, per_cell=2, seed=3, prompts=prompts,
                        contexts=ContextSpace(TINY_CONTEXTS), embedder=embedder, progress=False)
    cache = load_cache(tmp_path / "gemma.npz")
    assert cache.meta["generator"]["name"] == "gemma-3-270m"
    assert (cache.cell_counts() == 2).all()
    assert all(("step" in t.lower() or "walk" in t.lower()) and "\n" not in t for t in cache.texts)
    assert np.allclose(np.linalg.norm(cache.embeddings, axis=1), 1.0, atol=1e-4)
    # without prefix reuse a fixed seed gives the same message again
    exact = Gemma3Generator(max_tokens=40, reuse_prefix=False)
    domain = load_domain("mhealth")
    msgs = domain.messages(domain.prompt(prompts[0].id), {"location": "home", "previous_day_steps": "0-4,999"},
                           examples=4)
    first = exact.generate(msgs, 11)
    assert exact.generate(msgs, 12) and exact.generate(msgs, 11) == first
