"""What the avatar is given to say: a request's text cleaned and checked, then cut into pieces
the provider accepts.

:func:`normalise` turns whatever a client sent into the text to speak, or raises
:class:`~bridge.errors.BadInput` naming the field and the cause, and nothing else:

- not a string, or a string with a lone surrogate (``"\\ud800"``, which JSON allows but no
  text encoding can carry) → refused;
- Unicode NFC, so a letter typed as base + combining mark is counted and sent as one;
- line breaks as ``\\n`` (``\\r\\n`` and a lone ``\\r`` become ``\\n``); every other control
  character (C0, DEL, C1) except ``\\t`` is removed: it means nothing to a voice and some
  providers choke on it;
- leading and trailing whitespace removed; then empty → refused, longer than the per-request
  limit → refused (counted after cleaning: what would be spoken).

:func:`split` cuts a text longer than the provider's per-item limit greedily: each piece is as
long as the limit allows, cut after the last sentence end (``. ! ? …``, CJK full stops, or a
line break) within it; failing that, at the last space; failing that (one enormous word), hard
at the limit, never between a letter and its combining mark.  Pieces are stripped; joined
with single spaces they say what the text said.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TypeVar

from bridge.errors import BadInput

__all__ = ["choice", "normalise", "split"]

_SURROGATE = re.compile("[\ud800-\udfff]")
# Cc other than \t and \n (\r is turned into \n first).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A sentence ends at its punctuation (and any closing quotes or brackets) when white space
# follows; CJK full stops need none; a line break ends one too.
_SENTENCE_END = re.compile(r"""[.!?…‽]+["'’”»)\]]*(?=\s)|[。！？]+["'’”」』)\]]*|\n""")

T = TypeVar("T", bound=str)


def normalise(text: object, *, max_text: int, field: str = "text") -> str:
    """The text to speak, cleaned as the module says; :class:`BadInput` naming ``field``."""
    if not isinstance(text, str):
        raise BadInput(field, "must be a string")
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        raise BadInput(
            field,
            f"contains a lone surrogate (U+{ord(surrogate.group()):04X} at character "
            f"{surrogate.start()}), which is not text; send valid Unicode",
        )
    clean = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    clean = _CONTROL.sub("", clean).strip()
    if not clean:
        raise BadInput(field, "is empty")
    if len(clean) > max_text:
        raise BadInput(field, f"is {len(clean)} characters; at most {max_text} per request")
    return clean


def choice(value: object, field: str, allowed: tuple[T, ...]) -> T:
    """``value`` if it is one of ``allowed``; :class:`BadInput` naming ``field`` otherwise."""
    for option in allowed:
        if isinstance(value, str) and value == option:
            return option
    raise BadInput(field, f"{value!r} is not one of {', '.join(allowed)}")


def split(text: str, limit: int) -> list[str]:
    """``text`` (normalised) in pieces of at most ``limit`` characters, in order."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _cut(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _cut(text: str, limit: int) -> int:
    """Where the first piece of ``text`` (longer than ``limit``, no leading space) ends."""
    window = text[: limit + 1]  # a space right after the limit still ends a piece there
    sentence = 0
    for end in _SENTENCE_END.finditer(window):
        if end.end() <= limit:
            sentence = end.end()
    if sentence:
        return sentence
    space = next((i for i in range(min(limit, len(window) - 1), 0, -1) if window[i].isspace()), 0)
    if space:
        return space
    cut = limit
    while cut > 1 and unicodedata.combining(text[cut]):  # keep a mark with its letter
        cut -= 1
    return cut
