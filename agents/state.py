"""Explicit learned state: named numpy arrays and plain Python scalars.

Every posterior and every built-in agent lists its state by name (``state()`` /
``_state()``); nothing is found by looking through an object's attributes. A
state coming back in (from a file, say) is checked against the live one before
anything is overwritten: the same names, arrays of the same shape and dtype,
scalars of the same kind, every floating-point value finite. Names compose with
a prefix per part, ``"model.chol"``.

A state file (:func:`write_state_file`, :class:`StateFileReader`) is a ``.npz``
archive of plain arrays plus a JSON header, written to exactly the path given,
atomically (a temporary file, then a rename). Reading never unpickles and
never executes anything from the file: each member's ``.npy`` header is checked
(no object arrays, the declared size) before its bytes are read, and anything
unreadable gives a :class:`StateFileError` naming the file.
"""

from __future__ import annotations

import json
import numbers
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import numpy as np

from gambit_gym.datafiles import ZIP_ERRORS, parse_json_object, read_npy_member, write_arrays

StateValue = np.ndarray | int | float
State = dict[str, StateValue]


def prefixed(prefix: str, state: Mapping[str, StateValue]) -> State:
    """``{"chol": ...}`` -> ``{"model.chol": ...}`` for ``prefix="model"``."""
    return {f"{prefix}.{name}": value for name, value in state.items()}


def unprefixed(prefix: str, state: Mapping[str, StateValue]) -> State:
    """The entries of ``state`` under ``prefix``, with the prefix taken off (inverse of :func:`prefixed`)."""
    head = f"{prefix}."
    return {name[len(head):]: value for name, value in state.items() if name.startswith(head)}


def check_state(owner: str, expected: Mapping[str, StateValue], given: Mapping[str, StateValue]) -> State:
    """Copies of the values in ``given`` after checking them against ``expected`` (the live state).

    Arrays must match in shape and dtype, ints must be ints, floats real numbers, and every floating-point
    value must be finite (a NaN would make an agent act on garbage without a word); scalars come back as
    plain Python ``int`` / ``float``. Errors name ``owner`` and the offending entry.

    Example:
        >>> check_state("agent", {"n": 0, "x": np.zeros(2)}, {"n": 3, "x": np.ones(2)})
        {'n': 3, 'x': array([1., 1.])}
    """
    if not isinstance(given, Mapping):
        raise TypeError(f"{owner}: expected a mapping name -> array or scalar, got {type(given).__name__}")
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{owner}: state names differ: missing {missing}, unexpected {unexpected}")
    out: State = {}
    for name, want in expected.items():
        value = given[name]
        if isinstance(want, np.ndarray):
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{owner}: {name} must be an array of shape {want.shape}, got {type(value).__name__}")
            check_array_layout(owner, name, value.shape, value.dtype, want)
            if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
                raise ValueError(f"{owner}: {name} contains NaN or infinite values; a state must be finite")
            out[name] = np.array(value, copy=True)
        elif isinstance(want, bool) or not isinstance(want, (int, float)):
            raise TypeError(f"{owner}: {name} is listed as state but is a {type(want).__name__}, "
                            "not an array, int or float")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
        elif isinstance(want, int):
            if not isinstance(value, numbers.Integral):
                raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")
            out[name] = int(value)
        elif not np.isfinite(float(value)):
            raise ValueError(f"{owner}: {name} is {float(value)}; a state must be finite")
        else:
            out[name] = float(value)
    return out


def check_array_layout(owner: str, name: str, shape: tuple[int, ...], dtype: np.dtype, want: np.ndarray) -> None:
    """That an array of ``shape`` and ``dtype`` can stand for the live array ``want`` (same shape and dtype)."""
    if tuple(shape) != want.shape:
        raise ValueError(f"{owner}: {name} has shape {tuple(shape)}, expected {want.shape}")
    if dtype != want.dtype:
        raise ValueError(f"{owner}: {name} has dtype {dtype}, expected {want.dtype}")


def snapshot(state: Mapping[str, StateValue]) -> State:
    """A copy of ``state`` whose arrays share no memory with the live ones."""
    return {name: value.copy() if isinstance(value, np.ndarray) else value for name, value in state.items()}


# -- state files -----------------------------------------------------------------------------------------
class StateFileError(ValueError):
    """An agent-state file that cannot be read: truncated, corrupt, not an agent state, or unsafe (pickles)."""


#: What the JSON header of every state file says it is, and the layout version this code writes and reads.
STATE_FILE_FORMAT = "gambit-gym agent state"
STATE_FILE_VERSION = 1
#: The member holding the JSON header.
HEADER_MEMBER = "__meta__"
#: Cap on the characters of a header's JSON (each member's ``.npy`` header has NumPy's own cap).
MAX_HEADER_CHARS = 1 << 20


def write_state_file(path: str | os.PathLike[str], header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` and the JSON ``header`` (plus format and version) to exactly ``path``, atomically.

    The archive goes to a new temporary file beside ``path`` (through an open handle, so nothing is
    appended to the name), is flushed to disk, and is then renamed over ``path``: a reader sees the
    old file or the new one, never half of one, and a failed write leaves no temporary file behind.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "agent.state"
        >>> write_state_file(target, {"class": "Demo"}, {"x": np.zeros(2)}).name
        'agent.state'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file name (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path: {path} is a directory; expected a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the folder {path.parent} does not exist")
    if HEADER_MEMBER in arrays:
        raise ValueError(f"arrays: the name {HEADER_MEMBER!r} is reserved for the header")
    text = json.dumps({**header, "format": STATE_FILE_FORMAT, "version": STATE_FILE_VERSION}, allow_nan=True)
    return write_arrays(path, {HEADER_MEMBER: np.array(text), **arrays}, compress=False)


class StateFileReader:
    """An open state file: the parsed JSON ``header`` at once, the arrays on request, checked first.

    Use as a context manager. Opening reads only the header; :meth:`arrays` compares every member's
    declared name, shape and dtype with the live state before reading any of its bytes, so a file
    can never make the reader allocate more than the live state holds.

    Raises:
        FileNotFoundError: no file at ``path``.
        StateFileError: naming the file, for anything that is not a readable state file of this version.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a file name (str or os.PathLike), got {type(path).__name__}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except ZIP_ERRORS as exc:
            self._fail(f"not a readable agent state file (truncated, corrupt or not .npz): {exc}")
        try:
            self._members = self._list_members()
            self.header = self._read_header()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> StateFileReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def _fail(self, problem: str) -> NoReturn:
        raise StateFileError(f"{self.path}: {problem}") from None

    def _list_members(self) -> dict[str, zipfile.ZipInfo]:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            if not info.filename.endswith(".npy") or info.filename[:-4] in members:
                self._fail(f"not an agent state file (member {info.filename!r}: expected distinct NAME.npy arrays)")
            members[info.filename[:-4]] = info
        return members

    def _read_header(self) -> dict[str, Any]:
        if HEADER_MEMBER not in self._members:
            self._fail(f"not an agent state file (no {HEADER_MEMBER} header)")

        def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
            if dtype.kind != "U" or shape != ():
                self._fail(f"not an agent state file ({HEADER_MEMBER} is {dtype} of shape {shape}, expected text)")
            if dtype.itemsize // 4 > MAX_HEADER_CHARS:
                self._fail(f"header of {dtype.itemsize // 4:,} characters; expected at most {MAX_HEADER_CHARS:,}")

        text = str(self._read_member(HEADER_MEMBER, check)[()])
        header = parse_json_object(text, self._fail, what="the header", max_chars=MAX_HEADER_CHARS)
        if "format" not in header:
            self._fail("not a gambit-gym agent state file (no format marker: a foreign file, or a state saved by "
                       "an earlier gambit-gym that cannot be checked against the environment; save the agent again)")
        if header["format"] != STATE_FILE_FORMAT:
            self._fail(f"not a gambit-gym agent state file (format {header['format']!r})")
        if header.get("version") != STATE_FILE_VERSION:
            self._fail(f"agent state file version {header.get('version')!r}; this gambit-gym reads version "
                       f"{STATE_FILE_VERSION}")
        return header

    def arrays(self, expected: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every array of the file, after checking names, shapes and dtypes against ``expected``
        (the live arrays); errors name the file and the array."""
        owner = str(self.path)
        names = set(self._members) - {HEADER_MEMBER}
        missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
        if missing or unexpected:
            raise ValueError(f"{owner}: state names differ: missing arrays {missing}, unexpected {unexpected}")

        def checker(name: str):
            return lambda shape, dtype: check_array_layout(owner, name, shape, dtype, expected[name])

        return {name: self._read_member(name, checker(name)) for name in expected}

    def _read_member(self, name: str, check) -> np.ndarray:
        """One ``.npy`` member: its header parsed and passed to ``check(shape, dtype)``, then exactly the
        declared bytes read (never unpickled; :func:`gambit_gym.datafiles.read_npy_member`)."""

        def fail(problem: str) -> NoReturn:
            self._fail(f"{name}: {problem}")

        def check_member(shape: tuple[int, ...], dtype: np.dtype) -> None:
            if dtype.hasobject:
                fail("holds Python objects (a pickle); agent state files hold plain numbers only, "
                     "and pickles are never loaded")
            check(shape, dtype)

        return read_npy_member(self._zip, self._members[name], fail, check_member, catch=ZIP_ERRORS)
