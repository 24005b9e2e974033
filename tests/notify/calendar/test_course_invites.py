"""Whole-course changes reach each provider as ONE email carrying an iTIP calendar per session (its own UID, a
SEQUENCE above its last invite), whatever order the course event and its sessions' events arrive in; the
sessions' own invites are skipped with a reason, and the provider's calendar and feed end at the true state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
import time_machine
from flask import Flask
from icalendar import Calendar

from services.notify.calendar.planning import COVERED_BY_COURSE_INVITE
from services.notify.models import COURSE_INVITE, INVITE, SENT, SKIPPED
from shared import events
from tests.notify.calendar.support import (
    PROVIDER_EMAIL,
    Invite,
    course_calendars,
    emails,
    invite_rows,
)
from tests.notify.conftest import MONDAY_NOON, STAFF, deliver, tick
from tests.notify.factories import Booking, course_change, course_sessions

FIRST = MONDAY_NOON + timedelta(days=1, hours=3)  # Tuesday 3 March, 10:00 in New York
LATER = MONDAY_NOON + timedelta(hours=2)
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
