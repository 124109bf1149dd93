"""Optional dependencies: imported where used, with an install hint naming the extra when missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the ``gambit-gym[extra]`` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f'{purpose} needs the "{module}" package, which is missing: pip install "gambit-gym[{extra}]"'
        ) from exc
