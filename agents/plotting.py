"""What every figure of the package shares: one colour per agent, matplotlib on demand.

:func:`agent_color` maps an agent's label to a colour that is the same in
every figure, process and run: the agents of the paper (and the SB3
algorithms) have fixed colours, any other label gets one from its hash.
:func:`agent_colors` does the same for the agents of one figure, moving an
unknown label whose hashed colour is already taken in that figure to the next
free one. :meth:`agents.BanditResult.plot` and the experiment report both use it.

Example:
    >>> agent_color("poGAMBITTS") == agent_color("PoGAMBITTS")      # labels and class names alike
    True
    >>> colors = agent_colors(["StdTS", "poGAMBITTS", "my agent"])
    >>> colors["StdTS"] == agent_color("StdTS"), len(set(colors.values()))
    (True, 3)
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from typing import Any

#: The palette: matplotlib's "tab10", then ten more colours far enough from those to tell apart.
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#000000", "#e7ba52", "#637939", "#843c39", "#7b4173", "#b5cf6b", "#9c9ede", "#e7969c", "#008080",
)

#: Agents with a fixed colour (an index into PALETTE), under each name they go by.
KNOWN_AGENTS: dict[str, int] = {
    "pogambitts": 0,
    "fogambitts": 1,
    "ensemble": 2, "ensemblegambitts": 2,
    "stdts": 3, "standardts": 3,
    "lints": 4, "linearts": 4,
    "pogambittshedged": 5,
    "stdtscontextual": 6,
    "a2c": 7,
    "ppo": 8,
    "pogambittsnocontext": 9,
    "dqn": 10,
}


def _key(label: str) -> str:
    """``"poGAMBITTS-hedged"``, ``"PoGAMBITTS hedged"`` -> ``"pogambittshedged"``; ``"sb3:PPO"`` -> ``"ppo"``."""
    label = label.removeprefix("sb3:")
    return re.sub(r"[^0-9a-z]", "", label.lower())


#: The palette's colours no known agent has: the ones unknown labels hash to.
_FREE = tuple(i for i in range(len(PALETTE)) if i not in set(KNOWN_AGENTS.values()))


def _hashed(label: str) -> int:
    """A palette index no known agent has, from the label's CRC-32: the same in every process (unlike ``hash``)."""
    return _FREE[zlib.crc32(label.encode("utf-8")) % len(_FREE)]


def agent_color(label: str) -> str:
    """The colour of the agent ``label`` (hex): fixed for the known agents, from the label's hash for others."""
    if not isinstance(label, str):
        raise TypeError(f"label: expected an agent label (str), got {label!r}")
    index = KNOWN_AGENTS.get(_key(label))
    return PALETTE[_hashed(label) if index is None else index]


def agent_colors(labels: Iterable[str]) -> dict[str, str]:
    """Colours for the agents of one figure: :func:`agent_color`, with no colour used twice while any is free.

    Known agents keep their fixed colours; unknown labels, in sorted order, take their hashed colour or, if
    another agent of the figure has it, the next colour that no agent of the figure has (first among those no
    known agent owns). With more agents than colours, colours repeat."""
    labels = list(dict.fromkeys(labels))
    out = {label: agent_color(label) for label in labels if isinstance(label, str) and _key(label) in KNOWN_AGENTS}
    reserved = [i for i in range(len(PALETTE)) if i not in _FREE]
    for label in sorted((lab for lab in labels if lab not in out), key=str):
        start = _FREE.index(PALETTE.index(agent_color(label)))
        candidates = [PALETTE[i] for i in _FREE[start:] + _FREE[:start] + tuple(reserved)]
        taken = set(out.values())
        out[label] = next((c for c in candidates if c not in taken), candidates[0])
    return {label: out[label] for label in labels}


def pyplot(headless: bool = True) -> Any:
    """``matplotlib.pyplot``, with the non-interactive Agg backend when ``headless``.

    Raises ImportError with the install command (and the report's ``--no-plots``) when the ``plots`` extra is
    missing."""
    try:
        import matplotlib

        if headless:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('plots need matplotlib: pip install "gambit-gym[plots]" '
                          "(or, for an experiment report, pass --no-plots)") from exc
    return plt
