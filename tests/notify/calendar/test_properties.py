"""Property: whatever the order of creates, reschedules, cancels, redelivered and late events, join links, provider
faults and the passing of time, every invite that reaches the provider has a SEQUENCE no invite of that
booking had before, and a calendar app that applies them as RFC 5546 says ends with each booking as it is."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import pytest
import time_machine
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from services.notify.models import INVITE, SENT, SKIPPED
from services.notify.senders import SendResult
from shared import ical
from tests.notify.calendar.support import PROVIDER_EMAIL, calendar_part, invite_rows
from tests.notify.conftest import MONDAY_NOON, use_senders
from tests.notify.test_properties import CheckingEmail, CheckingSms, World, faults, operations, run


@dataclass
class Entry:
    """What the provider's calendar app holds for one UID."""

    sequence: int
    method: str
    start: datetime
    end: datetime
    location: str


@dataclass
class CalendarApp:
    """A calendar app: an invite with a higher SEQUENCE than the entry's replaces it; a lower one is ignored."""

    entries: dict[str, Entry] = field(default_factory=dict)
    received: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def receive(self, message: EmailMessage) -> None:
        invite = calendar_part(message)
        self.received[invite.uid].append(invite.sequence)
        current = self.entries.get(invite.uid)
        if current is None or invite.sequence > current.sequence:
            self.entries[invite.uid] = Entry(
                sequence=invite.sequence,
                method=invite.method,
                start=invite.event.start,
                end=invite.event.end,
                location=str(invite.event.get("LOCATION", "")),
            )


class ProviderInbox(CheckingEmail):
    """The property test's checking email sender, handing what reaches the provider to a calendar app."""

    def __init__(self, world: World, app: CalendarApp) -> None:
        super().__init__(world)
        self.calendar = app

    def send(self, message: Any, *, key: str) -> SendResult:
        def deliver() -> SendResult:
            result = super(CheckingEmail, self).send(message, key=key)
            if message["To"] == PROVIDER_EMAIL:
                self.calendar.receive(message)
            return result

        return self.world.attempt(key, deliver)


ALREADY_SHOWN = "the provider's calendar already has this"


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations, faults=faults, seed=st.integers(0, 2**16))
def test_every_invite_raises_the_sequence_and_the_calendar_ends_as_the_booking_is(
    make_app: Callable[..., Flask],
    redis_client: Redis,
    ops: list[tuple[Any, ...]],
    faults: list[tuple[bool, str]],
    seed: int,
) -> None:
    redis_client.flushall()
    app = make_app(provider_invites=True)
    world = World(app, faults=list(faults))
    calendar = CalendarApp()
    use_senders(app, sms=CheckingSms(world), email=ProviderInbox(world, calendar))
    try:
        with time_machine.travel(MONDAY_NOON, tick=False) as clock:
            run(world, clock, ops, seed)
        check(app, world, calendar)
    finally:
        app.extensions["db"].dispose()  # each example has its own database: free its connections now


def check(app: Flask, world: World, calendar: CalendarApp) -> None:
    """The property's assertions, after a run."""
    assert world.violations == []

    for uid, sequences in calendar.received.items():
        # Never the same SEQUENCE twice for a booking (sends of one booking may overtake each other in flight,
        # which is what SEQUENCE is for, so the order of arrival is not checked).
        assert len(sequences) == len(set(sequences)), (uid, sequences)
    rows = invite_rows(app)
    for row in rows:
        if row.status == SENT:
            assert row.sequence is not None
    for booking in world.bookings:
        uid = ical.event_uid(booking.id, "https://booking.example.test")
        final = [r for r in rows if r.booking_id == booking.id and r.booking_version == booking.version]
        base = next(r for r in final if r.step == INVITE)
        entry = calendar.entries.get(uid)
        shown = base.status == SENT or (base.status == SKIPPED and base.reason.startswith(ALREADY_SHOWN))
        if booking.status == "cancelled":
            if shown:
                assert entry is not None, uid
                assert entry.method == "CANCEL", (uid, entry)
            elif base.reason == "no invite went to the provider, so there is nothing to cancel":
                assert entry is None
            continue
        if not shown:
            continue  # the visit was over before the change could go, or retries ran out: recorded on the row
        assert entry is not None
        assert entry.method == "REQUEST"
        assert (entry.start, entry.end) == (booking.start, booking.end), uid
        if entry.location.startswith("http"):
            # A join link in the calendar is always the current version's.
            assert entry.location.endswith(f"-v{booking.version}"), (entry.location, booking.version)
    # Every booking notify heard of has exactly one calendar record, and its SEQUENCE is the highest sent.
    for uid, sequences in calendar.received.items():
        booking_id = uuid.UUID(uid.removeprefix("booking-").split("@")[0])
        given_out = [r.sequence for r in rows if r.booking_id == booking_id and r.sequence is not None]
        assert max(sequences) <= max(given_out)
