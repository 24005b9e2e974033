"""Reminder protocols as data: the shipped ones load and render, bad ones are refused with the reason."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from services.notify.config import PROTOCOLS_DIR
from services.notify.models import EMAIL, SMS
from services.notify.preview import preview, preview_all
from services.notify.protocols import CLINIC, ProtocolBook, parse_duration
from services.notify.runtime import Runtime
from shared.config import ConfigError

# Words an SMS must never carry: a lock screen is not private. (The demo clinic's full name is one of them.)
FORBIDDEN_IN_SMS = re.compile(
    r"ketamine|infusion|depress|anxiety|ptsd|pain|mood|therap|treatment|medic|drug|alcohol|diagnos|"
    r"psychiat|consultation",
    re.IGNORECASE,
)


# GSM 03.38's basic character set: an SMS in anything else is sent as UCS-2, 70 characters a segment.
GSM_7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)


def test_the_demo_clinic_protocols_ship() -> None:
    book = ProtocolBook(PROTOCOLS_DIR)
    assert {"video-consultation", "infusion-session", "follow-up", "default"} <= set(book.protocols)
    video = book.get("video-consultation")
    assert [s.key for s in video.steps] == [
        "confirmation",
        "reminder-24h",
        "join-1h",
        "rescheduled",
        "cancelled",
    ]
    join = video.step("join-1h")
    assert join is not None
    assert (join.offset, join.urgent, join.always, join.join_link, join.until) == (
        timedelta(hours=-1),
        True,
        True,
        True,
        "end",
    )
    infusion = book.get("infusion-session")
    offsets = {s.key: (s.on, s.offset) for s in infusion.steps}
    assert offsets["prep-72h"] == ("start", timedelta(hours=-72))
    assert offsets["prep-24h"] == ("start", timedelta(hours=-24))
    assert offsets["arrival-2h"] == ("start", timedelta(hours=-2))
    assert offsets["after-24h"] == ("end", timedelta(hours=24))
    assert book.sms_name("demo-clinic", "Demo Ketamine Clinic") == "Demo Clinic"
    assert book.sms_name("other", "Other Clinic") == "Other Clinic"


def test_every_step_renders_and_no_sms_names_a_treatment(runtime: Runtime) -> None:
    rendered = list(preview_all(runtime))
    assert len(rendered) > 40
    for protocol, step, channel, text in rendered:
        where = f"{protocol.slug}/{step.key}/{channel}"
        assert "{{" not in text, where
        if channel.startswith(SMS):
            assert not FORBIDDEN_IN_SMS.search(text), f"{where}: {text}"
            assert text.endswith("Reply STOP to opt out."), where
            assert "Demo Clinic" in text, where
            assert len(text) <= 306, f"{where} is {len(text)} characters, over two SMS segments"
            assert set(text) <= GSM_7, f"{where} has {set(text) - GSM_7}"
        if channel.startswith(EMAIL):
            assert text.startswith("Subject: "), where
            assert "Hello Alex," in text or step.to == CLINIC, where  # staff alerts greet no one


def test_the_preparation_checklist_and_the_join_link(runtime: Runtime) -> None:
    infusion = runtime.book.get("infusion-session")
    confirmation = infusion.step("confirmation")
    assert confirmation is not None
    out = preview(runtime, infusion, confirmation, "in_person")
    checklist = out["attachment:preparation-checklist.txt"]
    for item in ("medication", "no alcohol", "water", "comfortable", "drive you home"):
        assert item in checklist
    assert "Arrive 15 minutes early, at 9:45 AM EDT." in checklist  # the clinic's time
    video = runtime.book.get("video-consultation")
    join = video.step("join-1h")
    assert join is not None
    assert "Join here: http://127.0.0.1:8003/join/sample-token" in preview(runtime, video, join, "video")[SMS]


def test_a_course_session_says_which_session_it_is(runtime: Runtime) -> None:
    # "session 3 of 6" names no treatment, so it may go by SMS; a session after the course is a booster.
    from services.notify.preview import SAMPLE_COURSE

    infusion = runtime.book.get("infusion-session")
    for key in ("confirmation", "prep-72h", "prep-24h"):
        step = infusion.step(key)
        assert step is not None
        out = preview(runtime, infusion, step, "in_person", SAMPLE_COURSE)
        assert "your session 3 of 6 is" in out[SMS], key
        assert "session 3 of 6" not in preview(runtime, infusion, step, "in_person")[SMS], key
    confirmation = infusion.step("confirmation")
    assert confirmation is not None
    booster = preview(runtime, infusion, confirmation, "in_person", {**SAMPLE_COURSE, "index": 7})
    assert "your booster session is" in booster[SMS]
    assert "session 3 of 6" in preview(runtime, infusion, confirmation, "in_person", SAMPLE_COURSE)[EMAIL]


def test_html_is_escaped(runtime: Runtime) -> None:
    from services.notify.preview import sample_snapshot
    from services.notify.rendering import MessageContext

    protocol = runtime.book.get("default")
    step = protocol.step("confirmation")
    assert step is not None
    snap = sample_snapshot(mode="video", protocol="default")
    snap["provider"]["name"] = "<script>alert(1)</script>"
    context = runtime.renderer.context(
        protocol=protocol,
        step=step,
        message=MessageContext(snapshot=snap, manage_url="https://x.test/m/t"),
        sms_name="C",
    )
    email = runtime.renderer.email(step, context)
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "<script>alert(1)</script>" in email.text  # plain text is not HTML


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.replace('slug = "follow-up"', 'slug = "other"'), "slug must be 'follow-up'"),
        (lambda s: s.replace('offset = "-24h"', 'offset = "yesterday"'), "reminder-24h.offset"),
        (lambda s: s.replace('on = "start"', 'on = "lunch"', 1), "reminder-24h.on: must be one of"),
        (
            lambda s: s.replace('channels = ["sms", "email"]', 'channels = ["fax"]', 1),
            "confirmation.channels",
        ),
        (
            lambda s: s.replace("urgent = true", "urgent = true\ncolour = 'red'", 1),
            r"confirmation.colour: Unknown field",
        ),
        (lambda s: s.replace("version = 2", "version = 0"), "version must be a positive integer"),
        (
            lambda s: s.replace('subject = "Your video appointment on {{ when }} is confirmed"\n', ""),
            "needs a subject",
        ),
        (lambda s: s.replace('key = "reminder-24h"', 'key = "confirmation"'), "step keys must be unique"),
        (
            lambda s: s.replace("urgent = true", "urgent = true\nsafety_check = true", 1),
            "confirmation.safety_check: true needs a reminder timed from the start",
        ),
        (
            lambda s: s.replace("urgent = true", 'urgent = true\nescort = "missing"', 1),
            "confirmation.escort: a step for a missing escort goes to the patient or the clinic at a time",
        ),
        (lambda s: s + "\n[[steps", "follow-up.toml"),
    ],
)
def test_a_broken_protocol_is_refused_with_its_reason(tmp_path: Path, change: object, message: str) -> None:
    folder = tmp_path / "protocols"
    shutil.copytree(PROTOCOLS_DIR, folder)
    path = folder / "follow-up.toml"
    path.write_text(change(path.read_text()))  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        ProtocolBook(folder)


def test_a_folder_without_a_default_protocol_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "protocols"
    shutil.copytree(PROTOCOLS_DIR, folder)
    (folder / "default.toml").unlink()
    with pytest.raises(ConfigError, match=r"needs default\.toml"):
        ProtocolBook(folder)


@pytest.mark.parametrize(
    ("raw", "delta"),
    [("-72h", timedelta(hours=-72)), ("30m", timedelta(minutes=30)), ("+1d", timedelta(days=1))],
)
def test_durations(raw: str, delta: timedelta) -> None:
    assert parse_duration(raw) == delta
