"""Loading untrusted cache files: every outcome is a loaded cache or a CacheError naming the file, within
size limits checked before anything is read; ``cache info`` never shows a traceback.

Caches here are tiny ones built from arrays (no LLM, no embedder): 4 prompts x 2 contexts x 2 messages.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gambit_gym.cache.format import ARRAYS, MAX_META_DEPTH, CacheError, TreatmentCache, load_cache
from gambit_gym.cli import _cache_info

DIMS = ["optimism", "formality"]
EMBEDDING_DIM = 8
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def small_cache(per_cell: int = 2) -> TreatmentCache:
    prompts = [{"id": f"{d}{'+' if pole > 0 else '-'}", "dimension": d, "pole": pole, "adjective": d,
                "instruction": f"be {d}"} for d in DIMS for pole in (1, -1)]
    cells = [(p, c) for c in range(2) for p in range(len(prompts)) for _ in range(per_cell)]
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(cells), EMBEDDING_DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    axes = rng.standard_normal((len(DIMS), EMBEDDING_DIM)).astype(np.float32)
    raw = emb @ axes.T
    meta = {"generator": {"name": "test-generator", "params": {"temperature": 0.8}},
            "embedder": {"name": "test-embedder", "dim": EMBEDDING_DIM}, "style_method": "projection",
            "created": {"utc": "2026-01-01T00:00:00+00:00", "package_version": "0", "command": "test"},
            "build": {"attempts": len(cells), "discarded": 0, "discard_reasons": {}},
            "prompts": prompts, "contexts": [["location", ["home", "work"]]], "style_dimensions": DIMS}
    return TreatmentCache(
        texts=np.array([f"Message {i}: walk more steps today." for i in range(len(cells))]),
        prompt_index=np.array([p for p, _ in cells], dtype=np.int16),
        context_index=np.array([c for _, c in cells], dtype=np.int16),
        embeddings=emb, style_scores=((raw - raw.mean(0)) / raw.std(0)).astype(np.float32), style_axes=axes,
        style_offset=raw.mean(0).astype(np.float32), style_scale=raw.std(0).astype(np.float32), meta=meta)


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A valid cache saved compressed (as the builder does) and uncompressed, with its arrays and metadata."""
    folder = tmp_path_factory.mktemp("valid")
    compressed = small_cache().save(folder / "valid.npz")
    with np.load(compressed, allow_pickle=False) as data:
        arrays = {k: data[k] for k in ARRAYS}
        meta = json.loads(str(data["meta"]))
    plain = write(folder / "plain.npz", arrays, meta)
    return {"compressed": compressed, "plain": plain, "arrays": arrays, "meta": meta, "folder": folder}


def write(path: Path, arrays: dict[str, Any], meta: Any = None, meta_text: str | None = None) -> Path:
    members = dict(arrays)
    if "meta" not in members:
        members["meta"] = np.array(meta_text if meta_text is not None else json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **members)
    return path


def info(path: Path) -> tuple[int, str, str]:
    """``gambit-gym cache info PATH --samples 3``: exit code, stdout, stderr (it must not raise)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _cache_info(argparse.Namespace(path=str(path), samples=3))
    out.getvalue().encode("utf-8")  # printable on a UTF-8 terminal (no lone surrogates)
    return code, out.getvalue(), err.getvalue()


def check_outcome(path: Path) -> str:
    """The only allowed outcomes: a loaded cache that ``cache info`` describes, or a CacheError naming the file."""
    try:
        cache = load_cache(path)
    except CacheError as exc:
        assert str(path) in str(exc)
        code, _, err = info(path)
        assert code == 2 and err.startswith("error: ") and str(path) in err
        return "rejected"
    assert isinstance(cache, TreatmentCache)
    code, out, _ = info(path)
    assert code == 0 and "dimensions separate their poles" in out
    return "loaded"


# -- valid files ------------------------------------------------------------------------------------
def test_a_saved_cache_loads_back_identically(valid: dict[str, Any]) -> None:
    original = small_cache()
    for name in ("compressed", "plain"):
        cache = load_cache(valid[name])
        for key in ARRAYS:
            got, want = getattr(cache, key), getattr(original, key)
            assert got.dtype == want.dtype and np.array_equal(got, want), key
            assert got.flags.writeable
        assert cache.meta["prompts"] == original.meta["prompts"] and cache.path == str(valid[name])
        assert check_outcome(valid[name]) == "loaded"


@pytest.mark.parametrize(
    "change",
    [
        lambda a, m: ({**a, "embeddings": np.asfortranarray(a["embeddings"])}, m),
        lambda a, m: ({**a, "style_scores": a["style_scores"].astype(">f8")}, m),
        lambda a, m: ({**a, "prompt_index": a["prompt_index"].astype(np.uint8)}, m),
        lambda a, m: ({**a, "texts": a["texts"].astype(">U60")}, m),
        lambda a, m: ({**a, "extra_member": np.arange(3)}, {**m, "notes": {"free": ["form"]}}),
        lambda a, m: (a, {**m, "prompts": [{**p, "pole": float(p["pole"])} for p in m["prompts"]]}),
        lambda a, m: (a, {k: v for k, v in m.items() if k not in ("created", "build")}),
    ],
    ids=["fortran-order", "big-endian-float64", "uint8-index", "big-endian-text", "extras", "float-pole",
         "no-build-record"],
)
def test_other_valid_encodings_load(valid: dict[str, Any], tmp_path: Path, change) -> None:
    arrays, meta = change(dict(valid["arrays"]), dict(valid["meta"]))
    path = write(tmp_path / "variant.npz", arrays, meta)
    cache = load_cache(path)
    for key in ARRAYS:
        assert np.array_equal(getattr(cache, key), valid["arrays"][key]), key
    assert check_outcome(path) == "loaded"


def test_bundled_cache_loads_and_info_runs() -> None:
    from gambit_gym.scenarios.cached_llm import bundled_cache_path

    path = bundled_cache_path()
    cache = load_cache(path)
    assert cache.n_texts == 4800 and cache.embeddings.shape == (4800, 384)
    code, out, _ = info(path)
    assert code == 0 and "18/20 dimensions" in out


# -- crafted malformed files: a CacheError naming the file and what was expected ------------------------
def _set(meta: dict[str, Any], *path_and_value: Any) -> dict[str, Any]:
    """A deep copy of ``meta`` with the value at ``path`` replaced."""
    *path, value = path_and_value
    meta = json.loads(json.dumps(meta))
    target = meta
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return meta


def _drop(meta: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k != key}


A = "arrays"
CRAFTED = {
    # arrays of the wrong type
    "string-scores": (lambda a: {**a, "style_scores": a["style_scores"].astype(str)}, None, "style_scores.*dtype"),
    "bool-scores": (lambda a: {**a, "style_scores": a["style_scores"] > 0}, None, "style_scores.*floating"),
    "complex-scores": (lambda a: {**a, "style_scores": a["style_scores"] + 1j}, None, "style_scores.*floating"),
    "int-embeddings": (lambda a: {**a, "embeddings": a["embeddings"].astype(int)}, None, "embeddings.*floating"),
    "bytes-texts": (lambda a: {**a, "texts": a["texts"].astype(bytes)}, None, "texts.*unicode"),
    "float-index": (lambda a: {**a, "prompt_index": a["prompt_index"].astype(float)}, None, "prompt_index.*integers"),
    "bool-index": (lambda a: {**a, "context_index": a["context_index"] > 0}, None, "context_index.*integers"),
    "index-range": (lambda a: {**a, "prompt_index": a["prompt_index"] + 1}, None, r"prompt_index outside \[0, 3\]"),
    "negative-index": (lambda a: {**a, "context_index": a["context_index"] - 1}, None, "context_index outside"),
    "2d-texts": (lambda a: {**a, "texts": a["texts"].reshape(2, -1)}, None, "texts.*1 dimension"),
    "scalar-meta-array": (lambda a: {**a, "meta": np.array(7)}, None, "meta.npy.*unicode"),
    "list-meta-array": (lambda a: {**a, "meta": np.array(["{}", "{}"])}, None, "meta.npy.*0 dimension"),
    "nan-axes": (lambda a: {**a, "style_axes": a["style_axes"] * np.nan}, None, "style_axes contains NaN"),
    "empty-cell": (lambda a: {k: (v[a["prompt_index"] != 0] if k in ("texts", "prompt_index", "context_index",
                   "embeddings", "style_scores") else v) for k, v in a.items()}, None, "is empty"),
    "fewer-texts-than-cells": (lambda a: {k: (v[:6] if k in ("texts", "prompt_index", "context_index", "embeddings",
                               "style_scores") else v) for k, v in a.items()}, None, "cells.*at least one text"),
    "void-texts": (lambda a: {**a, "texts": np.zeros(16, dtype="V4")}, None, "texts.npy: dtype"),
    "missing-member": (lambda a: {k: v for k, v in a.items() if k != "style_scale"}, None, "missing.*style_scale"),
    # metadata of the wrong shape
    "style-dims-string": (None, lambda m: _set(m, "style_dimensions", "optimism,formality"), "style_dimensions"),
    "style-dims-int": (None, lambda m: _set(m, "style_dimensions", 2), "style_dimensions.*list"),
    "style-dims-duplicate": (None, lambda m: _set(m, "style_dimensions", ["optimism", "optimism"]), "distinct"),
    "style-dims-renamed": (None, lambda m: _set(m, "style_dimensions", ["warmth", "formality"]),
                           r"prompts'\]\[0\]\['dimension'\].*style_dimensions"),
    "style-dims-numbers": (None, lambda m: _set(m, "style_dimensions", [1, 2]), "style_dimensions"),
    "prompts-strings": (None, lambda m: _set(m, "prompts", ["a", "b", "c", "d"]), r"prompts'\]\[0\] is str"),
    "prompts-dict": (None, lambda m: _set(m, "prompts", {"id": "a"}), "prompts.*list"),
    "prompt-without-id": (None, lambda m: _set(m, "prompts", 1, {"dimension": "optimism", "pole": -1}),
                          r"prompts'\]\[1\]\['id'\]"),
    "prompt-int-id": (None, lambda m: _set(m, "prompts", 2, "id", 5), r"\['id'\] is int"),
    "duplicate-prompt-ids": (None, lambda m: _set(m, "prompts", 1, "id", m["prompts"][0]["id"]), "not unique"),
    "bool-pole": (None, lambda m: _set(m, "prompts", 0, "pole", True), r"\['pole'\] is bool"),
    "string-pole": (None, lambda m: _set(m, "prompts", 0, "pole", "+1"), r"\['pole'\]"),
    "no-generator": (None, lambda m: _drop(m, "generator"), r"meta\['generator'\] is NoneType"),
    "generator-string": (None, lambda m: _set(m, "generator", "smollm2"), r"meta\['generator'\]"),
    "generator-params-list": (None, lambda m: _set(m, "generator", "params", [1]), r"meta\['generator'\]"),
    "no-embedder": (None, lambda m: _drop(m, "embedder"), r"meta\['embedder'\]"),
    "embedder-dim-wrong": (None, lambda m: _set(m, "embedder", "dim", 384), r"\['dim'\] is int 384; expected 8"),
    "embedder-dim-bool": (None, lambda m: _set(m, "embedder", "dim", True), r"\['dim'\] is bool"),
    "no-style-method": (None, lambda m: _drop(m, "style_method"), "style_method"),
    "created-list": (None, lambda m: _set(m, "created", ["x"]), r"meta\['created'\] is list"),
    "build-string": (None, lambda m: _set(m, "build", "done"), r"meta\['build'\] is str"),
    "contexts-string": (None, lambda m: _set(m, "contexts", "location"), "contexts"),
    "contexts-levels-string": (None, lambda m: _set(m, "contexts", 0, 1, "home"), r"contexts'\]\[0\]"),
    "contexts-duplicate-factor": (None, lambda m: _set(m, "contexts", [["a", ["x"]], ["a", ["y"]]]), "repeats"),
    "contexts-empty-levels": (None, lambda m: _set(m, "contexts", 0, 1, []), r"contexts'\]\[0\]"),
    "contexts-blow-up": (None, lambda m: _set(m, "contexts", [[f"f{i}", [str(j) for j in range(10)]]
                                                            for i in range(20)]), "cells"),
    "contexts-too-many-factors": (None, lambda m: _set(m, "contexts", [[f"f{i}", ["x"]] for i in range(40)]),
                                  "at most 32 factors"),
    "wrong-format": (None, lambda m: _set(m, "format", "other"), "not a gambit-gym cache"),
    "wrong-version": (None, lambda m: _set(m, "version", 2), "version 2"),
    "lone-surrogate": (None, lambda m: _set(m, "generator", "name", "\ud800"), "surrogate"),
}
META_TEXT = {
    "deep-nesting": (lambda m: json.dumps(m)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    "moderate-nesting": (lambda m: json.dumps(m)[:-1] + ', "x": ' + "[" * 40 + "]" * 40 + "}",
                         f"at most {MAX_META_DEPTH}"),
    "not-json": (lambda m: json.dumps(m)[:-5], "not valid JSON"),
    "top-level-list": (lambda m: json.dumps([m]), "JSON object"),
    "huge-integer": (lambda m: json.dumps(m)[:-1] + ', "x": ' + "9" * 5000 + "}", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_file_is_a_cache_error(valid: dict[str, Any], tmp_path: Path, case: str) -> None:
    change_arrays, change_meta, problem = CRAFTED[case]
    arrays = change_arrays(dict(valid["arrays"])) if change_arrays else dict(valid["arrays"])
    meta = change_meta(valid["meta"]) if change_meta else valid["meta"]
    path = write(tmp_path / f"{case}.npz", arrays, meta)
    start = time.monotonic()
    with pytest.raises(CacheError, match=problem) as err:
        load_cache(path)
    assert time.monotonic() - start < 1.0
    assert str(err.value).startswith(f"{path}: ")
    assert check_outcome(path) == "rejected"


@pytest.mark.parametrize("case", list(META_TEXT))
def test_crafted_metadata_text_is_a_cache_error(valid: dict[str, Any], tmp_path: Path, case: str) -> None:
    make_text, problem = META_TEXT[case]
    path = write(tmp_path / f"{case}.npz", valid["arrays"], meta_text=make_text(valid["meta"]))
    with pytest.raises(CacheError, match=problem):
        load_cache(path)
    assert check_outcome(path) == "rejected"


def test_object_arrays_are_never_unpickled(valid: dict[str, Any], tmp_path: Path) -> None:
    path = write(tmp_path / "pickled.npz", {**valid["arrays"], "texts": np.array([{"evil": 1}] * 16, dtype=object)},
                 valid["meta"])
    with pytest.raises(CacheError, match="texts.npy: dtype object; expected unicode"):
        load_cache(path)


def test_context_factor_blow_up_is_rejected_before_the_context_table_is_built(valid: dict[str, Any],
                                                                             tmp_path: Path) -> None:
    """A few hundred bytes of factors would define 10^6 contexts (a table of gigabytes); nothing that size
    is built: the factors' product is checked against the number of texts first."""
    factors = [[f"f{i}", [str(j) for j in range(10)]] for i in range(6)]
    path = write(tmp_path / "contexts.npz", valid["arrays"], _set(valid["meta"], "contexts", factors))
    tracemalloc.start()
    try:
        with pytest.raises(CacheError, match="1000000 x 4 cells but the cache holds 16 texts"):
            load_cache(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


# -- size limits ------------------------------------------------------------------------------------
def _zip(path: Path, entries: list[tuple[str, bytes, int, int]]) -> Path:
    """A deflate zip whose members are (name, raw deflate stream, CRC-32, declared size), as given."""
    out, central = bytearray(), bytearray()
    for name, stream, crc, size in entries:
        offset, encoded = len(out), name.encode()
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(stream), size, len(encoded), 0)
        out += encoded + stream
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(stream), size,
                               len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path


def _deflate(data: bytes) -> tuple[str, bytes, int, int]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return "", compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data)


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _zeros_bomb(header: bytes, n_zero_mib: int) -> tuple[bytes, int, int]:
    """A valid deflate stream of ``header`` then ``n_zero_mib`` MiB of zeros, built in milliseconds: after a
    full flush the compressed form of each zero MiB is the same bytes, so it is repeated, not recomputed."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    mib = bytes(2**20)
    block = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(n_zero_mib):
        crc = zlib.crc32(mib, crc)
    return head + block * n_zero_mib + compressor.flush(), crc, len(header) + n_zero_mib * 2**20


def _npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": dtype, "fortran_order": False, "shape": shape})
    return stream.getvalue()


@pytest.mark.parametrize("member", ["embeddings.npy", "meta.npy"])
def test_zip_bomb_is_rejected_quickly_with_little_memory(valid: dict[str, Any], tmp_path: Path, member: str) -> None:
    """A ~3 MB file whose member inflates to 3 GiB: refused from the sizes the archive declares."""
    n_mib = 3 * 1024 if member == "embeddings.npy" else 1024
    dtype, width = ("<f4", 4) if member == "embeddings.npy" else ("<U1", 4)
    shape = (16, n_mib * 2**20 // 16 // width) if member == "embeddings.npy" else ()
    if member == "meta.npy":
        dtype = f"<U{n_mib * 2**20 // 4}"
    stream, crc, size = _zeros_bomb(_npy_header(dtype, shape), n_mib)
    entries = [(name, *_deflate(data)[1:]) for name, data in _members(valid["plain"]).items() if name != member]
    path = _zip(tmp_path / "bomb.npz", [*entries, (member, stream, crc, size)])
    assert path.stat().st_size < 4 * 2**20
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(CacheError, match="decompressed, more than the limit|metadata of"):
            load_cache(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 1.0 and peak < 20 * 2**20


def test_member_lying_about_its_size_is_rejected(valid: dict[str, Any], tmp_path: Path) -> None:
    """Declared small, inflating to 64 MiB: only the declared bytes are read, and the CRC fails."""
    members = _members(valid["plain"])
    stream, crc, _ = _zeros_bomb(members["style_offset.npy"][:-8], 64)
    entries = [(name, *_deflate(data)[1:]) for name, data in members.items() if name != "style_offset.npy"]
    path = _zip(tmp_path / "liar.npz", [*entries, ("style_offset.npy", stream, crc, len(members["style_offset.npy"]))])
    tracemalloc.start()
    try:
        with pytest.raises(CacheError, match="not a readable cache file|CRC"):
            load_cache(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_npy_header_claiming_more_than_the_member_holds(valid: dict[str, Any], tmp_path: Path) -> None:
    members = _members(valid["plain"])
    header = _npy_header("<f4", (16, 10**12))
    members["embeddings.npy"] = header + bytes(64)
    path = _zip(tmp_path / "claims.npz", [(name, *_deflate(data)[1:]) for name, data in members.items()])
    with pytest.raises(CacheError, match="needs 64,000,000,000,000 bytes but the member holds 64"):
        load_cache(path)


def test_max_bytes_parameter(valid: dict[str, Any]) -> None:
    with pytest.raises(CacheError, match="more than the limit of 1,000"):
        load_cache(valid["compressed"], max_bytes=1000)
    assert load_cache(valid["compressed"], max_bytes=10**6).n_texts == 16
    for bad in (0, -1, True, 1.5, "1"):
        with pytest.raises(ValueError, match="max_bytes"):
            load_cache(valid["compressed"], max_bytes=bad)


def test_failed_save_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = small_cache()
    target = cache.save(tmp_path / "cache.npz")
    before = target.read_bytes()

    def fail_midway(fh, **arrays):
        fh.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        cache.save(target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["cache.npz"]


# -- fuzzing: mutated valid files load or fail with a CacheError, nothing else ---------------------------
@FUZZ
@given(data=st.data())
def test_fuzz_bytes(valid: dict[str, Any], data: st.DataObject) -> None:
    """Overwritten, truncated or duplicated bytes anywhere in the file (compressed or not)."""
    raw = bytearray(valid[data.draw(st.sampled_from(["compressed", "plain"]))].read_bytes())
    action = data.draw(st.sampled_from(["overwrite", "truncate", "splice"]))
    if action == "overwrite":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        start = data.draw(st.integers(0, len(raw) - 1))
        raw[start:start] = raw[start : start + data.draw(st.integers(1, 200))]
    path = valid["folder"] / "fuzz-bytes.npz"
    path.write_bytes(bytes(raw))
    check_outcome(path)


ARRAY_DTYPES = st.sampled_from(["bool", "int8", "uint16", "int64", "float16", "float32", ">f8", "complex64",
                                "<U3", "S3"])


@FUZZ
@given(data=st.data())
def test_fuzz_members(valid: dict[str, Any], data: st.DataObject) -> None:
    """Members dropped, added, or replaced by arrays of other dtypes, shapes and values."""
    arrays = dict(valid["arrays"])
    arrays["meta"] = np.array(json.dumps(valid["meta"]))
    key = data.draw(st.sampled_from(["meta", *ARRAYS, "extra"]))
    action = data.draw(st.sampled_from(["drop", "replace", "recast", "reshape"]))
    if action == "drop":
        arrays.pop(key, None)
    elif action == "replace":
        arrays[key] = data.draw(hnp.arrays(ARRAY_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, max_side=20)))
    elif key in arrays:
        old = arrays[key]
        if action == "recast":
            dtype = data.draw(ARRAY_DTYPES)
            with np.errstate(all="ignore"), contextlib.suppress(ValueError, TypeError):  # e.g. JSON text to int
                arrays[key] = old.astype(dtype)
        else:
            arrays[key] = old.reshape(-1) if old.ndim > 1 else old.reshape(-1, 1)
    path = write(valid["folder"] / "fuzz-members.npz", arrays)
    check_outcome(path)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into the metadata, to at most 4 levels."""
    out = [prefix] if prefix else []
    if len(prefix) < 4 and isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif len(prefix) < 4 and isinstance(value, list):
        for i, item in enumerate(value[:3]):
            out += _paths(item, (*prefix, i))
    return out


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
RAW_JSON = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.integers(1, 3000).map(lambda k: "[" * k + "]" * k),
    st.integers(1, 3000).map(lambda k: '{"a": ' * k + "1" + "}" * k),
    st.sampled_from(["9" * 5000, '"\\ud800"', "[1,", "NaN", "-Infinity", '"' + "x" * 100_000 + '"',
                     "[" + ",".join(['"optimism"'] * 2) + "]", '["formality", "optimism"]']),
)


@FUZZ
@given(data=st.data())
def test_fuzz_metadata(valid: dict[str, Any], data: st.DataObject) -> None:
    """A metadata field replaced by another JSON value (any type, nesting or size) or deleted."""
    meta = valid["meta"]
    path = data.draw(st.sampled_from(_paths(meta)))
    hole = "\0HOLE\0"
    if data.draw(st.booleans()):
        changed = _set(meta, *path, hole)
        text = json.dumps(changed).replace(json.dumps(hole), data.draw(RAW_JSON))
    else:
        changed = json.loads(json.dumps(meta))
        parent = changed
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        text = json.dumps(changed)
    out = write(valid["folder"] / "fuzz-meta.npz", valid["arrays"], meta_text=text)
    check_outcome(out)
