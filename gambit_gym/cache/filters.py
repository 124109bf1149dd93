"""Message clean-up and the opt-in discard rules (filters) a domain file declares.

:func:`clean_text` tidies a generated reply (prefaces such as "Sure! Here's the
message:", surrounding quotes, runs of whitespace, trailing commentary such as
"This message is upbeat.") and :func:`trim_to_sentence` cuts a reply that ran
out of tokens back to its last full sentence: both apply to generated text only,
never to imported texts.

:class:`TextFilters` applies the filters a domain lists under ``[filters]``,
each with its parameters (:data:`FILTER_PARAMETERS`), in the fixed order of
:data:`REASONS`; the first that fires names the reason a message is discarded.
A filter the domain does not list never runs. An empty text is always discarded
(reason ``"empty"``): there is nothing to embed.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

#: Every discard reason, in the order the checks run.
REASONS = ("empty", "emoji", "repetition", "echo", "placeholder", "off-topic", "length")

#: filter name -> {parameter: (type, default or None if required, meaning)}.
FILTER_PARAMETERS: dict[str, dict[str, tuple[type, Any, str]]] = {
    "emoji": {},
    "repetition": {},
    "echo": {
        "phrases": (list, [], "lower-case phrases a message must not contain (bits of the instruction)"),
        "patterns": (list, [], "like phrases, but formatted with the prompt's fields first, e.g. 'mildly {id}'"),
        "copied_words": (int, 8, "a message that copies this many consecutive words of the system prompt, "
                                 "an instruction template or the worked example is an echo"),
    },
    "placeholder": {},
    "off-topic": {"keywords": (list, None, "a message must contain at least one of these (case-insensitive)")},
    "length": {"min_words": (int, 8, "fewest words"), "max_chars": (int, 450, "most characters")},
}

#: What each filter discards (for help texts and reports).
FILTER_MEANINGS = {
    "empty": "nothing left after clean-up (always on)",
    "emoji": "a run of 3+ emoji, or emoji in more than 1 of 25 characters",
    "repetition": "a character run of 6+, a word 4 times in a row, or under 40% distinct words in 20+ words",
    "echo": "repeats the instruction, its phrases, or copies the system prompt, template or example",
    "placeholder": "an unfilled slot such as [Name], <date> or {user}",
    "off-topic": "none of the domain's topic keywords",
    "length": "fewer than min_words words or more than max_chars characters",
}

# Clean-up stops cutting trailing commentary when the message before it would be shorter than this.
_COMMENTARY_MIN_WORDS = 8

_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")
_EMOJI_RUN = re.compile("(?:[\U0001f000-\U0001faff\u2600-\u27bf][\ufe0f\u200d]?\\s*){3,}")
_PREFACE = re.compile(r"^(sure|certainly|of course|here(?:'s| is| are)|okay|ok)\b[^\n]*?:\s*", re.IGNORECASE)
_COMMENTARY = re.compile(r"\s[\"'”]?\s*(?:This|The|That) (?:message|reminder|text|note)\b")
_CHAR_RUN = re.compile(r"(\S)\1{5,}")
_PLACEHOLDER = re.compile(r"\[[^\]]{1,40}\]|<[^>]{1,40}>|\{[^}]{1,40}\}")
_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def literal_segments(template: str) -> list[str]:
    """The literal text of a ``str.format`` template between its placeholders."""
    return [literal for literal, _, _, _ in string.Formatter().parse(template) if literal]


def clean_text(raw: str) -> str:
    """Strip a generated reply's preface, surrounding quotes, extra whitespace and trailing commentary."""
    text = raw.strip()
    text = _PREFACE.sub("", text).strip()
    if len(text) >= 2 and text[0] in "\"'“" and text[-1] in "\"'”":
        text = text[1:-1].strip()
    text = re.sub(r"\s+", " ", text)
    # Small models append commentary ("This message is friendly..."): keep only the message.
    commentary = _COMMENTARY.search(text)
    if commentary and len(text[: commentary.start()].split()) >= _COMMENTARY_MIN_WORDS:
        text = text[: commentary.start()].strip().strip("\"'“”").strip()
    return text


def trim_to_sentence(text: str) -> str:
    """Cut a message that ran out of tokens back to its last full sentence."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[: ends[-1]] if ends else text


def check_filter_parameters(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """One filter's parameters with defaults filled in; a ``ValueError`` names what is wrong."""
    if name not in FILTER_PARAMETERS:
        raise ValueError(f"unknown filter {name!r}; expected one of {sorted(FILTER_PARAMETERS)}")
    spec = FILTER_PARAMETERS[name]
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; filter {name!r} takes {sorted(spec) or 'none'}")
    out = {}
    for key, (kind, default, meaning) in spec.items():
        value = params.get(key, default)
        if value is None:
            raise ValueError(f"{key}: required ({meaning})")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{key}: expected a positive integer ({meaning}), got {value!r}")
        if kind is list and (not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value)):
            raise ValueError(f"{key}: expected a list of non-empty strings ({meaning}), got {value!r}")
        out[key] = list(value) if kind is list else value
    if name == "off-topic" and not out["keywords"]:
        raise ValueError("keywords: expected at least one keyword")
    return out


class TextFilters:
    """The filters a domain enabled, with their parameters; :meth:`reason` says why a text is discarded.

    Args:
        enabled: filter name -> parameters (each checked by :func:`check_filter_parameters`).
        echo_sources: texts a message must not copy (the system prompt, the literal parts of the
            instruction templates, the worked example's reply).

    Example:
        >>> filters = TextFilters({"off-topic": {"keywords": ["walk"]}, "length": {"min_words": 3}})
        >>> filters.reason("A short walk after lunch helps.")
        >>> filters.reason("Drink more water today, please.")
        'off-topic'
        >>> TextFilters({}).reason("Anything at all passes.")
    """

    def __init__(self, enabled: Mapping[str, Mapping[str, Any]], echo_sources: Sequence[str] = ()) -> None:
        self.params = {name: check_filter_parameters(name, params) for name, params in enabled.items()}
        echo = self.params.get("echo")
        self._echo_ngrams: set[tuple[str, ...]] = set()
        if echo is not None:
            for source in echo_sources:
                self._echo_ngrams |= _ngrams(source, echo["copied_words"])

    @property
    def names(self) -> list[str]:
        """The enabled filters, in the order they run."""
        return [name for name in REASONS if name in self.params]

    def reason(self, text: str, fields: Mapping[str, str] | None = None) -> str | None:
        """``None`` if ``text`` passes every enabled filter, else the first reason (one of :data:`REASONS`).

        ``fields`` are the prompt's template fields (``{"id": ...}``), used by the echo filter's patterns.
        """
        if not text.strip():
            return "empty"
        p = self.params
        if "emoji" in p and (_EMOJI_RUN.search(text) or len(_EMOJI.findall(text)) > max(3, len(text) // 25)):
            return "emoji"
        words = _words(text)
        if "repetition" in p and (_CHAR_RUN.search(text) or _repeats(words)
                                  or (len(words) >= 20 and len(set(words)) < 0.4 * len(words))):
            return "repetition"
        lowered = text.lower()
        if "echo" in p:
            echo = p["echo"]
            patterns = _formatted(echo["patterns"], fields or {})
            if (any(phrase in lowered for phrase in echo["phrases"]) or any(x in lowered for x in patterns)
                    or _ngrams(text, echo["copied_words"]) & self._echo_ngrams):
                return "echo"
        if "placeholder" in p and _PLACEHOLDER.search(text):
            return "placeholder"
        if "off-topic" in p and not any(k.lower() in lowered for k in p["off-topic"]["keywords"]):
            return "off-topic"
        if "length" in p and (len(words) < p["length"]["min_words"] or len(text) > p["length"]["max_chars"]):
            return "length"
        return None


def _formatted(patterns: Sequence[str], fields: Mapping[str, str]) -> list[str]:
    """Each pattern filled with the prompt's fields, lower-cased; one naming a field it lacks is skipped."""
    out = []
    for pattern in patterns:
        try:
            out.append(pattern.format_map(fields).lower())
        except (KeyError, IndexError, ValueError):
            continue
    return [x for x in out if x]


def clean_message(raw: str, fields: Mapping[str, str] | None = None,
                  filters: TextFilters | None = None) -> tuple[str, str | None]:
    """:func:`clean_text`, then ``filters`` (none but "empty" if ``None``): ``(text, None or reason)``.

    Example:
        >>> clean_message('Sure! Here is your message: "Walk to work today, it clears the head."')
        ('Walk to work today, it clears the head.', None)
    """
    text = clean_text(raw)
    return text, (filters or TextFilters({})).reason(text, fields)


def _repeats(words: list[str], run: int = 4) -> bool:
    count = 1
    for prev, cur in zip(words, words[1:]):
        count = count + 1 if cur == prev else 1
        if count >= run:
            return True
    return False
