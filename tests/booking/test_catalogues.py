"""The booking pages' message catalogues: every message of the code and templates is in every catalogue,
translated, with the same placeholders, and each committed .mo is its .po compiled (no database needed)."""

from __future__ import annotations

import io
from configparser import ConfigParser
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.dates import format_datetime, parse_pattern
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from services.booking.languages import DEFAULT_LANGUAGE, TRANSLATIONS, supported_languages

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = [code for code in supported_languages() if code != DEFAULT_LANGUAGE]
# Messages that are CLDR date and time patterns (i18n.py): each catalogue's must parse and format.
PATTERNS = ("h:mm a", "EEE d MMM", "EEE", "d MMM", "EEEE d MMMM y, h:mm a")


def _extracted(source: Path = ROOT / "services" / "booking" / "pages") -> set[str | tuple[str, ...]]:
    """Every message a catalogue's code and templates ask for, extracted as `make messages` does (babel.cfg)."""
    config = ConfigParser()
    config.read(ROOT / "babel.cfg")
    method_map = [
        (section.split(":", 1)[1].strip(), section.split(":", 1)[0]) for section in config.sections()
    ]
    options_map = {section.split(":", 1)[1].strip(): dict(config[section]) for section in config.sections()}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "N_": None}
    found: set[str | tuple[str, ...]] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(source), method_map, options_map, keywords=keywords, comment_tags=("TRANSLATORS:",)
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def _po(code: str, translations: Path = TRANSLATIONS) -> Catalog:
    with (translations / code / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=code)


def _key(value: object) -> object:
    return tuple(value) if isinstance(value, list | tuple) else value


def _table(catalog: Catalog) -> dict[object, object]:
    return {_key(m.id): _key(m.string) for m in catalog if m.id and not m.fuzzy}


def test_there_is_a_language_besides_english() -> None:
    assert "es" in LANGUAGES


def test_the_extraction_finds_the_pages_messages() -> None:
    found = _extracted()
    assert "Choose a time" in found  # a template
    assert "enter your full name" in found  # forms.py
    assert ("Please check this", "Please check these") in found  # a plural
    assert "This link does not work" in found  # a lazy problem headline


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_message_is_in_the_catalogue_and_translated(code: str) -> None:
    check_catalogue(code, ROOT / "services" / "booking" / "pages", TRANSLATIONS)


def check_catalogue(code: str, source: Path, translations: Path) -> None:
    """Every message of ``source`` is in ``translations``' catalogue of ``code``, translated, its .mo fresh."""
    catalog = _po(code, translations)
    table = _table(catalog)
    missing = sorted(map(str, _extracted(source) - set(table)))
    assert not missing, f"{code}: not in the catalogue (run `make messages`, then translate): {missing}"
    untranslated = sorted(str(k) for k, v in table.items() if not (all(v) if isinstance(v, tuple) else v))
    assert not untranslated, f"{code}: untranslated: {untranslated}"
    fuzzy = sorted(str(m.id) for m in catalog if m.id and m.fuzzy)
    assert not fuzzy, f"{code}: fuzzy (check and clear the flag): {fuzzy}"
    # Babel's own checks: the same %(name)s placeholders, the right number of plural forms.
    problems = [(str(m.id), [str(e) for e in errors]) for m, errors in catalog.check()]
    assert not problems, f"{code}: {problems}"
    assert_compiled(code, translations)


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_compiled_catalogue_is_the_po_compiled(code: str) -> None:
    assert_compiled(code, TRANSLATIONS)


def assert_compiled(code: str, translations: Path) -> None:
    """The committed .mo of ``code`` is its .po compiled."""
    with (translations / code / "LC_MESSAGES" / "messages.mo").open("rb") as handle:
        compiled = read_mo(handle)
    fresh = io.BytesIO()
    write_mo(fresh, _po(code, translations))
    fresh.seek(0)
    expected = read_mo(fresh)
    assert _table(compiled) == _table(expected), f"{code}: messages.mo is stale: run `make messages`"


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_date_and_time_patterns_are_cldr_patterns(code: str) -> None:
    table = _table(_po(code))
    moment = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    for pattern in PATTERNS:
        translated = str(table[pattern])
        parse_pattern(translated)
        assert format_datetime(moment, translated, locale=code)
