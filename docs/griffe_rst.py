"""Griffe extension: render the reStructuredText bits of the package's docstrings as Markdown.

The docstrings use Sphinx roles (``:class:`~agents.BanditResult```) and ``::`` before literal blocks; in
Markdown those would show as written. A role becomes a code span of its target (the last component with
``~``), and a trailing ``::`` a single colon (the indented block after it is a code block already). An
``Example:`` section becomes ``Examples:``, the Google section whose ``>>>`` lines render as code. The
notation ``Z*`` (the latent treatment) is escaped in prose, where Markdown would read two of them as
emphasis. In an
``Args:`` section, a line at the entries' indentation that is not a ``name: description`` entry (a remark
such as "Other arguments as PoGAMBITTS.") continues the entry above it. A module attribute documented by
``#:`` comment lines right above it (Sphinx's convention, used for the package's constants) gets them as
its docstring.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|data|mod|attr|exc|obj):`(?P<tilde>~?)(?P<target>[^`]+)`")
LITERAL_INTRO = re.compile(r"(?<=\S)::$", re.MULTILINE)
BARE_LITERAL_INTRO = re.compile(r"^(\s*)::$", re.MULTILINE)
CODE_SPAN = re.compile(r"(`+)[^`]*?\1")
Z_STAR = re.compile(r"Z\*(?!\*)")
EXAMPLE_HEADER = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
ARGS_HEADER = re.compile(r"^(?P<indent>\s*)(?:Args|Arguments|Parameters):\s*$")
ENTRY = re.compile(r"^\s*[\w*][\w*, ]*(?:\s*\([^)]*\))?:(?:\s|$)")


def escape_z_star(text: str) -> str:
    r"""``Z*`` -> ``Z\*`` outside code spans, on lines indented less than 8 (deeper ones are code blocks).

    Example:
        >>> print(escape_z_star("f(Z*_t) where Z*_t is ``Z*``"))
        f(Z\*_t) where Z\*_t is ``Z*``
    """
    out = []
    for line in text.split("\n"):
        if len(line) - len(line.lstrip()) < 8 and not line.lstrip().startswith((">>>", "...")):
            pieces, last = [], 0
            for m in CODE_SPAN.finditer(line):
                pieces += [Z_STAR.sub(r"Z\\*", line[last:m.start()]), m.group(0)]
                last = m.end()
            line = "".join(pieces) + Z_STAR.sub(r"Z\\*", line[last:])
        out.append(line)
    return "\n".join(out)


def continue_remarks(text: str) -> str:
    r"""Indent a non-entry line of an ``Args:`` section under the entry above it.

    Example:
        >>> print(continue_remarks("Args:\n    a, b: the prior.\n    Other arguments as X."))
        Args:
            a, b: the prior.
                Other arguments as X.
    """
    lines = text.split("\n")
    entry_indent = None
    for i, line in enumerate(lines):
        header = ARGS_HEADER.match(line)
        if header:
            entry_indent = None
            continue
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if entry_indent is None:
            if i and ARGS_HEADER.match(lines[i - 1]) and stripped:
                entry_indent = indent
            continue
        if not stripped:
            continue
        if indent < entry_indent:  # the section ended
            entry_indent = None
        elif indent == entry_indent and not ENTRY.match(line):
            lines[i] = " " * (entry_indent + 4) + stripped
    return "\n".join(lines)


def markdown(text: str) -> str:
    r"""``:class:`~a.B``` -> ```B```, ``:func:`a.f``` -> ```a.f```, ``text::`` -> ``text:``.

    Example:
        >>> markdown("See :class:`~agents.results.BanditResult` and :func:`run_bandit`::")
        'See `BanditResult` and `run_bandit`:'
    """
    def role(m: re.Match) -> str:
        target = m.group("target")
        return f"`{target.rsplit('.', 1)[-1] if m.group('tilde') else target}`"

    text = ROLE.sub(role, text)
    text = EXAMPLE_HEADER.sub(r"\1Examples:", text)
    text = BARE_LITERAL_INTRO.sub(r"\1", text)
    return escape_z_star(continue_remarks(LITERAL_INTRO.sub(":", text)))


def comment_docstring(lines: list[str], lineno: int) -> str | None:
    r"""The ``#:`` comment lines right above line ``lineno`` (1-based), joined; None if there are none.

    Example:
        >>> comment_docstring(["#: The palette,", "#: in order.", "PALETTE = ()"], 3)
        'The palette,\nin order.'
    """
    found: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        found.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    return "\n".join(found) if found else None


class RstToMarkdown(griffe.Extension):
    """Rewrite every loaded object's docstring with :func:`markdown`; give ``#:``-documented attributes theirs."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_attribute and obj.lineno:
            text = comment_docstring(obj.lines_collection[obj.filepath] if obj.filepath else [], obj.lineno)
            if text is not None:
                obj.docstring = griffe.Docstring(text, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # a top-level package reaches on_package only, not on_object
        if pkg.docstring is not None:
            pkg.docstring.value = markdown(pkg.docstring.value)
