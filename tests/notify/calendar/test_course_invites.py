"""Whole-course changes reach each provider as ONE email carrying an iTIP calendar per session (its own UID, a
SEQUENCE above its last invite), whatever order the course event and its sessions' events arrive in; the
sessions' own invites are skipped with a reason, and the provider's calendar and feed end at the true state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from icalendar import Calendar

from services.notify.calendar.planning import COVERED_BY_COURSE_INVITE
from services.notify.models import COURSE_INVITE, INVITE, SENDING, SENT, SKIPPED
from services.notify.senders.smtp_email import SmtpEmailSender
from shared import events
from shared.timeutil import utcnow
from tests.booking.factories import PATIENT, make_chair_setup
from tests.notify.calendar.support import (
    PROVIDER_EMAIL,
    Invite,
    course_calendars,
    emails,
    invite_rows,
)
from tests.notify.conftest import (
    MONDAY_NOON,
    STAFF,
    Upstream,
    deliver,
    dispatch,
    messages,
    tick,
    use_senders,
    work,
)
from tests.notify.doubles import MailServer, mail_server
from tests.notify.factories import Booking, course_change, course_sessions

FIRST = MONDAY_NOON + timedelta(days=1, hours=3)  # Tuesday 3 March, 10:00 in New York
LATER = MONDAY_NOON + timedelta(hours=2)
ROOT = Path(__file__).resolve().parents[3]
OTHER = events.ProviderRef(id=2, name="Dr. Sam Okafor", email="sam@example.com", time_zone="America/Chicago")


@dataclass
class Entry:
    sequence: int
    method: str
    start: datetime


class CalendarApp:
    """A provider's calendar app: applies every calendar of an email; a higher SEQUENCE replaces the entry."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def receive(self, message: EmailMessage) -> list[Invite]:
        calendars = course_calendars(message)
        for invite in calendars:
            current = self.entries.get(invite.uid)
            if current is None or invite.sequence > current.sequence:
                self.entries[invite.uid] = Entry(invite.sequence, invite.method, invite.event.start)
        return calendars


def uid(booking: Booking) -> str:
    return f"booking-{booking.id}@booking.example.test"


def _send(app: Flask, payloads: list[dict[str, object]]) -> None:
    for payload in payloads:
        deliver(app, payload)
    tick(app)


def _book(app: Flask, sessions: list[Booking]) -> None:
    course, own = course_change(sessions, events.COURSE_BOOKED, at=MONDAY_NOON)
    _send(app, [*own, course])


@pytest.mark.parametrize("course_at", [0, 2, 4])
def test_a_cancelled_course_sends_the_provider_one_email_with_a_cancel_per_session(
    invite_app: Flask, clock: time_machine.Coordinates, course_at: int
) -> None:
    sessions = course_sessions(FIRST)
    _book(invite_app, sessions)
    # The booking: one invitation, six REQUESTs, each session its own UID at SEQUENCE 0.
    (booked,) = emails(invite_app, PROVIDER_EMAIL)
    requests = course_calendars(booked)
    assert [(c.uid, c.method, c.sequence) for c in requests] == [(uid(b), "REQUEST", 0) for b in sessions]
    assert booked["Subject"].startswith("Invitation: 6 sessions, In-clinic appointment: Alex D., from ")

    clock.move_to(LATER)
    notice, own = course_change(sessions[2:], events.COURSE_CANCELLED, at=LATER)
    own.insert(course_at, notice)  # the course event first, in the middle, or last
    _send(invite_app, own)
    mails = emails(invite_app, PROVIDER_EMAIL)
    assert len(mails) == 2  # one email for four sessions
    cancels = course_calendars(mails[-1])
    assert [(c.uid, c.method, c.sequence) for c in cancels] == [(uid(b), "CANCEL", 1) for b in sessions[2:]]
    assert all(str(c.event["STATUS"]) == "CANCELLED" for c in cancels)
    before = {r.uid: r for r in requests}
    assert all(c.event.start == before[c.uid].event.start for c in cancels)  # the same entries
    assert mails[-1]["Subject"].startswith("Cancelled: 4 sessions, ")
    text = mails[-1].get_body(preferencelist=("plain",)).get_content()
    assert "Session 3 of 6" in text
    assert "Session 2 of 6" not in text
    assert "alex@example.com" not in text

    # Each session's own CANCEL was recorded as covered, not sent; the course's went once.
    own_rows = [r for r in invite_rows(invite_app) if r.step == INVITE and r.booking_version == 2]
    assert {(r.status, r.reason) for r in own_rows} == {(SKIPPED, COVERED_BY_COURSE_INVITE)}
    course_rows = [r for r in invite_rows(invite_app) if r.step == COURSE_INVITE]
    assert [(r.status, r.sequence) for r in course_rows] == [(SENT, 0), (SENT, 1)]
    # Redelivered events change nothing and send nothing again.
    assert deliver(invite_app, notice) == "duplicate"
    tick(invite_app)
    assert len(emails(invite_app, PROVIDER_EMAIL)) == 2


def test_each_provider_gets_one_email_with_only_their_sessions(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    sessions = course_sessions(FIRST)
    for booking in sessions[1::2]:
        booking.provider = OTHER
    _book(invite_app, sessions)
    notice, own = course_change(sessions, events.COURSE_CANCELLED, at=MONDAY_NOON)
    _send(invite_app, [notice, *own[::-1]])
    for email, mine in ((PROVIDER_EMAIL, sessions[0::2]), (OTHER.email, sessions[1::2])):
        booked, cancelled = emails(invite_app, email)
        assert [(c.uid, c.sequence) for c in course_calendars(booked)] == [(uid(b), 0) for b in mine]
        assert [(c.uid, c.method, c.sequence) for c in course_calendars(cancelled)] == [
            (uid(b), "CANCEL", 1) for b in mine
        ]
        # The provider's own zone in their entries.
        assert f"TZID={mine[0].provider.time_zone}".encode() in course_calendars(booked)[0].raw


def test_this_and_following_moved_is_one_email_with_a_request_per_moved_session(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    sessions = course_sessions(FIRST)
    _book(invite_app, sessions)
    # Session 5 moved alone first: its own updated invite (SEQUENCE 1), as for any booking.
    _send(invite_app, [sessions[4].reschedule(sessions[4].start + timedelta(hours=1), at=MONDAY_NOON)])
    notice, own = course_change(
        sessions[3:], events.COURSE_RESCHEDULED, at=MONDAY_NOON, shift=timedelta(days=1, hours=2)
    )
    _send(invite_app, [*own, notice])
    mails = emails(invite_app, PROVIDER_EMAIL)
    assert len(mails) == 3
    moved = course_calendars(mails[-1])
    assert [(c.uid, c.method, c.sequence) for c in moved] == [
        (uid(sessions[3]), "REQUEST", 1),
        (uid(sessions[4]), "REQUEST", 2),
        (uid(sessions[5]), "REQUEST", 1),
    ]
    assert [c.event.start for c in moved] == [b.start for b in sessions[3:]]
    assert mails[-1]["Subject"].startswith("Updated invitation: 3 sessions, ")


def test_any_mix_of_changes_ends_at_the_true_state_in_the_calendar_and_the_feed(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    sessions = course_sessions(FIRST)
    app = CalendarApp()
    _book(invite_app, sessions)
    s1, s2, s3, s4, s5, s6 = sessions
    _send(invite_app, [s2.cancel(at=MONDAY_NOON, by="patient")])
    _send(invite_app, [s3.reschedule(s3.start + timedelta(hours=3), at=MONDAY_NOON)])
    notice, own = course_change(
        [s4, s5, s6], events.COURSE_RESCHEDULED, at=MONDAY_NOON, shift=timedelta(hours=1)
    )
    _send(invite_app, [notice, *own])
    # The course stopped from session 5, its events late and out of order, one of them twice.
    notice, own = course_change([s5, s6], events.COURSE_CANCELLED, at=MONDAY_NOON)
    _send(invite_app, [own[1], notice, own[0], own[1]])
    mails = emails(invite_app, PROVIDER_EMAIL)
    assert len(mails) == 5  # booked, s2, s3, 4-6 moved, 5-6 cancelled
    for mail in mails:
        app.receive(mail)
    truth = {uid(b): ("CANCEL" if b.status == "cancelled" else "REQUEST", b.start) for b in sessions}
    assert {u: (e.method, e.start) for u, e in app.entries.items()} == truth
    # The feed says the same, with the SEQUENCE each entry reached.
    client = invite_app.test_client()
    link = client.get(f"/api/v1/providers/{s1.provider.id}/calendar-feed", headers=STAFF).json
    feed = Calendar.from_ical(client.get(link["url"].removeprefix("https://notify.example.test")).data)
    shown = {str(e["UID"]): (str(e["STATUS"]), e.start, int(e["SEQUENCE"])) for e in feed.events}
    assert shown == {
        u: ("CANCELLED" if m == "CANCEL" else "CONFIRMED", start, app.entries[u].sequence)
        for u, (m, start) in truth.items()
    }


def test_a_cancel_for_sessions_never_invited_sends_nothing(
    make_invite_app: Callable[..., Flask], clock: time_machine.Coordinates
) -> None:
    # Booked and stopped before any invite went: nothing to remove, nothing sent, the reason recorded.
    app = make_invite_app()
    sessions = course_sessions(FIRST)
    course, own = course_change(sessions, events.COURSE_BOOKED, at=MONDAY_NOON)
    stop, stopped = course_change(sessions, events.COURSE_CANCELLED, at=MONDAY_NOON)
    _send(app, [*own, course, *stopped, stop])
    assert emails(app, PROVIDER_EMAIL) == []
    rows = [r for r in invite_rows(app) if r.step == COURSE_INVITE]
    # The booking's invitation is rendered when claimed, from the sessions as they are by then: cancelled.
    assert [r.status for r in rows] == [SKIPPED, SKIPPED]
    assert all("nothing to cancel" in r.reason for r in rows)


def _structure(message: EmailMessage) -> list[tuple[str, str | None, str | None]]:
    """(content type, filename, method) of every leaf MIME part, in order."""
    return [
        (p.get_content_type(), p.get_filename(), p.get_param("method"))  # type: ignore[misc]
        for p in message.walk()
        if not p.is_multipart()
    ]


def _worker_env(app: Flask, mail: MailServer) -> dict[str, str]:
    config = app.extensions["notify"].config
    return {
        **os.environ,
        "NOTIFY_DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "NOTIFY_EMAIL_BACKEND": "smtp",
        "SMTP_HOST": mail.host,
        "SMTP_PORT": str(mail.port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "Demo Clinic <desk@clinic.example>",
        "NOTIFY_PROVIDER_INVITES": "true",
        "NOTIFY_QUIET_HOURS": "",
        "NOTIFY_SENDING_STALE_SECONDS": "70",
        "SMTP_TIMEOUT_SECONDS": "2",
        "TWILIO_TIMEOUT_SECONDS": "2",
        "NOTIFY_PUBLIC_URL": config.notify_public_url,
        "BOOKING_PUBLIC_URL": config.booking_public_url,
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
        "SUITE_KILL_AT": "send.claimed",  # shared/killpoints.py: SIGKILL once a send is claimed and committed
    }


@pytest.mark.slow
def test_a_worker_killed_after_claiming_the_course_cancel_loses_and_doubles_nothing(
    make_invite_app: Callable[..., Flask], tmp_path: Path
) -> None:
    # Real SMTP (aiosmtpd) and a real `flask worker` process that SIGKILLs itself right after the claim that
    # gave the four sessions their CANCEL SEQUENCE committed, before anything reached the SMTP server.
    with mail_server(tmp_path) as mail:
        app = make_invite_app(
            email_backend="smtp",
            smtp_host=mail.host,
            smtp_port=mail.port,
            smtp_security="none",
            quiet_hours_raw="",
            sending_stale_seconds=70,
            smtp_timeout_seconds=2.0,
            twilio_timeout_seconds=2.0,
        )
        now = utcnow()  # the worker process runs on the real clock
        sessions = course_sessions(now + timedelta(days=3))
        course, own = course_change(sessions, events.COURSE_BOOKED, at=now)
        for payload in [*own, course]:
            deliver(app, payload)
        work(app)
        (booked,) = [m for m in mail.handler.messages if m["To"] == PROVIDER_EMAIL]

        notice, own = course_change(sessions[2:], events.COURSE_CANCELLED, at=now)
        for payload in [notice, *own]:
            deliver(app, payload)  # queues the patient's notice and the provider's invite in Redis
        invite = None
        for _ in range(4):  # one send job per run: the patient's may come first
            worker = subprocess.Popen(
                [str(Path(sys.executable).parent / "flask"), "--app", "services.notify", "worker", "--burst"],
                cwd=ROOT,
                env=_worker_env(app, mail),
                start_new_session=True,
            )
            assert worker.wait(timeout=120) in (0, -signal.SIGKILL)
            (invite,) = messages(app, step=COURSE_INVITE, booking_version=2)
            if invite.status == SENDING:
                break
        assert invite is not None
        assert (invite.status, invite.sequence) == (SENDING, 1)  # claimed, never reported
        assert [m for m in mail.handler.messages if m["To"] == PROVIDER_EMAIL] == [booked]

        # After the stale period the dispatcher reconciles it (SMTP cannot say: send again, same Message-ID).
        with time_machine.travel(utcnow() + timedelta(seconds=90), tick=False):
            assert dispatch(app).reconciling >= 1  # and the patient's notice, if a dead run had claimed it
            work(app)
            dispatch(app)
            work(app)
        app.extensions["notify"].senders.email.close()
    to_provider = [m for m in mail.handler.messages if m["To"] == PROVIDER_EMAIL]
    assert len(to_provider) == 2  # one invitation, one cancellation: nothing lost, nothing doubled
    cancelled = to_provider[-1]
    assert cancelled["Message-ID"].startswith(f"<notify-{invite.id}@")
    calendars = course_calendars(cancelled)
    # Each CANCEL names its session's UID with a SEQUENCE above the REQUEST's (1 went to the dead claim).
    requests = {c.uid: c for c in course_calendars(booked)}
    assert [(c.uid, c.method, c.sequence) for c in calendars] == [(uid(b), "CANCEL", 2) for b in sessions[2:]]
    assert all(c.sequence > requests[c.uid].sequence for c in calendars)
    # The layout (caught by the SMTP server): the first session as the invite it always was, each other
    # session its own text/calendar part, every part's method parameter agreeing with its METHOD line.
    assert _structure(cancelled) == [
        ("text/plain", None, None),
        ("text/html", None, None),
        ("text/calendar", None, "CANCEL"),
        ("application/ics", "invite.ics", None),
        *[("text/calendar", f"session-{n}.ics", "CANCEL") for n in (4, 5, 6)],
    ]
    (row,) = messages(app, step=COURSE_INVITE, booking_version=2)
    assert (row.status, row.sequence, row.attempts) == (SENT, 2, 2)
    # The patient's one notice went too, once.
    assert [m.status for m in messages(app, step="course-cancelled", channel="email")] == [SENT]
    assert len([m for m in mail.handler.messages if m["To"] == "alex@example.com"]) == 2


@pytest.mark.slow
def test_course_booked_and_stopped_through_the_booking_api_reaches_the_provider_as_two_emails(
    backend: str, make_invite_app: Callable[..., Flask], upstream: Upstream, tmp_path: Path
) -> None:
    # Booking API -> outbox relay -> Redis -> notify worker -> aiosmtpd: six sessions booked then stopped are
    # one invitation and one cancellation to the provider, each carrying all six sessions.
    notify = make_invite_app()
    staff = upstream.staff
    with time_machine.travel(MONDAY_NOON, tick=True), mail_server(tmp_path) as mail:
        smtp = SmtpEmailSender(host=mail.host, port=mail.port, security="none", timeout=5)
        use_senders(notify, email=smtp)
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
        assert upstream.relay() == 7
        work(notify)
        stopped = staff.post(
            f"/api/v1/courses/{booked.json['id']}/cancel", json={"reason": "feels better"}, headers=STAFF
        )
        assert stopped.status_code == 200, stopped.json
        assert upstream.relay() == 7
        work(notify)
        smtp.close()
    provider = {m["To"] for m in mail.handler.messages} - {PATIENT["email"]}
    assert len(provider) == 1
    invitation, cancellation = [m for m in mail.handler.messages if m["To"] in provider]
    requests = course_calendars(invitation)
    cancels = course_calendars(cancellation)
    assert [c.method for c in requests] == ["REQUEST"] * 6
    assert [(c.uid, c.sequence) for c in cancels] == [(r.uid, 1) for r in requests]
    assert {c.method for c in cancels} == {"CANCEL"}
