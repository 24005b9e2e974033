"""Messages in the patient's language (issue 17 point 4): every template exists in every language, Spanish
messages render in Spanish, and a Spanish SMS stays in GSM-7 (see test_sms_segments.py for the counts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.notify.config import PROTOCOLS_DIR
from services.notify.models import EMAIL, SMS
from services.notify.preview import preview_all
from services.notify.rendering import LANGUAGES_FOLDER
from services.notify.runtime import Runtime
from tests.notify.test_protocols import FORBIDDEN_IN_SMS, GSM_7

TEMPLATES = PROTOCOLS_DIR / "templates"
LANGUAGES = sorted(p.name for p in (PROTOCOLS_DIR / LANGUAGES_FOLDER).iterdir() if p.is_dir())
# Words of the English templates that must not be left in a Spanish message.
ENGLISH = re.compile(r"\b(your|appointment|reminder|please|tomorrow|booked|Hello|Reply)\b")
# Spanish words a treatment could hide behind, on top of the English ones (SMS are read on lock screens).
FORBIDDEN_IN_SPANISH_SMS = re.compile(
    r"ketamina|infusi|depresi|ansiedad|dolor|ánimo|terapia|tratamiento|medic|droga", re.I
)


# Staff messages (escort alerts) are written in the clinic's language, English, whatever the patient's.
STAFF = "staff/"


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {
        str(p.relative_to(root)) for p in (root / STAFF).rglob("*")
    }


def test_spanish_is_shipped() -> None:
    assert "es" in LANGUAGES


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_template_has_its_translation(code: str, runtime: Runtime) -> None:
    folder = PROTOCOLS_DIR / LANGUAGES_FOLDER / code
    missing = sorted(_files(TEMPLATES) - _files(folder))
    assert not missing, f"{code} lacks {missing}"
    email_templates = {
        step.template for p in runtime.book.protocols.values() for step in p.steps if EMAIL in step.channels
    }
    subjects = sorted(
        t for t in email_templates if not t.startswith(STAFF) and not (folder / f"{t}.subject.txt").is_file()
    )
    assert not subjects, f"{code} lacks the subjects of {subjects}"
    assert (folder / "formats.toml").is_file()


def test_every_spanish_message_is_spanish(runtime: Runtime) -> None:
    rendered = list(preview_all(runtime, language="es"))
    assert len(rendered) > 40
    for protocol, step, channel, text in rendered:
        where = f"{protocol.slug}/{step.key}/{channel}"
        assert "{{" not in text, where
        if channel.startswith("reply:unmatched") or step.template.startswith(STAFF):
            continue  # no booking, no language: the English answer (test_replies)
        assert not ENGLISH.search(text.replace("Demo Clinic", "")), f"{where}: {text}"
        if channel.startswith(SMS) or channel.startswith("reply:"):
            assert not FORBIDDEN_IN_SMS.search(text), f"{where}: {text}"
            assert not FORBIDDEN_IN_SPANISH_SMS.search(text), f"{where}: {text}"
            assert set(text) <= GSM_7, f"{where} has {set(text) - GSM_7}: it would be sent as UCS-2"
        if channel.startswith(SMS):
            assert text.endswith("Responda STOP para darse de baja."), where
            assert "Demo Clinic" in text, where
        if channel.startswith(EMAIL):
            assert text.startswith("Subject: "), where
            assert "Hola, Alex:" in text, where


def test_spanish_dates_and_words(runtime: Runtime) -> None:
    texts = {(p.slug, s.key, c): t for p, s, c, t in preview_all(runtime, language="es")}
    sms = texts[("video-consultation", "confirmation", "sms/video")]
    # 14:00 UTC on Tuesday 10 March 2026: 10:00 in New York, the patient is in London (2 PM there).
    assert sms.startswith(
        "Demo Clinic: su videoconsulta queda reservada para el 10 de marzo, 2:00 p. m. GMT."
    )
    email = texts[("video-consultation", "confirmation", "email/video")]
    assert email.startswith("Subject: Su videoconsulta del 10 de marzo, 2:00 p. m. GMT está confirmada\n")
    assert "Cuándo: martes 10 de marzo, 2:00 p. m. GMT (60 minutos)" in email
    infusion = texts[("infusion-session", "confirmation", "sms/in_person")]
    # An in-clinic visit in the clinic's time, the patient's own as a note.
    assert "10 de marzo, 10:00 a. m. EDT (su hora: 2:00 p. m. GMT)" in infusion
    course = texts[("infusion-session", "confirmation", "sms/course-session")]
    assert "su cita 3 de 6 queda reservada" in course
    checklist = texts[("infusion-session", "confirmation", "attachment:preparation-checklist.txt/in_person")]
    assert "Llegue 15 minutos antes, a las 9:45 a. m. EDT." in checklist
