"""Messages say what is true when they are read (issue 17): the visit's zone, the join link's timing, whether
the visit can still be changed online, and a cancelled provider entry that promises no link."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import time_machine

from services.notify.calendar.entry import location
from services.notify.models import EMAIL, SMS, BookingCopy
from services.notify.preview import SAMPLE_START, sample_snapshot
from services.notify.rendering import MessageContext
from services.notify.runtime import Runtime


def _render(runtime: Runtime, protocol: str, step: str, snap: dict[str, Any]) -> dict[str, str]:
    book = runtime.book.get(protocol)
    chosen = book.step(step)
    assert chosen is not None
    context = runtime.renderer.context(
        protocol=book,
        step=chosen,
        message=MessageContext(snapshot=snap, manage_url="https://b.test/m/tok"),
        sms_name="Demo Clinic",
    )
    email = runtime.renderer.email(chosen, context)
    return {SMS: runtime.renderer.sms(chosen, context), EMAIL: email.text, "subject": email.subject}


def test_an_in_clinic_visit_is_told_in_the_clinics_time_with_the_patients_as_a_note(runtime: Runtime) -> None:
    snap = sample_snapshot(mode="in_person", protocol="infusion-session")
    snap["patient"]["time_zone"] = "America/Los_Angeles"
    with time_machine.travel(SAMPLE_START - timedelta(days=7), tick=False):
        out = _render(runtime, "infusion-session", "confirmation", snap)
    # 14:00 UTC is 10:00 AM in Brooklyn (EDT from 8 March), 7:00 AM in Los Angeles.
    assert "Tue 10 Mar 2026, 10:00 AM EDT (7:00 AM PDT your time)" in out[SMS]
    assert "Tue 10 Mar 2026, 10:00 AM EDT (7:00 AM PDT your time)" in out[EMAIL]
    assert "10:00 AM EDT" in out["subject"]


def test_a_video_visit_is_told_in_the_patients_time_without_a_note(runtime: Runtime) -> None:
    snap = sample_snapshot(mode="video", protocol="video-consultation")
    with time_machine.travel(SAMPLE_START - timedelta(days=7), tick=False):
        out = _render(runtime, "video-consultation", "confirmation", snap)
    assert "Tue 10 Mar 2026, 2:00 PM GMT." in out[SMS]
    assert "your time" not in out[SMS]
    assert "We'll text your link to join 1 hour before." in out[SMS]


def test_a_visit_booked_within_the_hour_is_told_its_link_comes_now(runtime: Runtime) -> None:
    snap = sample_snapshot(mode="video", protocol="video-consultation")
    with time_machine.travel(SAMPLE_START - timedelta(minutes=31), tick=False):
        out = _render(runtime, "video-consultation", "confirmation", snap)
    assert "Your link to join follows in a moment." in out[SMS]
    assert "1 hour before" not in out[SMS]
    assert "follows in a moment, by text message and email" in out[EMAIL]
    assert "one hour before" not in out[EMAIL]


def test_change_or_cancel_is_offered_only_before_the_cutoff(runtime: Runtime) -> None:
    snap = sample_snapshot(mode="in_person", protocol="infusion-session")
    snap["appointment_type"]["change_cutoff_hours"] = 48
    with time_machine.travel(SAMPLE_START - timedelta(hours=72), tick=False):
        early = _render(runtime, "infusion-session", "prep-72h", snap)
    with time_machine.travel(SAMPLE_START - timedelta(hours=24), tick=False):
        late = _render(runtime, "infusion-session", "prep-24h", snap)
    assert "Change or cancel: https://b.test/m/tok" in early[SMS]
    assert "To see, move or cancel this appointment: https://b.test/m/tok" in early[EMAIL]
    assert "Change or cancel" not in late[SMS]
    assert "Details: https://b.test/m/tok" in late[SMS]
    assert "move or cancel" not in late[EMAIL]
    assert "To see this appointment: https://b.test/m/tok" in late[EMAIL]


def test_a_cancelled_video_entry_promises_no_link() -> None:
    snap = sample_snapshot(mode="video", protocol="video-consultation")
    confirmed = BookingCopy(snapshot=snap, status="confirmed")
    cancelled = BookingCopy(snapshot=snap, status="cancelled")
    assert location(confirmed, None) == "Video call: the join link follows in an updated invitation"
    assert location(cancelled, None) == "Video call (cancelled: no link will follow)"
