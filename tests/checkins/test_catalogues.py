"""The check-in pages' catalogues: every message of the code and templates translated, each .mo fresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.checkins.pages import DEFAULT_LANGUAGE, TRANSLATIONS, supported_languages
from tests.booking.test_catalogues import _extracted, check_catalogue

SOURCE = Path(__file__).resolve().parents[2] / "services" / "checkins"


def test_spanish_is_shipped_and_the_extraction_finds_the_pages_messages() -> None:
    assert "es" in supported_languages()
    found = _extracted(SOURCE)
    assert "Question %(item)s of %(count)s" in found  # a template
    assert "Choose one of the answers." in found  # pages.py


@pytest.mark.parametrize("code", [c for c in supported_languages() if c != DEFAULT_LANGUAGE])
def test_every_message_is_in_the_catalogue_translated_and_compiled(code: str) -> None:
    check_catalogue(code, SOURCE, TRANSLATIONS)
