"""Small hand-made caches of hand-written domains, for tests that need exact style scores (no embedding)."""

from pathlib import Path

import numpy as np

from gambit_gym.cache import TreatmentCache
from gambit_gym.domains import SINGLE_CONTEXT, domain_from_text

#: Three given dimensions; prompts target c and a (in that order, unlike the dimensions'), b by none,
#: and one prompt targets nothing. No context factors: one context.
HANDMADE_DOMAIN = """
name = "handmade"
description = "prompts that target the dimensions in another order than they are declared"
default_outcome = "lin"
prompts = [
    { id = "c+", dimension = "c", pole = 1 },
    { id = "c-", dimension = "c", pole = -1 },
    { id = "a+", dimension = "a", pole = 1 },
    { id = "a-", dimension = "a", pole = -1 },
    "plain",
]

[styles.a]
given = true
[styles.b]
given = true
[styles.c]
given = true

[outcomes.lin]
dimensions = ["c", "a"]
coefficients = [1.0, 2.0]
intercept = 10.0
field_noise_sd = 3.0
"""


def handmade_cache(path: Path, domain_text: str = HANDMADE_DOMAIN, per_prompt: int = 6, seed: int = 0,
                   prompt_ids: list[str] | None = None) -> TreatmentCache:
    """A saved cache of ``domain_text`` (no context factors) with known scores: column c is high for "c+" and
    low for "c-" (AUC 1), column a is low for "a+" and high for "a-" (AUC 0), column b is noise."""
    domain = domain_from_text(domain_text, "handmade.toml")
    prompts = [p for p in domain.prompts if prompt_ids is None or p.id in prompt_ids]
    rng = np.random.default_rng(seed)
    dims = domain.style_dimensions
    rows, index = [], []
    for i, p in enumerate(prompts):
        for _ in range(per_prompt):
            score = rng.normal(0.0, 0.1, len(dims))
            if p.dimension in ("a", "c"):
                sign = p.pole if p.dimension == "c" else -p.pole
                score[dims.index(p.dimension)] += 3.0 * sign
            rows.append(score)
            index.append(i)
    scores = np.asarray(rows)
    scores = ((scores - scores.mean(0)) / scores.std(0)).astype(np.float32)
    n = len(rows)
    emb = rng.standard_normal((n, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    meta = {
        "domain": {"name": domain.name, "sha256": domain.sha256, "toml": domain.text},
        "prompts": [{"id": p.id, "dimension": p.dimension, "pole": p.pole} for p in prompts],
        "contexts": [[SINGLE_CONTEXT[0], list(SINGLE_CONTEXT[1])]],
        "style_dimensions": dims,
        "generator": {"name": "handmade", "params": {}},
        "embedder": {"name": "random", "dim": 8},
        "style_method": "given",
    }
    cache = TreatmentCache(texts=np.array([f"message {k} of prompt {prompts[i].id}" for k, i in enumerate(index)]),
                           prompt_index=np.asarray(index, dtype=np.int16),
                           context_index=np.zeros(n, dtype=np.int16), embeddings=emb, style_scores=scores,
                           style_axes=np.zeros((len(dims), 8), dtype=np.float32),
                           style_offset=np.zeros(len(dims), dtype=np.float32),
                           style_scale=np.ones(len(dims), dtype=np.float32), meta=meta)
    cache.save(path)
    return cache
