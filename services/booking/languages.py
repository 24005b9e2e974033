"""The languages patients can use: English (the source) and every language with a catalogue in the repo."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel import Locale

# The booking pages' message catalogues: translations/<language>/LC_MESSAGES/messages.po (and .mo).
TRANSLATIONS = Path(__file__).parent / "pages" / "translations"
DEFAULT_LANGUAGE = "en"


@lru_cache(maxsize=1)
def supported_languages() -> tuple[str, ...]:
    """``("en", "es", ...)``: the source language, then each language with a compiled catalogue."""
    found = sorted(path.parents[1].name for path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo"))
    return (DEFAULT_LANGUAGE, *(code for code in found if code != DEFAULT_LANGUAGE))


@lru_cache(maxsize=16)
def language_name(code: str) -> str:
    """A language's name in itself, as a patient looks for it: ``English``, ``Español``."""
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]
