"""The treatment-cache file: one versioned, self-describing ``.npz`` (no pickle, ever).

Arrays:
    texts             (N,) str      the generated messages
    prompt_index      (N,) int      index into ``meta["prompts"]``
    context_index     (N,) int      index of the context (row-major over ``meta["contexts"]``)
    embeddings        (N, E) float32 full sentence embeddings (unit norm)
    style_scores      (N, S) float32 style scores, standardised over the cache (mean 0, sd 1)
    style_axes        (S, E) float32 the semantic axis of each style dimension
    style_offset, style_scale (S,)  raw score = embedding . axis; standardised = (raw - offset) / scale
    meta              ()  str       JSON: format, version, prompts, contexts, generator, embedder,
                                    style_dimensions, created, build statistics

``load_cache`` validates everything and raises :class:`CacheError` naming the
file and the problem: a truncated or foreign file, a wrong version, mismatched
shapes, NaNs, or an empty (prompt, context) cell.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gambit_gym.contexts import ContextSpace

FORMAT = "gambit-gym-treatment-cache"
VERSION = 1
ARRAYS = ("texts", "prompt_index", "context_index", "embeddings", "style_scores", "style_axes",
          "style_offset", "style_scale")


class CacheError(ValueError):
    """A cache file is unreadable, foreign, of another version, or inconsistent."""


@dataclass
class TreatmentCache:
    """Generated treatments for every (prompt, context) cell, with embeddings and style scores."""

    texts: np.ndarray
    prompt_index: np.ndarray
    context_index: np.ndarray
    embeddings: np.ndarray
    style_scores: np.ndarray
    style_axes: np.ndarray
    style_offset: np.ndarray
    style_scale: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = "<memory>"

    # -- views ---------------------------------------------------------------------------
    @property
    def prompts(self) -> list[dict[str, Any]]:
        return self.meta["prompts"]

    @property
    def prompt_ids(self) -> list[str]:
        return [p["id"] for p in self.prompts]

    @property
    def style_dimensions(self) -> list[str]:
        return list(self.meta["style_dimensions"])

    @property
    def contexts(self) -> ContextSpace:
        return ContextSpace.from_factors(self.meta["contexts"])

    @property
    def n_texts(self) -> int:
        return len(self.texts)

    def cell_counts(self) -> np.ndarray:
        """Messages per (context, prompt): ``(n_contexts, n_prompts)``."""
        counts = np.zeros((self.contexts.n_contexts, len(self.prompts)), dtype=np.int64)
        np.add.at(counts, (self.context_index, self.prompt_index), 1)
        return counts

    # -- io ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file, then rename): never a half-written cache."""
        path = Path(path)
        self.validate(str(path))
        tmp = path.with_name(path.name + ".tmp")
        meta = {**self.meta, "format": FORMAT, "version": VERSION}
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                meta=np.array(json.dumps(meta)),
                texts=np.asarray(self.texts, dtype=str),
                **{k: getattr(self, k) for k in ARRAYS if k != "texts"},
            )
        os.replace(tmp, path)
        self.path = str(path)
        return path

    def validate(self, where: str | None = None) -> None:
        where = where or self.path

        def fail(problem: str) -> None:
            raise CacheError(f"{where}: {problem}")

        n = len(self.texts)
        if n == 0:
            fail("holds no texts")
        for name in ("prompt_index", "context_index"):
            arr = getattr(self, name)
            if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
                fail(f"{name} has shape {arr.shape} and dtype {arr.dtype}; expected ({n},) integers")
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            fail(f"embeddings has shape {self.embeddings.shape}; expected ({n}, E)")
        n_dims = len(self.meta.get("style_dimensions", []))
        if self.style_scores.shape != (n, n_dims):
            fail(f"style_scores has shape {self.style_scores.shape}; expected ({n}, {n_dims})")
        if self.style_axes.shape != (n_dims, self.embeddings.shape[1]):
            fail(f"style_axes has shape {self.style_axes.shape}; expected ({n_dims}, {self.embeddings.shape[1]})")
        for name in ("style_offset", "style_scale"):
            if getattr(self, name).shape != (n_dims,):
                fail(f"{name} has shape {getattr(self, name).shape}; expected ({n_dims},)")
        for name in ("embeddings", "style_scores", "style_axes", "style_offset", "style_scale"):
            if not np.all(np.isfinite(getattr(self, name))):
                fail(f"{name} contains NaN or infinite values")
        n_prompts = len(self.meta.get("prompts", []))
        try:
            contexts = ContextSpace.from_factors(self.meta["contexts"])
        except (KeyError, TypeError, ValueError) as exc:
            fail(f"meta['contexts'] is not a list of (factor, levels): {exc}")
        if n_prompts == 0:
            fail("meta['prompts'] is empty")
        if self.prompt_index.min() < 0 or self.prompt_index.max() >= n_prompts:
            fail(f"prompt_index outside [0, {n_prompts - 1}]")
        if self.context_index.min() < 0 or self.context_index.max() >= contexts.n_contexts:
            fail(f"context_index outside [0, {contexts.n_contexts - 1}]")
        counts = self.cell_counts()
        if (counts == 0).any():
            c, p = np.argwhere(counts == 0)[0]
            fail(f"cell (prompt {self.prompts[p]['id']!r}, context {contexts.describe(int(c))}) is empty "
                 f"({int((counts == 0).sum())} empty cells in all)")


def load_cache(path: str | Path) -> TreatmentCache:
    """Read and validate a cache file; never executes code from it."""
    path = Path(path)
    if not path.exists():
        raise CacheError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("meta", *ARRAYS) if k not in data.files]
            if missing:
                raise CacheError(f"{path}: not a gambit-gym cache (missing {missing})")
            arrays = {k: data[k] for k in ARRAYS}
            meta_raw = data["meta"]
    except CacheError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CacheError(f"{path}: not a readable cache file (truncated, corrupt or not .npz): {exc}") from None
    try:
        meta = json.loads(str(meta_raw))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CacheError(f"{path}: metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CacheError(f"{path}: not a gambit-gym cache (format {found!r})")
    if meta.get("version") != VERSION:
        raise CacheError(
            f"{path}: cache format version {meta.get('version')!r}; this gambit-gym reads version {VERSION}"
        )
    if arrays["texts"].dtype.kind != "U":
        raise CacheError(f"{path}: texts must be stored as unicode strings, got dtype {arrays['texts'].dtype}")
    cache = TreatmentCache(meta=meta, path=str(path), **arrays)
    cache.validate()
    return cache
