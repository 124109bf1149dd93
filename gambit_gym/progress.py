"""Progress bars for long work (tqdm), set up in one place."""

from __future__ import annotations

from typing import Any


def progress_bar(enabled: bool, total: int, desc: str, unit: str, **kwargs: Any) -> Any:
    """A ``tqdm`` bar, or ``None`` when ``enabled`` is false (callers skip ``update`` on ``None``).

    Example:
        >>> bar = progress_bar(False, 10, "rounds", "round")
        >>> bar is None
        True
    """
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, **kwargs)
