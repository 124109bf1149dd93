"""Safe ``.npz`` files: atomic writes, and reading that never unpickles and checks sizes before reading.

One implementation behind every data file of the package: the treatment cache
(:mod:`gambit_gym.cache.format`), agent state files (:mod:`agents.state`) and results and
logged-feedback files (:mod:`agents.datafiles`). Each of those keeps its own error type and
messages; the functions here report a problem through a ``fail(problem)`` callable the caller
gives (which raises the caller's error, naming its file), so the shared layer never decides what
the user sees beyond the description of the problem.

Writing (:func:`atomic_file`, :func:`atomic_path`, :func:`write_arrays`): to a new temporary file
``.<name>.<pid>-<token>.tmp`` beside the target, flushed to disk, then renamed over the target, so
a reader sees the old file or the new one, never half of one; a failed write removes its
temporary file. Object arrays are refused (NumPy would pickle them).

Reading (:func:`read_npy_member`): a member's ``.npy`` header is read first (its length capped),
parsed without evaluating anything, shown to the caller's ``check(shape, dtype)``, refused if it
holds Python objects, and compared with the bytes the archive declares for the member; only then
are exactly those bytes read, into one preallocated buffer. The caller checks the sum of the
declared sizes (:func:`declared_bytes`) against its cap before reading any member, so a crafted
archive can neither run code nor make the reader allocate more than the cap.

JSON headers (:func:`parse_json_object`): capped in length and nesting depth before parsing.

Example:
    >>> import tempfile, zipfile
    >>> from pathlib import Path
    >>> path = write_arrays(Path(tempfile.mkdtemp()) / "x.npz", {"x": np.arange(3)}, compress=True)
    >>> def fail(problem):
    ...     raise ValueError(problem)
    >>> with zipfile.ZipFile(path) as zf:
    ...     read_npy_member(zf, zf.getinfo("x.npy"), fail, lambda shape, dtype: None)
    array([0, 1, 2])
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import lzma
import math
import os
import re
import secrets
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np

#: Everything zipfile, its decompressors and NumPy's header parser raise for a damaged archive.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, NotImplementedError,
              RuntimeError, struct.error, OverflowError)
#: Cap on a ``.npy`` member's own header (NumPy's default for untrusted files).
MAX_NPY_HEADER = 10_000
#: Default cap on the nesting depth of a JSON header (the parser recurses once per level).
MAX_JSON_DEPTH = 32
#: Bytes read at a time.
_CHUNK = 1 << 24

Fail = Callable[[str], NoReturn]


# -- writing ---------------------------------------------------------------------------------------------
def temporary_path(path: Path) -> Path:
    """A new name beside ``path`` (same file system, so the rename is atomic): ``.<name>.<pid>-<token>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` (created empty, this writer's alone); on a clean exit
    its contents are flushed to disk and it is renamed over ``path``; on any failure it is removed.

    For writers that want a file name (Parquet, say); :func:`atomic_file` gives an open handle."""
    path = Path(path)
    while True:  # exclusive creation: two writers of one path never share a temporary file
        tmp = temporary_path(path)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # mode 0o666 minus the umask
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Yield a handle (``open(tmp, mode, **open_kwargs)``, ``mode`` ``"wb"`` or ``"w"``) whose contents
    replace ``path`` atomically on a clean exit; nothing is left behind on a failure.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
        >>> with atomic_file(target, "w", encoding="utf-8") as fh:
        ...     _ = fh.write("complete or absent")
        >>> target.read_text(encoding="utf-8")
        'complete or absent'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: expected 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh
        fh.flush()


def write_arrays(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], *, compress: bool) -> Path:
    """Write ``arrays`` as an ``.npz`` at exactly ``path`` (no suffix added), atomically; returns the path.

    Raises:
        TypeError: when an array holds Python objects (NumPy would pickle them).
    """
    values = {k: np.asarray(v) for k, v in arrays.items()}
    objects = sorted(k for k, v in values.items() if v.dtype.hasobject)
    if objects:
        raise TypeError(f"arrays: {objects} hold Python objects; expected numbers, booleans or text")
    path = Path(path)
    with atomic_file(path) as fh:
        (np.savez_compressed if compress else np.savez)(fh, **values)  # looked up now: tests may replace them
    return path


# -- reading ---------------------------------------------------------------------------------------------
def declared_bytes(infos: Iterator[zipfile.ZipInfo] | list[zipfile.ZipInfo]) -> int:
    """The decompressed size the archive declares for these members (checked against a cap before reading)."""
    return sum(info.file_size for info in infos)


def read_exact(fh: IO[bytes], n: int, fail: Fail, *, catch: tuple[type[BaseException], ...] = ()) -> bytearray:
    """Exactly ``n`` bytes (``n`` already checked against a cap) into one preallocated buffer; a short
    member goes to ``fail``, and so does an exception of ``catch`` raised while reading."""
    data = bytearray(n)
    view, pos = memoryview(data), 0
    while pos < n:
        try:
            chunk = fh.read(min(n - pos, _CHUNK))
        except catch as exc:
            fail(f"unreadable (truncated or corrupt): {exc}")
        if not chunk:
            fail(f"truncated: {pos:,} of {n:,} expected bytes")
        view[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    return data


def read_npy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fail: Fail,
                    check: Callable[[tuple[int, ...], np.dtype], None], *,
                    catch: tuple[type[BaseException], ...] = ()) -> np.ndarray:
    """One ``.npy`` member of ``zf``, never unpickled.

    Its header (at most :data:`MAX_NPY_HEADER` bytes) is parsed and passed to ``check(shape, dtype)``
    (which raises to refuse it); object dtypes are then refused, and the size the header implies must
    equal the member's declared size before exactly that many bytes are read. Problems go to
    ``fail(problem)``; zip and decompression errors of the types in ``catch`` too (others propagate,
    for a caller that reports them for the whole file). The array is backed by a fresh writable buffer.
    """
    try:
        fh = zf.open(info)
    except catch as exc:
        fail(f"unreadable (truncated or corrupt): {exc}")
    with fh:
        head = read_exact(fh, 10, fail, catch=catch)
        if head[:6] != b"\x93NUMPY" or head[6] not in (1, 2):
            fail("not a .npy array of format version 1 or 2")
        if head[6] == 2:
            head += read_exact(fh, 2, fail, catch=catch)
        header_len = int.from_bytes(head[8:], "little")
        if header_len > MAX_NPY_HEADER:
            fail(f"array header of {header_len:,} bytes; expected at most {MAX_NPY_HEADER:,}")
        head += read_exact(fh, header_len, fail, catch=catch)
        try:
            stream = io.BytesIO(bytes(head))
            version = np.lib.format.read_magic(stream)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(stream)
        except (ValueError, TypeError, SyntaxError) as exc:
            fail(f"unreadable array header ({exc})")
        check(shape, dtype)
        if dtype.hasobject:  # whatever check allowed: a pickle is never loaded
            fail(f"dtype {dtype} holds Python objects (a pickle); pickles are never loaded")
        nbytes = math.prod(shape) * dtype.itemsize
        if len(head) + nbytes != info.file_size:
            fail(f"shape {shape} of {dtype} needs {nbytes:,} bytes but the member holds "
                 f"{info.file_size - len(head):,}")
        data = read_exact(fh, nbytes, fail, catch=catch)
        try:
            extra = fh.read(1)  # also makes zipfile check the CRC
        except catch as exc:
            fail(f"unreadable (truncated or corrupt): {exc}")
        if extra:
            fail("longer than declared")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)


# -- JSON headers ----------------------------------------------------------------------------------------
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth(text: str) -> int:
    """How deep the brackets of a JSON text nest, counted outside strings and without parsing it."""
    brackets = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    steps = np.isin(brackets, (ord("["), ord("{"))).astype(np.int64) - np.isin(brackets, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def parse_json_object(text: str, fail: Fail, *, what: str, max_chars: int, max_depth: int = MAX_JSON_DEPTH,
                      not_an_object: Callable[[Any], str] | None = None) -> dict[str, Any]:
    """``text`` parsed as a JSON object, after checking its length and nesting depth.

    Problems go to ``fail``, described as ``what`` (``"metadata"``, ``"the header"``);
    ``not_an_object(value)``, when given, describes the whole problem for valid JSON that is not an object.

    Example:
        >>> def fail(problem):
        ...     raise ValueError(problem)
        >>> parse_json_object('{"a": [1]}', fail, what="the header", max_chars=100)
        {'a': [1]}
    """
    if len(text) > max_chars:
        fail(f"{what} of {len(text):,} characters; expected at most {max_chars:,}")
    depth = json_depth(text)
    if depth > max_depth:
        fail(f"{what} nested {depth} levels deep; expected at most {max_depth}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer too long to convert
        fail(f"{what} is not valid JSON: {exc}")
    if not isinstance(value, dict):
        fail(not_an_object(value) if not_an_object else f"{what} is a JSON {type(value).__name__}, expected an object")
    return value


@functools.lru_cache(maxsize=32)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's content (computed once per file version)."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256(str(path), stat.st_mtime_ns, stat.st_size)
