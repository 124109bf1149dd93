"""Message clean-up and rejection of degenerate generator output.

:func:`clean_message` returns ``(text, None)`` for an accepted message or
``(text, reason)`` with one of :data:`REASONS`.
"""

from __future__ import annotations

import re

REASONS = ("empty", "emoji", "repetition", "echo", "placeholder", "off-topic", "length")
MIN_WORDS, MAX_CHARS = 8, 450

_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")
_EMOJI_RUN = re.compile("(?:[\U0001f000-\U0001faff\u2600-\u27bf][\ufe0f\u200d]?\\s*){3,}")
_PREFACE = re.compile(r"^(sure|certainly|of course|here(?:'s| is| are)|okay|ok)\b[^\n]*?:\s*", re.IGNORECASE)
_COMMENTARY = re.compile(r"\s[\"'”]?\s*(?:This|The|That) (?:message|reminder|text|note)\b")
_CHAR_RUN = re.compile(r"(\S)\1{5,}")
_PLACEHOLDER = re.compile(r"\[[^\]]{1,40}\]|<[^>]{1,40}>|\{[^}]{1,40}\}")
_ECHO = ("mildly ", "2-3 sentence", "app message encouraging", "reply with", "push notification",
         "notification text")


def _ngrams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"[\w']+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _echo_ngrams() -> set[tuple[str, ...]]:
    from gambit_gym.cache.prompts import EXAMPLE_REPLY, INSTRUCTION_TEMPLATE, SYSTEM_PROMPT

    return _ngrams(EXAMPLE_REPLY) | _ngrams(SYSTEM_PROMPT) | _ngrams(INSTRUCTION_TEMPLATE)


def clean_message(raw: str, adjective: str | None = None) -> tuple[str, str | None]:
    """Strip prefaces, quotes and whitespace; then accept or name the reason for rejection.

    An *echo* repeats the instruction ("mildly optimistic", "2-3 sentence") or
    copies 8 consecutive words of the instruction, system prompt or worked example.
    """
    text = raw.strip()
    text = _PREFACE.sub("", text).strip()
    if len(text) >= 2 and text[0] in "\"'“" and text[-1] in "\"'”":
        text = text[1:-1].strip()
    text = re.sub(r"\s+", " ", text)
    # Small models append commentary ("This message is friendly..."): keep only the message.
    commentary = _COMMENTARY.search(text)
    if commentary and len(text[: commentary.start()].split()) >= MIN_WORDS:
        text = text[: commentary.start()].strip().strip("\"'“”").strip()
    if not text:
        return text, "empty"
    if _EMOJI_RUN.search(text) or len(_EMOJI.findall(text)) > max(3, len(text) // 25):
        return text, "emoji"
    words = re.findall(r"[\w']+", text.lower())
    if _CHAR_RUN.search(text) or _repeats(words) or (len(words) >= 20 and len(set(words)) < 0.4 * len(words)):
        return text, "repetition"
    lowered = text.lower()
    if (any(e in lowered for e in _ECHO) or (adjective and f"mildly {adjective.lower()}" in lowered)
            or _ngrams(text) & _ECHO_NGRAMS):
        return text, "echo"
    if _PLACEHOLDER.search(text):
        return text, "placeholder"
    if "step" not in lowered and "walk" not in lowered:
        return text, "off-topic"
    if len(words) < MIN_WORDS or len(text) > MAX_CHARS:
        return text, "length"
    return text, None


def trim_to_sentence(text: str) -> str:
    """Cut a message that ran out of tokens back to its last full sentence."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[: ends[-1]] if ends else text


_ECHO_NGRAMS = _echo_ngrams()


def _repeats(words: list[str], run: int = 4) -> bool:
    count = 1
    for prev, cur in zip(words, words[1:]):
        count = count + 1 if cur == prev else 1
        if count >= run:
            return True
    return False
