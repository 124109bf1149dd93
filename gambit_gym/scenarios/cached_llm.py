"""The cached-LLM scenario: replay real generated messages from a treatment cache of any domain.

Each step draws a message uniformly from the (prompt, context) cell of the
cache; the reward is an outcome model on the message's standardised style
scores, a preset of the cache's domain (:mod:`gambit_gym.domains`) or a model
given inline; the agent sees a configurable working embedding of the message.
Expected rewards are exact cell averages. The options, with defaults, are
:data:`CACHED_LLM_OPTIONS`. Nothing here is specific to a domain: the prompts,
contexts, style dimensions, outcome models and calibrations all come from the
cache and its domain file.

This module needs only numpy, the cache file format and the domain files, so
``import gambit_gym`` stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gambit_gym import streams
from gambit_gym.cache.format import TreatmentCache, load_cache
from gambit_gym.datafiles import file_sha256
from gambit_gym.domains import (
    DEFAULT_DOMAIN,
    Calibration,
    Domain,
    OutcomeSpec,
    domain_from_text,
    load_domain,
    shipped_domains,
)
from gambit_gym.outcomes import LinearOutcome, MLPOutcome, OutcomeModel
from gambit_gym.scenarios.base import (
    DRIFT,
    N_NOISE_LEVELS,
    NOISE_LEVEL,
    REWARD_NOISE_SD,
    SAFETY,
    Option,
    Scenario,
    check_scale,
    resolve_noise_sd,
    resolve_options,
)
from gambit_gym.validation import check_int


def bundled_cache_path(domain: str | Path | Domain = DEFAULT_DOMAIN) -> Path:
    """The cache a domain file declares (default: the mHealth SmolLM2-135M-Instruct cache shipped in the package)."""
    d = load_domain(domain)
    if d.cache is None:
        raise ValueError(f"domain: {d.name!r} ({d.source}) declares no cache; give cache_path")
    return d.cache


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


def cache_domain(cache: TreatmentCache, domain: str | Path | Domain | None = None) -> Domain:
    """The domain of a cache: ``domain`` if given, else the one the cache records, else (a cache written before
    domain files existed, when mHealth was the only world) the mHealth domain. It must fit the cache."""
    if domain is not None:
        found = load_domain(domain)
    elif "domain" in cache.meta:
        found = domain_from_text(cache.meta["domain"]["toml"], f"{cache.path} (its domain record)")
    else:
        found = load_domain(DEFAULT_DOMAIN)
    problems = found.cache_problems(cache.prompts, cache.style_dimensions, cache.meta["contexts"])
    if problems:
        hint = "" if domain is not None else "; give the domain option (a domain file that fits the cache)"
        raise ValueError(f"domain: {found.name!r} ({found.source}) does not fit the cache {cache.path}: "
                         + "; ".join(problems) + hint)
    return found


#: Options that name files: in an experiment file, a relative path is relative to that file's folder.
PATH_OPTIONS = ("cache_path", "domain")


def _names_a_file(option: str, value: Any) -> bool:
    """Whether an option's value is a file path (a shipped domain's name is not)."""
    if option == "domain" and isinstance(value, str) and value in shipped_domains():
        return False
    return isinstance(value, (str, Path))


def resolve_paths(options: Mapping[str, Any], folder: str | Path) -> dict[str, Any]:
    """``options`` with each relative file path among :data:`PATH_OPTIONS` made absolute against ``folder``.

    Example:
        >>> resolve_paths({"cache_path": "data/c.npz", "domain": "mhealth"}, "/exp")
        {'cache_path': '/exp/data/c.npz', 'domain': 'mhealth'}
    """
    out = dict(options)
    for name in PATH_OPTIONS:
        value = out.get(name)
        if _names_a_file(name, value) and not Path(value).is_absolute():
            out[name] = str(Path(folder, value).resolve())
    return out


def data_fingerprints(options: Mapping[str, Any]) -> dict[str, str]:
    """The sha256 of the content of every file an environment's options read: for the cached-LLM variant the
    cache (the bundled one when ``cache_path`` is None) and the domain file whose outcome presets it uses,
    unless the cache records its own domain; empty for other variants.

    What an experiment stores to notice a file replaced at the same path (its path string would not).

    Example:
        >>> sorted(data_fingerprints({"variant": "cached-llm"}))
        ['cache_path', 'domain']
        >>> data_fingerprints({"variant": "synthetic"})
        {}
    """
    if options.get("variant", "synthetic") != "cached-llm":
        return {}
    domain = options.get("domain")
    cache = options.get("cache_path")
    if cache is None:
        cache = bundled_cache_path(domain if domain is not None else DEFAULT_DOMAIN)
    out = {"cache_path": file_sha256(cache)}
    if domain is None and "domain" not in cached_load(cache).meta:
        domain = DEFAULT_DOMAIN  # a cache older than domain files takes the mHealth domain's presets
    if domain is not None:
        out["domain"] = file_sha256(load_domain(domain).source)
    return out


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

    ``options`` holds every option of :data:`CACHED_LLM_OPTIONS` as :func:`cached_llm` passes them:
    ``problem_seed`` checked, ``working_embedding`` resolved; ``domain`` is the cache's domain and
    ``outcome`` the resolved model.
    """

    def __init__(self, cache: TreatmentCache, options: dict[str, Any], domain: Domain,
                 outcome: OutcomeSpec, calibration: Calibration | None = None,
                 reference: CachedLLMScenario | None = None) -> None:
        self.variant = "cached-llm"
        self.cache = cache
        # Another generator in the same world (drift): the reference's scoring, outcome, actions and noise.
        self.reference = reference
        if reference is not None:
            _check_same_world(reference.cache, cache)
        self.domain = domain
        self.outcome_spec = outcome
        self.calibration = calibration
        self.options = options
        self.contexts = cache.contexts
        dims = cache.style_dimensions
        missing = [d for d in outcome.dimensions if d not in dims]
        if missing:
            raise ValueError(f"outcome: {outcome.name!r} uses style dimension(s) {missing} that the cache lacks; "
                             f"its dimensions are {dims}")
        # Calibration rescales every style score: the outcome's and the working embedding's alike.
        self._style_sd = None if calibration is None else calibration.style_sd
        latent = self._styles(cache, [dims.index(d) for d in outcome.dimensions])
        if reference is None:
            self.outcome = self._outcome(outcome, latent, options["problem_seed"])
        else:
            self.outcome = reference.outcome
        f_all = self.outcome.mean(latent, cache.context_index.astype(np.int64))

        # Cell bookkeeping over all prompts: messages sorted by cell, i.e. by (context, prompt).
        C, P = self.contexts.n_contexts, len(cache.prompts)
        cell = cache.context_index.astype(np.int64) * P + cache.prompt_index
        order = np.argsort(cell, kind="stable")
        counts = cache.cell_counts()
        starts = np.concatenate([[0], np.cumsum(counts.ravel())[:-1]]).reshape(C, P)
        cell_mean = (np.bincount(cell, weights=f_all, minlength=C * P) / counts.ravel()).reshape(C, P)

        # Which prompts are the actions (another generator's cache: the reference's, by id).
        if reference is None:
            self.prompt_subset = self._prompts(options, cache, cell_mean)
        else:
            self.prompt_subset = [cache.prompt_ids.index(pid) for pid in reference.prompt_ids]
        self._counts = counts[:, self.prompt_subset]
        self._starts = starts[:, self.prompt_subset]
        self._f = f_all[order]
        self._order = order  # what a safety layer's checks read (check_features) is looked up through it
        self._texts = cache.texts[order]
        self._working = self._working_embedding(options["working_embedding"], cache)[order]
        self.prompt_ids = [cache.prompts[p]["id"] for p in self.prompt_subset]
        self._set_oracle(cell_mean[:, self.prompt_subset])

        treatment_scale = float(np.sqrt(latent.var(axis=0).sum()))
        if reference is not None:  # the world's noise does not change with the generator
            self.treatment_scale = reference.treatment_scale
            self.noise_levels = reference.noise_levels
            self.noise_sd = reference.noise_sd
        elif calibration is None:
            field_noise_sd = outcome.field_noise_sd if options["field_noise_sd"] is None else options["field_noise_sd"]
            self._set_noise(treatment_scale, field_noise_sd, options["noise_level"], options["reward_noise_sd"])
        else:
            if options["field_noise_sd"] is not None:
                raise ValueError(f"field_noise_sd: calibration {calibration.name!r} fixes the noise levels "
                                 f"{list(calibration.noise_levels)}; leave it None (or set reward_noise_sd)")
            if len(calibration.noise_levels) != N_NOISE_LEVELS:
                raise ValueError(f"calibration: {calibration.name!r} of domain {domain.name!r} declares "
                                 f"{len(calibration.noise_levels)} noise levels; expected {N_NOISE_LEVELS}")
            self.treatment_scale = treatment_scale
            self.noise_levels = np.asarray(calibration.noise_levels, dtype=np.float64)
            self.noise_sd = resolve_noise_sd(options["noise_level"], options["reward_noise_sd"], self.noise_levels)

    # -- construction helpers ------------------------------------------------------------
    def _styles(self, cache: TreatmentCache, columns: list[int]) -> np.ndarray:
        """Style score columns as float64, rescaled by the calibration if there is one.

        With a reference (another generator's cache of the same world), the messages are scored on the
        reference's axes and standardisation: a style shift between generators stays visible."""
        if self.reference is None:
            scores = cache.style_scores[:, columns].astype(np.float64)
        else:
            ref = self.reference.cache
            raw = cache.embeddings.astype(np.float64) @ ref.style_axes[columns].astype(np.float64).T
            scores = (raw - ref.style_offset[columns]) / ref.style_scale[columns]
        return scores if self._style_sd is None else scores * self._style_sd

    def _context_effect(self, spec: OutcomeSpec) -> np.ndarray:
        """The outcome's additive effect of each of the cache's contexts (a sum over factors, by level name)."""
        contexts = self.contexts
        effect = np.zeros(contexts.n_contexts)
        for name, per_level in spec.context_effects.items():
            if name not in contexts.factor_names:
                raise ValueError(f"outcome: {spec.name!r} has effects of the context factor {name!r}, which the "
                                 f"cache's contexts {list(contexts.factor_names)} lack")
            j = contexts.factor_names.index(name)
            levels = contexts.factors[j][1]
            values = [check_scale(f"outcome.context_effects.{name}", per_level[lv], minimum=None) for lv in levels]
            effect = effect + np.asarray(values)[contexts.levels[:, j]]
        return effect

    def _outcome(self, spec: OutcomeSpec, latent: np.ndarray, problem_seed: int) -> OutcomeModel:
        effect = self._context_effect(spec)
        intercept = check_scale("outcome.intercept", spec.intercept, minimum=None)
        check_scale("outcome.field_noise_sd", spec.field_noise_sd)
        if spec.type == "linear":
            coef = [check_scale("outcome.coefficients", c, minimum=None) for c in spec.coefficients]
            return LinearOutcome(intercept, np.asarray(coef), effect)
        # A fixed seeded network (its weights from problem_seed) whose per-message spread is set: matched to a
        # linear preset's, so that noise levels mean the same, or given.
        rng = streams.stream(problem_seed, streams.CACHED_MLP)
        mlp = MLPOutcome.random(latent.shape[1], spec.hidden_units, rng, 0.0, effect)
        raw = mlp.mean(latent, np.zeros(len(latent), dtype=np.int64))
        if spec.spread_like is not None:
            ref = self.domain.outcomes[spec.spread_like]
            coef = [ref.coefficients[ref.dimensions.index(d)] if d in ref.dimensions else 0.0
                    for d in spec.dimensions]
            target = (latent @ np.asarray(coef)).std()
        else:
            target = check_scale("outcome.spread", spec.spread)
        scale = target / raw.std() if raw.std() > 0 else 1.0
        w2 = mlp.w2 * scale
        return MLPOutcome(intercept - float((raw * scale).mean()), mlp.w1, mlp.b1, w2, effect)

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

    def _working_embedding(self, spec: Any, cache: TreatmentCache) -> np.ndarray:
        dims = cache.style_dimensions
        if isinstance(spec, str) and spec == "full":
            return cache.embeddings.astype(np.float64)
        if isinstance(spec, str) and spec.startswith("pca:"):
            k = spec.split(":", 1)[1]
            if not k.isdigit() or not 1 <= int(k) <= cache.embeddings.shape[1]:
                limit = cache.embeddings.shape[1]
                raise ValueError(f"working_embedding: 'pca:k' needs k in [1, {limit}], got {spec!r}")
            if self.reference is not None:  # the reference's components: one working embedding for both
                centre, basis = self.reference._pca_frame(int(k))
                return (cache.embeddings.astype(np.float64) - centre) @ basis.T
            x = cache.embeddings.astype(np.float64)
            centre = x.mean(0)
            x = x - centre
            _, _, vt = np.linalg.svd(x, full_matrices=False)
            self._pca = (centre, vt)
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
            return self._styles(cache, [dims.index(d) for d in spec])
        raise ValueError(f"working_embedding: expected style dimension names, 'pca:k' or 'full', got {spec!r}")

    def _pca_frame(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The centre and first ``k`` principal directions of this cache's sentence embeddings."""
        if getattr(self, "_pca", None) is None:
            x = self.cache.embeddings.astype(np.float64)
            centre = x.mean(0)
            self._pca = (centre, np.linalg.svd(x - centre, full_matrices=False)[2])
        return self._pca[0], self._pca[1][:k]

    def with_generator(self, cache: TreatmentCache) -> CachedLLMScenario:
        """The same world served by another generator: ``cache`` holds its messages (same domain, prompts,
        contexts and embedder). Scores, outcome, actions, working embedding and noise are this scenario's.

        Example:
            >>> s = cached_llm()
            >>> other = s.with_generator(s.cache)   # the same cache: the same expected rewards
            >>> bool(np.allclose(other.expected_reward, s.expected_reward, atol=1e-4))
            True
        """
        return CachedLLMScenario(cache, self.options, self.domain, self.outcome_spec, self.calibration,
                                 reference=self)

    # -- message-level access (endogenous drift reweights the messages of each cell) ------------------
    @property
    def message_rewards(self) -> np.ndarray:
        """f of every message, in the cell-sorted order."""
        return self._f

    @property
    def cell_starts(self) -> np.ndarray:
        """``(n_contexts, n_actions)`` where each action cell starts in the cell-sorted messages."""
        return self._starts

    @property
    def cell_counts(self) -> np.ndarray:
        """``(n_contexts, n_actions)`` messages per action cell."""
        return self._counts

    def messages(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(texts, working embeddings, f)`` of the cell-sorted messages ``idx``."""
        return self._texts[idx], self._working[idx], self._f[idx]

    # -- the round -----------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return self._working.shape[1]

    def generate(
        self, actions: np.ndarray, contexts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The generation half of a round: ``(texts, working embeddings, f (n,), message indices)``.

        The indices (into the cell-sorted messages) are what :meth:`check_features` reads.
        """
        count = self._counts[contexts, actions]
        idx = self._starts[contexts, actions] + (rng.random(len(actions)) * count).astype(np.int64)
        return self._texts[idx], self._working[idx], self._f[idx], idx

    def check_features(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What a safety check reads for messages ``idx``: every style score (as the outcome reads them), the text."""
        return self.check_features_all()[idx], self._texts[idx]

    def check_features_all(self) -> np.ndarray:
        """Every message's style scores, ``(n_messages, n_style_dimensions)``, in the cell-sorted order."""
        if getattr(self, "_check_features", None) is None:
            self._check_features = self._styles(self.cache, list(range(len(self.cache.style_dimensions))))[self._order]
        return self._check_features

    @property
    def texts_sorted(self) -> np.ndarray:
        """Every message's text, in the cell-sorted order of :meth:`check_features_all`."""
        return self._texts

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
        return {**super().describe(), "cache": self.cache.path, "domain": self.domain.name,
                "prompts": self.prompt_ids, "generator": self.cache.meta["generator"]["name"]}


def _check_same_world(ref: TreatmentCache, other: TreatmentCache) -> None:
    """Two caches can serve one world only with the same domain, prompts, contexts, styles and embedder."""
    problems = []
    if cache_domain(ref).name != cache_domain(other).name:
        problems.append(f"domain {cache_domain(other).name!r} differs from {cache_domain(ref).name!r}")
    if sorted(ref.prompt_ids) != sorted(other.prompt_ids):
        problems.append("its prompts differ")
    if ref.contexts.factors != other.contexts.factors:
        problems.append("its contexts differ")
    if ref.style_dimensions != other.style_dimensions:
        problems.append("its style dimensions differ")
    if ref.meta.get("embedder") != other.meta.get("embedder"):
        problems.append(f"its embedder {other.meta.get('embedder')} differs from {ref.meta.get('embedder')}")
    if problems:
        raise ValueError(f"drift.cache_path: {other.path} cannot serve the world of {ref.path}: "
                         + "; ".join(problems))


#: Options of the cached-LLM variant, in the order ``describe()`` lists them.
CACHED_LLM_OPTIONS: tuple[Option, ...] = (
    Option("cache_path", "str | Path | None", None,
           "the treatment cache (.npz) of any domain; None = the cache the domain file declares (default: the "
           "bundled mHealth SmolLM2-135M-Instruct cache, 40 prompts x 12 contexts)"),
    Option("domain", "str | Path | None", None,
           'a shipped domain\'s name ("mhealth", "study_nudges") or a domain file (.toml) that fits the cache: '
           "its outcome presets and calibrations; None = the domain the cache records (mHealth for caches older "
           "than domain files)"),
    Option("outcome", "str | dict | None", None,
           'an outcome preset of the domain (mHealth: "linear-3d", "linear-1d", "linear-3d-context", "mlp") or a '
           'model on the style scores, a dict with the keys of a domain file\'s [outcomes] table ("dimensions", '
           '"coefficients", "intercept", "field_noise_sd"; or "type": "mlp" with "spread_like" or "spread"); '
           "None = the domain's default_outcome (mHealth: \"linear-3d\")"),
    Option("calibration", "str | None", None,
           'a calibration the domain declares (mHealth: "paper", the style scores at the paper\'s spread and its '
           "five noise levels 0.70978 ... 24.57119); None = style scores standardised to sd 1 and noise levels "
           "from the treatment scale to field_noise_sd"),
    Option("n_actions", "int | None", 5,
           "K: that many of the cache's prompts, their expected rewards spread evenly over their range; None = all"),
    Option("prompts", "list[str] | None", None, "the prompts to use as actions, by id (instead of n_actions)"),
    Option("working_embedding", "str | list[str] | None", None,
           'what the agent sees: style dimension names, "pca:k" (the first k principal components of the '
           'sentence embedding) or "full" (all of it); None = the outcome\'s style dimensions'),
    NOISE_LEVEL,
    REWARD_NOISE_SD,
    Option("field_noise_sd", "float | None", None,
           "the sd of noise level 4; None = the outcome's field_noise_sd"),
    Option("problem_seed", "int", 0, 'seed of an "mlp" outcome\'s weights'),
    SAFETY,
    DRIFT,
)


def cached_llm(**options: Any) -> CachedLLMScenario:
    """Cached-LLM scenario: real messages from a treatment cache of any domain (default: the bundled mHealth cache).

    Options: :data:`CACHED_LLM_OPTIONS` (the Arguments table of
    :class:`~gambit_gym.env.GeneratorMediatedEnv` lists them).

    Example:
        >>> s = cached_llm(outcome={"dimensions": ["humor"], "coefficients": [1.0], "intercept": 0.0,
        ...                         "field_noise_sd": 3.0})
        >>> s.domain.name, s.n_actions, s.embedding_dim, float(s.noise_levels[-1])
        ('mhealth', 5, 1, 3.0)
    """
    opts = resolve_options("cached-llm", CACHED_LLM_OPTIONS, options)
    if opts["domain"] is not None and not isinstance(opts["domain"], (str, Path, Domain)):
        raise ValueError(f"domain: expected a shipped domain name or a domain file, got {opts['domain']!r}")
    if opts["cache_path"] is not None:
        cache = cached_load(opts["cache_path"])
    else:
        cache = cached_load(bundled_cache_path(opts["domain"] if opts["domain"] is not None else DEFAULT_DOMAIN))
    domain = cache_domain(cache, opts["domain"])
    outcome = domain.outcome(opts["outcome"])
    if not isinstance(opts["outcome"], Mapping):
        opts["outcome"] = outcome.name
    calibration = None if opts["calibration"] is None else domain.calibration(opts["calibration"])
    if opts["working_embedding"] is None:
        opts["working_embedding"] = list(outcome.dimensions)
    opts["problem_seed"] = check_int("problem_seed", opts["problem_seed"], 0)
    return CachedLLMScenario(cache, opts, domain, outcome, calibration)
