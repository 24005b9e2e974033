"""The reply keywords: C / YES / CONFIRM (and Spanish SÍ / CONFIRMAR) confirm, R / CHANGE change.

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
