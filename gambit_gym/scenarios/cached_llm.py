"""The cached-LLM scenario: replay real generated messages from a treatment cache.

Each step draws a message uniformly from the (prompt, context) cell of the
cache; the reward is an outcome model of the paper on the message's standardised
style scores; the agent sees a configurable working embedding of the message.
Expected rewards are exact cell averages. The options, with defaults, are
:data:`CACHED_LLM_OPTIONS`.

This module needs only numpy and the cache file format, so ``import gambit_gym``
stays light.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gambit_gym import streams
from gambit_gym.cache.format import TreatmentCache, load_cache
from gambit_gym.outcomes import LinearOutcome, MLPOutcome, OutcomeModel
from gambit_gym.scenarios.base import NOISE_LEVEL, REWARD_NOISE_SD, Option, Scenario, resolve_options
from gambit_gym.validation import check_choice, check_int

BUNDLED_CACHE = "mhealth_smollm2.npz"

#: The paper's outcome models fitted on the paper's cohort (outcome: sqrt daily steps):
#: dimensions, coefficients, intercept, field noise sd.
OUTCOMES: dict[str, dict[str, Any]] = {
    "linear-3d": {"dims": ("optimism", "formality", "severity"), "coef": (0.35232, -0.49944, -0.15796),
                  "intercept": 82.83602, "field_noise_sd": 24.5712},
    "linear-1d": {"dims": ("optimism",), "coef": (-0.13961,), "intercept": 82.79491, "field_noise_sd": 24.6273},
    "linear-3d-context": {"dims": ("optimism", "formality", "severity"), "coef": (0.35232, -0.49944, -0.15796),
                          "intercept": 82.83602, "field_noise_sd": 24.5712},
    "mlp": {"dims": ("optimism", "severity", "formality"), "intercept": 82.83602, "field_noise_sd": 24.3797},
}
#: Context effects of ``linear-3d-context``: per location, and per step bucket (index 0..3).
LOCATION_EFFECT = {"work": 0.035, "home": -0.035, "other": 0.0}
STEP_BUCKET_EFFECT = 0.026


def bundled_cache_path() -> Path:
    """The cache shipped inside the package (SmolLM2-135M-Instruct, 40 prompts x 12 contexts)."""
    return Path(str(importlib.resources.files("gambit_gym") / "data" / BUNDLED_CACHE))


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float, size: int) -> TreatmentCache:
    return load_cache(path)


def cached_load(path: str | Path) -> TreatmentCache:
    """Load once per process and file version (many environments share one cache)."""
    path = Path(path).resolve()
    if not path.exists():
        return load_cache(path)  # raises the CacheError naming the file
    stat = path.stat()
    return _load(str(path), stat.st_mtime, stat.st_size)


def spread_prompts(prompt_means: np.ndarray, k: int) -> list[int]:
    """K prompts whose expected rewards spread evenly over their range (the paper's arm subsets)."""
    order = np.argsort(prompt_means, kind="stable")
    if k >= len(order):
        return list(range(len(order)))
    targets = np.linspace(prompt_means[order[0]], prompt_means[order[-1]], k)
    chosen: list[int] = []
    for t in targets:
        free = [i for i in order if i not in chosen]
        chosen.append(int(min(free, key=lambda i: abs(prompt_means[i] - t))))
    return sorted(chosen)


class CachedLLMScenario(Scenario):
    """A scenario replaying a :class:`~gambit_gym.cache.TreatmentCache` (see :func:`cached_llm`).

    ``options`` holds every option of :data:`CACHED_LLM_OPTIONS`, with ``outcome``
    and ``problem_seed`` already checked and ``working_embedding`` resolved, as
    :func:`cached_llm` passes them.
    """

    def __init__(self, cache: TreatmentCache, options: dict[str, Any]) -> None:
        self.variant = "cached-llm"
        self.cache = cache
        self.options = options
        self.contexts = cache.contexts
        dims = cache.style_dimensions
        outcome_name = options["outcome"]
        spec = OUTCOMES[outcome_name]
        latent_cols = [dims.index(d) for d in spec["dims"]]
        latent = cache.style_scores[:, latent_cols].astype(np.float64)
        self.outcome = self._outcome(outcome_name, spec, latent, options["problem_seed"])
        f_all = self.outcome.mean(latent, cache.context_index.astype(np.int64))

        # Cell bookkeeping over all prompts: messages sorted by cell, i.e. by (context, prompt).
        C, P = self.contexts.n_contexts, len(cache.prompts)
        cell = cache.context_index.astype(np.int64) * P + cache.prompt_index
        order = np.argsort(cell, kind="stable")
        counts = cache.cell_counts()
        starts = np.concatenate([[0], np.cumsum(counts.ravel())[:-1]]).reshape(C, P)
        cell_mean = (np.bincount(cell, weights=f_all, minlength=C * P) / counts.ravel()).reshape(C, P)

        # Which prompts are the actions.
        self.prompt_subset = self._prompts(options, cache, cell_mean)
        self._counts = counts[:, self.prompt_subset]
        self._starts = starts[:, self.prompt_subset]
        self._f = f_all[order]
        self._texts = cache.texts[order]
        self._working = self._working_embedding(options["working_embedding"], cache)[order]
        self.prompt_ids = [cache.prompts[p]["id"] for p in self.prompt_subset]
        self._set_oracle(cell_mean[:, self.prompt_subset])

        field_noise_sd = options["field_noise_sd"] or spec["field_noise_sd"]
        self._set_noise(float(np.sqrt(latent.var(axis=0).sum())), field_noise_sd, options["noise_level"],
                        options["reward_noise_sd"])

    # -- construction helpers ------------------------------------------------------------
    def _outcome(self, name: str, spec: dict[str, Any], latent: np.ndarray, problem_seed: int) -> OutcomeModel:
        contexts = self.contexts
        effect = np.zeros(contexts.n_contexts)
        if name == "linear-3d-context":
            names = contexts.factor_names
            if names[:2] != ("location", "previous_day_steps"):
                raise ValueError(f"outcome: 'linear-3d-context' needs the mHealth contexts, the cache has {names}")
            for c in range(contexts.n_contexts):
                lv = contexts.levels[c]
                effect[c] = LOCATION_EFFECT.get(contexts.factors[0][1][lv[0]], 0.0) + STEP_BUCKET_EFFECT * lv[1]
        if name != "mlp":
            return LinearOutcome(spec["intercept"], np.asarray(spec["coef"]), effect)
        # The paper's MLP weights are not published: a fixed seeded one (64 ReLU units) whose
        # per-message spread matches the 3-D linear model's, so noise levels mean the same.
        rng = streams.stream(problem_seed, streams.CACHED_MLP)
        mlp = MLPOutcome.random(latent.shape[1], 64, rng, 0.0, effect)
        raw = mlp.mean(latent, np.zeros(len(latent), dtype=np.int64))
        lin = latent @ np.asarray(OUTCOMES["linear-3d"]["coef"])[[0, 2, 1]]
        scale = lin.std() / raw.std() if raw.std() > 0 else 1.0
        w2 = mlp.w2 * scale
        intercept = spec["intercept"] - float((raw * scale).mean())
        return MLPOutcome(intercept, mlp.w1, mlp.b1, w2, effect)

    @staticmethod
    def _prompts(options: dict[str, Any], cache: TreatmentCache, cell_mean: np.ndarray) -> list[int]:
        ids = cache.prompt_ids
        if options["prompts"] is not None:
            chosen = []
            for pid in options["prompts"]:
                if pid not in ids:
                    raise ValueError(f"prompts: unknown prompt {pid!r}; the cache has {ids}")
                chosen.append(ids.index(pid))
            if len(set(chosen)) != len(chosen) or not chosen:
                raise ValueError("prompts: expected a non-empty list of distinct prompt ids")
            if options["n_actions"] is not None and options["n_actions"] != len(chosen):
                raise ValueError(f"n_actions: {options['n_actions']} differs from len(prompts) = {len(chosen)}")
            return chosen
        k = len(ids) if options["n_actions"] is None else check_int("n_actions", options["n_actions"], 1, len(ids))
        return spread_prompts(cell_mean.mean(axis=0), k)

    @staticmethod
    def _working_embedding(spec: Any, cache: TreatmentCache) -> np.ndarray:
        dims = cache.style_dimensions
        if isinstance(spec, str) and spec == "full":
            return cache.embeddings.astype(np.float64)
        if isinstance(spec, str) and spec.startswith("pca:"):
            k = spec.split(":", 1)[1]
            if not k.isdigit() or not 1 <= int(k) <= cache.embeddings.shape[1]:
                limit = cache.embeddings.shape[1]
                raise ValueError(f"working_embedding: 'pca:k' needs k in [1, {limit}], got {spec!r}")
            x = cache.embeddings.astype(np.float64)
            x = x - x.mean(0)
            _, _, vt = np.linalg.svd(x, full_matrices=False)
            return x @ vt[: int(k)].T
        if isinstance(spec, str):
            spec = [spec]
        if isinstance(spec, Sequence) and spec and all(isinstance(d, str) for d in spec):
            unknown = [d for d in spec if d not in dims]
            if unknown:
                raise ValueError(
                    f"working_embedding: unknown style dimension(s) {unknown}; expected names from {dims}, "
                    "'pca:k' or 'full'"
                )
            return cache.style_scores[:, [dims.index(d) for d in spec]].astype(np.float64)
        raise ValueError(f"working_embedding: expected style dimension names, 'pca:k' or 'full', got {spec!r}")

    # -- the round -----------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return self._working.shape[1]

    def draw(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One round for each row: ``(message text (n,), working embedding (n, d), reward (n,))``."""
        count = self._counts[contexts, actions]
        idx = self._starts[contexts, actions] + (rng.random(len(actions)) * count).astype(np.int64)
        reward = self._f[idx] + self.noise_sd * rng.standard_normal(len(actions))
        return self._texts[idx], self._working[idx], reward

    def sample_treatments(self, action: int, context: int, n: int, rng: np.random.Generator) -> np.ndarray:
        action, context, n = self._check_cell(action, context, n)
        start, count = self._starts[context, action], self._counts[context, action]
        return self._working[start + rng.integers(count, size=n)]

    def cell_embeddings(self, action: int, context: int) -> np.ndarray:
        """Every working embedding in the (action, context) cell (the whole bank)."""
        action, context, _ = self._check_cell(action, context, 1)
        return self._working[self._cell(action, context)].copy()

    def mean_embedding(self) -> np.ndarray:
        C, K = self._counts.shape
        out = np.empty((C, K, self.embedding_dim))
        for c in range(C):
            for a in range(K):
                out[c, a] = self._working[self._cell(a, c)].mean(0)
        return out

    def _cell(self, action: int, context: int) -> slice:
        """Where the (action, context) cell's messages lie in the cell-sorted arrays."""
        start = self._starts[context, action]
        return slice(start, start + self._counts[context, action])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cache": self.cache.path, "prompts": self.prompt_ids,
                "generator": self.cache.meta["generator"]["name"]}


#: Options of the cached-LLM variant, in the order ``describe()`` lists them.
CACHED_LLM_OPTIONS: tuple[Option, ...] = (
    Option("cache_path", "str | Path | None", None,
           "the treatment cache (.npz); None = the bundled SmolLM2-135M-Instruct cache (40 prompts x 12 contexts)"),
    Option("outcome", "str", "linear-3d",
           '"linear-3d", "linear-1d", "linear-3d-context" or "mlp": an outcome model of the paper on the '
           "message's style scores"),
    Option("n_actions", "int | None", 5,
           "K: that many of the cache's prompts, their expected rewards spread evenly over their range; None = all"),
    Option("prompts", "list[str] | None", None, "the prompts to use as actions, by id (instead of n_actions)"),
    Option("working_embedding", "str | list[str] | None", None,
           'what the agent sees: style dimension names, "pca:k" (the first k principal components of the '
           'sentence embedding) or "full" (all of it); None = the outcome\'s style dimensions'),
    NOISE_LEVEL,
    REWARD_NOISE_SD,
    Option("field_noise_sd", "float | None", None, "the sd of noise level 4; None = the outcome's field noise sd"),
    Option("problem_seed", "int", 0, 'seed of the "mlp" outcome\'s weights'),
)


def cached_llm(**options: Any) -> CachedLLMScenario:
    """Cached-LLM scenario: real messages from a treatment cache (default: the bundled SmolLM2 cache).

    Options: :data:`CACHED_LLM_OPTIONS` (the Arguments table of
    :class:`~gambit_gym.env.GeneratorMediatedEnv` lists them).
    """
    opts = resolve_options("cached-llm", CACHED_LLM_OPTIONS, options)
    check_choice("outcome", opts["outcome"], OUTCOMES)
    if opts["working_embedding"] is None:
        opts["working_embedding"] = list(OUTCOMES[opts["outcome"]]["dims"])
    opts["problem_seed"] = check_int("problem_seed", opts["problem_seed"], 0)
    path = opts["cache_path"] if opts["cache_path"] is not None else bundled_cache_path()
    return CachedLLMScenario(cached_load(path), opts)
