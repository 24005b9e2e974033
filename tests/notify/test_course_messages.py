"""One message for a whole course: one confirmation listing every session, one notice per whole-course change,
whatever order the course event and its sessions' events arrive in, however often, and on several workers."""

from __future__ import annotations

import random
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask

from services.notify.models import CANCELLED, PLANNED, SENT, SKIPPED, CourseNotice
from services.notify.senders.smtp_email import SmtpEmailSender
from shared import events, links
from tests.booking.factories import PATIENT, make_chair_setup
from tests.notify.conftest import (
    MONDAY_NOON,
    STAFF,
    Upstream,
    deliver,
    messages,
    outbox,
    tick,
    twilio_sender,
    use_senders,
    work,
)
from tests.notify.doubles import mail_server
from tests.notify.factories import Booking, course_change, course_sessions
from tests.support.twilio_mock import PrismServer

FIRST = MONDAY_NOON + timedelta(days=1, hours=3)  # Tuesday 3 March, 10:00 in New York
COVERED = "covered by the course's one message"


def _booked(app: Flask, order: list[int] | None = None) -> tuple[list[Booking], dict[str, Any]]:
    """Book a six-session course; deliver its seven events in ``order`` (6 = the course event)."""
    sessions = course_sessions(FIRST)
    course, own = course_change(sessions, events.COURSE_BOOKED, at=MONDAY_NOON)
    payloads = [*own, course]
    for n in order or range(7):
        deliver(app, payloads[n])
    return sessions, course


def _course_link(app: Flask, text: str, course_id: str) -> None:
    """``text`` leads to the course's page: its short link by SMS, its full link by email (issue 18)."""
    signer = app.extensions["link_signer"]
    if short := re.search(r"/c/([A-Za-z0-9_-]+)", text):
        claims = links.verify_short(signer.keys, short.group(1), purpose=links.COURSE)
    else:
        full = re.search(r"/course/([A-Za-z0-9_.-]+)", text)
        assert full, text
        claims = signer.verify(full.group(1), purpose=links.COURSE)
    assert claims.subject == course_id


def _sent(app: Flask, step: str) -> list[Any]:
    return [m for m in messages(app, step=step) if m.status == SENT]


@pytest.mark.parametrize("order", [[6, 0, 1, 2, 3, 4, 5], [0, 1, 2, 6, 3, 4, 5], [5, 4, 3, 2, 1, 0, 6]])
def test_one_confirmation_lists_every_session_whatever_the_order(
    app: Flask, clock: time_machine.Coordinates, order: list[int]
) -> None:
    sessions, course = _booked(app, order)
    tick(app)
    # One SMS and one email for the course, on the first session's plan; none of the sessions' own.
    (sms,) = outbox(app, "sms")
    (email,) = outbox(app, "email")
    assert {m.channel for m in _sent(app, "course-confirmation")} == {"sms", "email"}
    assert {m.booking_id for m in _sent(app, "course-confirmation")} == {sessions[0].id}
    own = messages(app, step="confirmation")
    assert len(own) == 12
    assert {(m.status, m.reason) for m in own} == {(SKIPPED, COVERED)}
    # Times in the clinic's zone (New York), every session, "session N of 6"; no treatment named by SMS.
    assert "your 6 sessions are booked: Tue 3 Mar 10:00 EST, Thu 5 Mar 10:00 EST" in sms.text
    assert "infusion" not in sms.text.lower()
    for n, booking in enumerate(sessions, start=1):
        local = booking.start.astimezone(ZoneInfo("America/New_York"))
        assert f"Session {n} of 6: {local:%a} {local.day} {local:%b %Y}" in email.text
    assert "preparation-checklist.txt" in {a.filename for a in email.attachments}
    _course_link(app, sms.text, str(course["course_id"]))
    _course_link(app, email.text, str(course["course_id"]))
    # The per-session preparation reminders stay, each session its own.
    prep = messages(app, step="prep-72h", channel="email")
    assert sorted(m.booking_id for m in prep) == sorted(b.id for b in sessions)
    assert {m.status for m in prep} <= {PLANNED, SKIPPED}
    # Redelivered events change nothing and send nothing again.
    assert deliver(app, course) == "duplicate"
    tick(app)
    assert len(outbox(app)) == 2


def test_a_cancelled_course_gets_one_notice(app: Flask, clock: time_machine.Coordinates) -> None:
    sessions, _ = _booked(app)
    tick(app)
    clock.move_to(MONDAY_NOON + timedelta(hours=2))
    notice, own = course_change(sessions[2:], events.COURSE_CANCELLED, at=MONDAY_NOON + timedelta(hours=2))
    for payload in [notice, *own[::-1]]:
        deliver(app, payload)
    tick(app)
    assert len(_sent(app, "course-cancelled")) == 2  # one SMS, one email
    assert {(m.status, m.reason) for m in messages(app, step="cancelled")} == {(SKIPPED, COVERED)}
    sms = outbox(app, "sms")[-1]
    assert sms.text.startswith("Demo Clinic: these 4 sessions are cancelled: Sat 7 Mar 10:00 EST")
    email = outbox(app, "email")[-1]
    assert "Session 3 of 6" in email.text
    assert "Session 6 of 6" in email.text
    assert "Session 2 of 6" not in email.text
    assert "by the clinic" in email.text
    _course_link(app, sms.text, str(notice["course_id"]))
    _course_link(app, email.text, str(notice["course_id"]))
    # The cancelled sessions' reminders are stopped; the first two keep theirs.
    for booking in sessions:
        prep = messages(app, booking_id=booking.id, step="prep-24h", channel="email")
        stopped = booking.status == "cancelled"
        assert all((m.status == CANCELLED) == stopped for m in prep if m.booking_version == 1)
    assert len(outbox(app)) == 4


def test_this_and_following_moved_get_one_notice(app: Flask, clock: time_machine.Coordinates) -> None:
    sessions, _ = _booked(app)
    tick(app)
    notice, own = course_change(
        sessions[3:], events.COURSE_RESCHEDULED, at=MONDAY_NOON, shift=timedelta(days=1, hours=2)
    )
    for payload in [*own, notice]:
        deliver(app, payload)
    tick(app)
    assert len(_sent(app, "course-rescheduled")) == 2
    assert {(m.status, m.reason) for m in messages(app, step="rescheduled")} == {(SKIPPED, COVERED)}
    email = outbox(app, "email")[-1]
    assert "3 of your sessions have moved" in email.subject
    assert "Session 4 of 6: Tue 10 Mar 2026, 1:00 PM EDT (was Mon 9 Mar 2026, 11:00 AM EDT)" in email.text
    # Each moved session's reminders follow it to its new time.
    moved = messages(app, booking_id=sessions[5].id, step="prep-24h", channel="email", booking_version=2)
    assert [m.due_at for m in moved] == [sessions[5].start - timedelta(hours=24)]


def test_a_session_moved_alone_before_the_confirmation_went_is_listed_at_its_new_time(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    # The confirmation is rendered when it goes, from the sessions as they are then; moving the first session
    # (the one its rows hang on) does not cancel it.
    sessions = course_sessions(FIRST)
    course, own = course_change(sessions, events.COURSE_BOOKED, at=MONDAY_NOON)
    for payload in own:
        deliver(app, payload)
    deliver(app, sessions[0].reschedule(FIRST + timedelta(hours=4), at=MONDAY_NOON))
    deliver(app, course)
    tick(app)
    (email,) = [m for m in outbox(app, "email") if "sessions are confirmed" in m.subject]
    assert "Session 1 of 6: Tue 3 Mar 2026, 2:00 PM EST" in email.text
    # That session's own move is told by its own notice, as for any booking.
    assert len(_sent(app, "rescheduled")) == 2


def test_many_workers_plan_the_course_message_once(
    make_app: Any, clock: time_machine.Coordinates, backend: str
) -> None:
    # Seven events of one course handled at the same moment by separate threads (separate connections and
    # transactions), shuffled, with duplicates: exactly one confirmation planned, no deadlock, nothing lost.
    app = make_app()
    rng = random.Random(18)
    for _ in range(4):
        sessions = course_sessions(FIRST)
        course, own = course_change(sessions, events.COURSE_BOOKED, at=MONDAY_NOON)
        payloads = [*own, course, course, own[-1]]
        rng.shuffle(payloads)
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(lambda p: deliver(app, p), payloads))
        assert outcomes.count("duplicate") == 2
        rows = messages(app, step="course-confirmation", booking_id=sessions[0].id)
        assert sorted(m.channel for m in rows) == ["email", "sms"]
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        notices = session.query(CourseNotice).all()
        assert len(notices) == 4
        assert all(n.planned_at is not None for n in notices)


@pytest.mark.slow
def test_course_booked_and_stopped_end_to_end(
    backend: str,
    make_app: Any,
    upstream: Upstream,
    twilio_api_mock: PrismServer,
    tmp_path: Path,
) -> None:
    # The booking API books a whole course and stops it; the outbox relay, Redis and a notify worker carry
    # the events; Twilio (Prism) gets one SMS and SMTP (aiosmtpd) one email for each whole-course change.
    notify = make_app()
    staff = upstream.staff
    with time_machine.travel(MONDAY_NOON, tick=True), mail_server(tmp_path) as mail:
        smtp = SmtpEmailSender(host=mail.host, port=mail.port, security="none", timeout=5)
        sms = twilio_sender(base_url=twilio_api_mock.url)
        use_senders(notify, sms=sms, email=smtp)
        setup = make_chair_setup(upstream.app, providers=1, chairs=1)
        template = staff.post(
            "/api/v1/course-templates",
            json={
                "clinic_id": setup.clinic_id,
                "slug": "induction",
                "name": "Induction",
                "session_type_id": setup.type_id,
                "sessions": 6,
                "min_hours_between": 24,
                "max_per_week": 3,
                "within_days": 16,
                "same_provider": "required",
            },
            headers=STAFF,
        ).json
        plan = staff.post(
            "/api/v1/courses/plan",
            json={"template_id": template["id"], "start": "2026-03-03T10:00:00-05:00"},
            headers=STAFF,
        ).json
        booked = staff.post(
            "/api/v1/courses",
            json={
                "template_id": template["id"],
                "sessions": [
                    {"start": s["start"], "provider_id": s["provider_id"]} for s in plan["sessions"]
                ],
                "patient": PATIENT,
            },
            headers=STAFF,
        )
        assert booked.status_code == 201, booked.json
        course = booked.json
        assert upstream.relay() == 7  # six sessions and the course
        work(notify)
        sent = [m for m in messages(notify) if m.status == SENT]
        assert sorted((m.step, m.channel) for m in sent) == [
            ("course-confirmation", "email"),
            ("course-confirmation", "sms"),
        ]
        (confirmation,) = mail.handler.messages
        text = confirmation.get_body(preferencelist=("plain",)).get_content()
        assert "Session 1 of 6: Tue 3 Mar 2026, 10:00 AM EST" in text  # the clinic's zone
        assert "Session 4 of 6: Mon 9 Mar 2026, 9:00 AM EDT" in text  # after the clocks changed

        stopped = staff.post(
            f"/api/v1/courses/{course['id']}/cancel", json={"reason": "feels better"}, headers=STAFF
        )
        assert stopped.status_code == 200, stopped.json
        assert upstream.relay() == 7
        work(notify)
        notices = [m for m in messages(notify, step="course-cancelled") if m.status == SENT]
        assert sorted(m.channel for m in notices) == ["email", "sms"]
        assert len(mail.handler.messages) == 2
        assert "These 6 sessions with" in mail.handler.messages[-1].get_body(("plain",)).get_content()
        # Every session's own confirmation and cancellation was covered, never sent.
        own = [m for m in messages(notify) if m.step in ("confirmation", "cancelled")]
        assert len(own) == 24
        assert {m.status for m in own} == {SKIPPED}
        smtp.close()
        sms.close()
