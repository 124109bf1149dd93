"""MkDocs hook: put the ``--help`` of ``gambit-gym`` commands into the pages, so the CLI page is built from the code.

A line ``<!-- gambit-gym-help: experiment run -->`` in a page becomes a code block holding the output of
``gambit-gym experiment run --help`` (``<!-- gambit-gym-help: -->`` for the top level).
"""

from __future__ import annotations

import argparse
import os
import re

MARKER = re.compile(r"^<!-- gambit-gym-help:(?P<command>[^>]*)-->$", re.MULTILINE)


def _help(command: str) -> str:
    from agents.cli import build_parser

    parser = build_parser()
    for word in command.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if word not in sub.choices:
            raise ValueError(f"docs: no gambit-gym command {command!r} (at {word!r})")
        parser = sub.choices[word]
    return parser.format_help()


def on_page_markdown(markdown: str, **kwargs) -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: fix it so the pages do not vary
    return MARKER.sub(lambda m: "```text\n" + _help(m.group("command")).rstrip() + "\n```", markdown)
