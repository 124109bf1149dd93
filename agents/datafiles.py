"""The package's data files: ``.npz`` arrays plus a JSON header, written atomically, read without trust.

A data file holds named arrays and one more, ``__header__``: a 0-d unicode array with a JSON
object that starts ``{"format": ..., "version": ...}``. :func:`write_npz` writes to a temporary
file beside the target, flushes it to disk and renames it over the target, so a reader sees the
old file or the new one, never half of one. :func:`read_npz` never unpickles: before reading
anything it checks the decompressed size the archive declares against a cap, then reads each
member only after its ``.npy`` header matches the bytes the member holds (so a crafted header
cannot make it allocate more than the cap), refuses object arrays, and turns every failure into
a :class:`DataFileError` that names the file. ``BanditResult`` and ``LoggedBanditFeedback`` use it.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from gambit_gym.datafiles import (
    ZIP_ERRORS,
    declared_bytes,
    parse_json_object,
    read_npy_member,
    temporary_path,
    write_arrays,
)

HEADER = "__header__"
#: Default cap on the decompressed size of a file's arrays (bytes); ``max_bytes=`` raises it.
DEFAULT_MAX_BYTES = 4 * 2**30
#: Cap on the header's JSON characters (each member's ``.npy`` header has NumPy's own cap).
MAX_HEADER_CHARS = 4 * 2**20
# Everything zipfile and its decompressors raise for a damaged archive.
_READ_ERRORS = (*ZIP_ERRORS, KeyError)

__all__ = ["HEADER", "DEFAULT_MAX_BYTES", "MAX_HEADER_CHARS", "DataFileError", "jsonable", "package_versions",
           "temporary_path", "write_npz", "read_npz"]


class DataFileError(ValueError):
    """A data file is missing, unreadable, foreign, of another version or inconsistent."""


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NumPy scalars and arrays become numbers and lists, tuples lists,
    mapping keys strings; anything else (a class, a function) its qualified name or ``repr``.

    Example:
        >>> jsonable({"k": (1, np.float64(2.5)), "a": np.arange(2), "f": len})
        {'k': [1, 2.5], 'a': [0, 1], 'f': 'builtins.len'}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "__qualname__") and hasattr(value, "__module__"):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def package_versions(*extra: str) -> dict[str, str]:
    """Versions of Python, gambit-gym, NumPy, Gymnasium and of the ``extra`` modules that are imported.

    Example:
        >>> sorted(package_versions())
        ['gambit-gym', 'gymnasium', 'numpy', 'python']
    """
    import gymnasium

    from gambit_gym.version import __version__

    out = {"python": sys.version.split()[0], "gambit-gym": __version__, "numpy": np.__version__,
           "gymnasium": gymnasium.__version__}
    for name in extra:
        module = sys.modules.get(name)
        if module is not None:
            out[name.replace("_", "-")] = str(getattr(module, "__version__", "unknown"))
    return out


def write_npz(path: str | Path, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` and the JSON ``header`` to ``path`` (compressed ``.npz``) atomically; returns the path.

    The file is written exactly at ``path`` (no ``.npz`` is appended).
    """
    path = Path(path)
    if HEADER in arrays:
        raise ValueError(f"arrays: the name {HEADER!r} is reserved for the header")
    text = json.dumps(jsonable(dict(header)), allow_nan=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_arrays(path, {HEADER: np.array(text), **arrays}, compress=True)


def read_npz(path: str | Path, fmt: str, version: int, max_bytes: int | None = None
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`write_npz`: ``(header, arrays)``, after checking its format and version.

    Raises:
        DataFileError: naming the file and what was expected.
    """
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise ValueError(f"max_bytes: expected a positive integer number of bytes or None, got {max_bytes!r}")
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [info for info in zf.infolist() if not info.is_dir()]
            names = [info.filename for info in infos]
            if f"{HEADER}.npy" not in names or any(not n.endswith(".npy") for n in names):
                raise DataFileError(f"{path}: not a gambit-gym {fmt} file (no {HEADER} array)")
            declared = declared_bytes(infos)
            if declared > limit:
                raise DataFileError(f"{path}: its arrays would take {declared:,} bytes decompressed, more than the "
                                    f"limit of {limit:,} (max_bytes)")
            arrays = {info.filename[: -len(".npy")]: _read_member(zf, info, path) for info in infos}
    except DataFileError:
        raise
    except _READ_ERRORS as exc:
        raise DataFileError(f"{path}: not a readable {fmt} file (truncated, corrupt or not .npz): {exc}") from None
    raw = arrays.pop(HEADER)
    if raw.shape != () or raw.dtype.kind != "U" or len(str(raw[()])) > MAX_HEADER_CHARS:
        raise DataFileError(f"{path}: malformed header (expected one JSON string of at most {MAX_HEADER_CHARS:,} "
                            "characters)")

    def fail(problem: str) -> NoReturn:
        raise DataFileError(f"{path}: {problem}") from None

    header = parse_json_object(str(raw[()]), fail, what="the header", max_chars=MAX_HEADER_CHARS,
                               not_an_object=lambda value: f"not a gambit-gym {fmt} file (format "
                                                           f"{type(value).__name__!r})")
    if not isinstance(header, dict) or header.get("format") != fmt:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise DataFileError(f"{path}: not a gambit-gym {fmt} file (format {found!r})")
    if header.get("version") != version:
        raise DataFileError(f"{path}: {fmt} version {header.get('version')!r}; this gambit-gym reads version "
                            f"{version}")
    return header, arrays


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One ``.npy`` member of numbers, booleans or text, read only once its header agrees with the member's
    declared size (:func:`gambit_gym.datafiles.read_npy_member`)."""

    def fail(problem: str) -> NoReturn:
        raise DataFileError(f"{path}: member {info.filename}: {problem}")

    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if dtype.hasobject or dtype.kind not in "biufUS":
            fail(f"dtype {dtype}; expected numbers, booleans or text")

    return read_npy_member(zf, info, fail, check)
