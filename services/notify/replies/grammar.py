"""The reply keywords: C / YES / CONFIRM (and Spanish SÍ / CONFIRMAR) confirm, R / CHANGE change; and a
0-10 number answering a rating asked by SMS.

An escort's YES / SÍ / CONFIRM is the same CONFIRM: which booking it is about decides what it confirms.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

CONFIRM = "confirm"
CHANGE = "change"
OTHER = "other"

_WORDS = {
    **dict.fromkeys(
        ("C", "Y", "YES", "CONFIRM", "CONFIRMED", "SI", "CONFIRMAR", "CONFIRMO", "CONFIRMADO"), CONFIRM
    ),
    **dict.fromkeys(("R", "CHANGE", "RESCHEDULE", "CAMBIAR"), CHANGE),
}
_SHAPE = re.compile(r"^([A-Z]+)(?: ?(\d{1,2}))?$")
# A rating: a number, maybe "out of 10" as "/10", with spaces and trailing punctuation ("7", " 7. ", "7/10!").
_RATING = re.compile(r"^([0-9]{1,2})(?: ?/ ?10)?[.!?,;]*$")
RATING_MAX = 10


@dataclass(frozen=True)
class Reply:
    """What a reply says: its intent, and the day of the month it names (if any)."""

    intent: str
    day: int | None = None


def _plain(body: str) -> str:
    """Upper-case letters, digits and single spaces: accents, punctuation and emoji dropped."""
    decomposed = unicodedata.normalize("NFKD", body)
    kept = "".join(
        ch if ch.isascii() and ch.isalnum() else " " for ch in decomposed if not unicodedata.combining(ch)
    )
    return " ".join(kept.upper().split())


def parse(body: str) -> Reply:
    """Read one inbound message."""
    match = _SHAPE.match(_plain(body))
    if not match:
        return Reply(OTHER)
    intent = _WORDS.get(match.group(1))
    if intent is None:
        return Reply(OTHER)
    day = int(match.group(2)) if match.group(2) else None
    if day is not None and not 1 <= day <= 31:
        return Reply(OTHER)
    return Reply(intent, day)


def rating(body: str) -> int | None:
    """The 0-10 number a reply is, or None (words, other numbers, out of range)."""
    match = _RATING.match(" ".join(unicodedata.normalize("NFKC", body).split()))
    if not match:
        return None
    value = int(match.group(1))
    return value if value <= RATING_MAX else None
