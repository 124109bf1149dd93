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
                                    style_dimensions, style_method, created, build statistics, and
                                    domain (name, sha256, toml: the domain file it was built from)

``load_cache`` reads only what the file declares and within limits, validates
everything and raises :class:`CacheError` naming the file and what was expected
for every malformed file: a truncated or foreign file, a wrong version,
mismatched shapes or dtypes, NaNs, malformed metadata, an empty (prompt,
context) cell, or sizes past the limits below.

Limits (a cache is data from anywhere, so its size is checked before it is read):
    arrays            ``max_bytes`` decompressed bytes in all; by default the smaller of
                      :data:`DEFAULT_MAX_BYTES` (2 GiB) and :data:`MAX_EXPANSION` times the file's
                      size (at least :data:`MIN_EXPANSION_BYTES`), so a small file cannot inflate hugely
    metadata          :data:`MAX_META_CHARS` characters of JSON nested at most :data:`MAX_META_DEPTH` deep
    contexts          at most :data:`MAX_CONTEXT_FACTORS` factors, and no more contexts x prompts than
                      texts (every cell holds a text), so the metadata cannot demand a huge context table
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from gambit_gym.contexts import ContextSpace
from gambit_gym.datafiles import MAX_NPY_HEADER, ZIP_ERRORS, atomic_file, parse_json_object, read_npy_member

FORMAT = "gambit-gym-treatment-cache"
VERSION = 1
ARRAYS = ("texts", "prompt_index", "context_index", "embeddings", "style_scores", "style_axes",
          "style_offset", "style_scale")

#: Default cap on the decompressed size of a cache's arrays (bytes).
DEFAULT_MAX_BYTES = 2 * 2**30
#: By default the arrays may also take at most this many times the file's size on disk ...
MAX_EXPANSION = 100
#: ... or this many bytes, whichever is larger (tiny caches compress well).
MIN_EXPANSION_BYTES = 64 * 2**20
#: Cap on the metadata's JSON text (characters) and on its nesting depth.
MAX_META_CHARS = 16 * 2**20
MAX_META_DEPTH = 32
#: Cap on the number of context factors (NumPy's limit on array dimensions).
MAX_CONTEXT_FACTORS = 32
#: The dtype kinds each member may have: unicode text, integer indices, real floating-point values.
_KINDS = {"meta": "U", "texts": "U", "prompt_index": "iu", "context_index": "iu", "embeddings": "f",
          "style_scores": "f", "style_axes": "f", "style_offset": "f", "style_scale": "f"}
_KIND_NAMES = {"U": "unicode strings", "iu": "integers", "f": "real floating-point numbers"}
_NDIM = {"meta": 0, "texts": 1, "prompt_index": 1, "context_index": 1, "embeddings": 2, "style_scores": 2,
         "style_axes": 2, "style_offset": 1, "style_scale": 1}


class CacheError(ValueError):
    """A cache file is unreadable, foreign, of another version, inconsistent, or past the size limits."""


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
        meta = {**self.meta, "format": FORMAT, "version": VERSION}
        with atomic_file(path) as fh:  # never a half-written cache, and no temporary file left on a failure
            np.savez_compressed(
                fh,
                meta=np.array(json.dumps(meta)),
                texts=np.asarray(self.texts, dtype=str),
                **{k: getattr(self, k) for k in ARRAYS if k != "texts"},
            )
        self.path = str(path)
        return path

    def validate(self, where: str | None = None) -> None:
        """Raise :class:`CacheError` naming ``where`` (default: the cache's path) unless every array has
        the expected dtype and shape, every value is in range and the metadata is well-formed."""
        where = where or self.path

        def fail(problem: str) -> NoReturn:
            raise CacheError(f"{where}: {problem}")

        if not isinstance(self.meta, dict):
            fail(f"meta is {type(self.meta).__name__}; expected a JSON object")
        dims = _check_style_dimensions(self.meta, fail)
        prompts = _check_prompts(self.meta, dims, fail)
        for name in ARRAYS:
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray):
                fail(f"{name} is {type(arr).__name__}; expected a NumPy array")
            kinds = _KINDS[name]
            if arr.dtype.kind not in kinds or arr.dtype.itemsize == 0:
                fail(f"{name} has dtype {arr.dtype}; expected {_KIND_NAMES[kinds]}")
            if arr.ndim != _NDIM[name]:
                fail(f"{name} has shape {arr.shape}; expected {_NDIM[name]} dimension(s)")
        n = len(self.texts)
        if n == 0:
            fail("holds no texts")
        if _has_invalid_characters(self.texts):
            fail("texts hold values that are not Unicode characters (surrogates or code points past U+10FFFF)")
        for name in ("prompt_index", "context_index"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                fail(f"{name} has shape {arr.shape}; expected ({n},) integers")
        if self.embeddings.shape[0] != n or self.embeddings.shape[1] == 0:
            fail(f"embeddings has shape {self.embeddings.shape}; expected ({n}, E) with E >= 1")
        n_dims = len(dims)
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
        _check_descriptions(self.meta, self.embeddings.shape[1], fail)
        n_contexts = _check_contexts(self.meta, n, len(prompts), fail)
        _check_domain(self.meta, fail)
        if self.prompt_index.min() < 0 or self.prompt_index.max() >= len(prompts):
            fail(f"prompt_index outside [0, {len(prompts) - 1}]")
        if self.context_index.min() < 0 or self.context_index.max() >= n_contexts:
            fail(f"context_index outside [0, {n_contexts - 1}]")
        counts = self.cell_counts()
        if (counts == 0).any():
            c, p = np.argwhere(counts == 0)[0]
            fail(f"cell (prompt {self.prompts[p]['id']!r}, context {self.contexts.describe(int(c))}) is empty "
                 f"({int((counts == 0).sum())} empty cells in all)")


# -- metadata checks (each names the field and what was expected) ----------------------------------------
def _is_str_list(value: Any) -> bool:
    """A list (or, in memory, a tuple) of distinct non-empty strings."""
    return (isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)
            and len(set(value)) == len(value))


def _check_style_dimensions(meta: dict[str, Any], fail) -> list[str]:
    dims = meta.get("style_dimensions")
    if not _is_str_list(dims) or not dims:
        fail(f"meta['style_dimensions'] is {_show(dims)}; expected a non-empty list of distinct names")
    return dims


def _check_prompts(meta: dict[str, Any], dims: list[str], fail) -> list[dict[str, Any]]:
    prompts = meta.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        fail(f"meta['prompts'] is {_show(prompts)}; expected a non-empty list of prompt objects")
    seen: set[str] = set()
    for i, p in enumerate(prompts):
        where = f"meta['prompts'][{i}]"
        if not isinstance(p, dict):
            fail(f"{where} is {_show(p)}; expected an object with id, dimension and pole")
        pid = p.get("id")
        if not isinstance(pid, str) or not pid:
            fail(f"{where}['id'] is {_show(pid)}; expected a non-empty string")
        if pid in seen:
            fail(f"{where}['id'] {pid!r} is not unique; prompt ids must be distinct")
        seen.add(pid)
        if p.get("dimension") is None and p.get("pole") is None:  # a prompt that targets no style (a domain's)
            continue
        if p.get("dimension") not in dims:
            fail(f"{where}['dimension'] is {_show(p.get('dimension'))}; expected one of meta['style_dimensions'] "
                 "(or null, with a null pole)")
        pole = p.get("pole")
        if isinstance(pole, bool) or not isinstance(pole, (int, float)) or not math.isfinite(pole):
            fail(f"{where}['pole'] is {_show(pole)}; expected a finite number (+1 or -1)")
    return prompts


def _check_domain(meta: dict[str, Any], fail) -> None:
    """The domain record (absent from caches older than domain files): a domain file's text that parses and
    fits the cache's prompts, style dimensions and contexts."""
    if "domain" not in meta:
        return
    from gambit_gym.domains import MAX_DOMAIN_CHARS, DomainError, domain_from_text

    record = meta["domain"]
    if not (isinstance(record, dict) and isinstance(record.get("name"), str) and isinstance(record.get("toml"), str)
            and len(record["toml"]) <= MAX_DOMAIN_CHARS):
        fail(f"meta['domain'] is {_show(record)}; expected an object with the domain's name and its file's text "
             f"(toml, at most {MAX_DOMAIN_CHARS:,} characters)")
    try:
        domain = domain_from_text(record["toml"], "meta['domain']['toml']")
    except DomainError as exc:
        fail(str(exc))
    if domain.name != record["name"]:
        fail(f"meta['domain']['name'] is {record['name']!r} but its text declares {domain.name!r}")
    problems = domain.cache_problems(meta["prompts"], meta["style_dimensions"], meta["contexts"])
    if problems:
        fail("the cache does not fit its domain record: " + "; ".join(problems))


def _check_descriptions(meta: dict[str, Any], embedding_dim: int, fail) -> None:
    gen = meta.get("generator")
    if not (isinstance(gen, dict) and isinstance(gen.get("name"), str) and isinstance(gen.get("params"), dict)):
        fail(f"meta['generator'] is {_show(gen)}; expected an object with a string name and a params object")
    emb = meta.get("embedder")
    if not (isinstance(emb, dict) and isinstance(emb.get("name"), str)):
        fail(f"meta['embedder'] is {_show(emb)}; expected an object with a string name and dim")
    dim = emb.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim != embedding_dim:
        fail(f"meta['embedder']['dim'] is {_show(dim)}; expected {embedding_dim}, the embeddings' width")
    if not isinstance(meta.get("style_method"), str):
        fail(f"meta['style_method'] is {_show(meta.get('style_method'))}; expected a string")
    for key in ("created", "build"):
        if key in meta and not isinstance(meta[key], dict):
            fail(f"meta[{key!r}] is {_show(meta[key])}; expected an object")


def _check_contexts(meta: dict[str, Any], n_texts: int, n_prompts: int, fail) -> int:
    """Check the factors before building the context table, whose size is their product."""
    factors = meta.get("contexts")
    expected = "a non-empty list of [factor name, [distinct level names]]"
    if not isinstance(factors, (list, tuple)) or not 1 <= len(factors) <= MAX_CONTEXT_FACTORS:
        fail(f"meta['contexts'] is {_show(factors)}; expected {expected}, at most {MAX_CONTEXT_FACTORS} factors")
    for i, factor in enumerate(factors):
        if not (isinstance(factor, (list, tuple)) and len(factor) == 2 and isinstance(factor[0], str)
                and _is_str_list(factor[1]) and factor[1]):
            fail(f"meta['contexts'][{i}] is {_show(factor)}; expected [factor name, [distinct level names]]")
    if len({name for name, _ in factors}) != len(factors):
        fail("meta['contexts'] repeats a factor name; expected distinct factors")
    n_contexts = math.prod(len(levels) for _, levels in factors)
    if n_contexts * n_prompts > n_texts:
        fail(f"meta['contexts'] and meta['prompts'] define {n_contexts} x {n_prompts} cells but the cache holds "
             f"{n_texts} texts; expected at least one text per cell")
    return n_contexts


def _show(value: Any) -> str:
    """A short description of a metadata value for an error message."""
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


# -- reading ---------------------------------------------------------------------------------------------
def default_max_bytes(file_size: int) -> int:
    """The default cap on a file's decompressed arrays: see the module docstring."""
    return min(DEFAULT_MAX_BYTES, max(MIN_EXPANSION_BYTES, MAX_EXPANSION * file_size))


def load_cache(path: str | Path, max_bytes: int | None = None) -> TreatmentCache:
    """Read and validate a cache file; never executes code from it.

    Args:
        path: the ``.npz`` file.
        max_bytes: the most bytes its arrays may take once decompressed (checked against the sizes the
            archive declares before anything is read); default :func:`default_max_bytes` of the file's size.

    Raises:
        CacheError: naming the file and what was expected, for any missing, malformed or oversized file.
    """
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise ValueError(f"max_bytes: expected a positive integer number of bytes or None, got {max_bytes!r}")
    path = Path(path)
    if not path.is_file():
        raise CacheError(f"{path}: no such file")
    try:
        limit = max_bytes if max_bytes is not None else default_max_bytes(path.stat().st_size)
        with zipfile.ZipFile(path) as zf:
            raw = _read_members(zf, path, limit)
    except CacheError:
        raise
    except ZIP_ERRORS as exc:
        raise CacheError(f"{path}: not a readable cache file (truncated, corrupt or not .npz): {exc}") from None
    meta = _parse_meta(str(raw.pop("meta")[()]), path)
    if meta.get("format") != FORMAT:
        raise CacheError(f"{path}: not a gambit-gym cache (format {_show(meta.get('format'))})")
    if meta.get("version") != VERSION:
        raise CacheError(
            f"{path}: cache format version {meta.get('version')!r}; this gambit-gym reads version {VERSION}"
        )
    cache = TreatmentCache(meta=meta, path=str(path), **raw)
    cache.validate()
    return cache


def _read_members(zf: zipfile.ZipFile, path: Path, limit: int) -> dict[str, np.ndarray]:
    """The cache's members, after checking the sizes the archive declares against ``limit``."""
    names = set(zf.namelist())
    missing = [k for k in ("meta", *ARRAYS) if f"{k}.npy" not in names]
    if missing:
        raise CacheError(f"{path}: not a gambit-gym cache (missing {missing})")
    infos = {k: zf.getinfo(f"{k}.npy") for k in ("meta", *ARRAYS)}
    declared = sum(info.file_size for info in infos.values())
    if declared > limit:
        raise CacheError(f"{path}: its arrays would take {declared:,} bytes decompressed, more than the limit of "
                         f"{limit:,} (load_cache's max_bytes)")
    if infos["meta"].file_size > 4 * MAX_META_CHARS + MAX_NPY_HEADER:
        raise CacheError(f"{path}: metadata of {infos['meta'].file_size:,} bytes; expected at most "
                         f"{MAX_META_CHARS:,} characters")
    return {k: _read_npy(zf, info, k, path) for k, info in infos.items()}


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, path: Path) -> np.ndarray:
    """One ``.npy`` member: its dtype kind and dimensions checked from its header, then exactly the declared
    bytes read (:func:`gambit_gym.datafiles.read_npy_member`); a damaged archive propagates for
    :func:`load_cache` to report for the whole file."""

    def fail(problem: str) -> NoReturn:
        raise CacheError(f"{path}: member {info.filename}: {problem}")

    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        kinds = _KINDS[key]
        if dtype.kind not in kinds or dtype.itemsize == 0 or dtype.hasobject:
            fail(f"dtype {dtype}; expected {_KIND_NAMES[kinds]}")
        if len(shape) != _NDIM[key]:
            fail(f"shape {shape}; expected {_NDIM[key]} dimension(s)")

    array = read_npy_member(zf, info, fail, check)
    if array.dtype.kind == "U" and _has_invalid_characters(array):
        fail("holds values that are not Unicode characters (surrogates or code points past U+10FFFF)")
    return array


def _has_invalid_characters(strings: np.ndarray) -> bool:
    """Whether a unicode array holds code points Python cannot print (surrogates, past U+10FFFF)."""
    codes = np.ascontiguousarray(strings).reshape(-1).view(np.dtype(np.uint32).newbyteorder(strings.dtype.byteorder))
    for start in range(0, codes.size, 1 << 24):  # in blocks: little extra memory on a large array
        block = codes[start : start + (1 << 24)]
        if ((block > 0x10FFFF) | ((block >= 0xD800) & (block <= 0xDFFF))).any():
            return True
    return False


def _parse_meta(text: str, path: Path) -> dict[str, Any]:
    def fail(problem: str) -> NoReturn:
        raise CacheError(f"{path}: {problem}") from None

    meta = parse_json_object(text, fail, what="metadata", max_chars=MAX_META_CHARS, max_depth=MAX_META_DEPTH,
                             not_an_object=lambda value: f"not a gambit-gym cache (metadata is {_show(value)}, "
                                                         "expected a JSON object)")
    try:  # JSON "\ud800" escapes decode to lone surrogates, which cannot be printed or written as UTF-8
        json.dumps(meta, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise CacheError(f"{path}: metadata holds lone surrogate characters; expected valid Unicode text") from None
    return meta
