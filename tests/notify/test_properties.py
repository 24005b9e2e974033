"""Property: whatever the order of creates, reschedules, cancels, event deliveries and the passing of time,
no message goes for a cancelled or moved booking, none goes twice, and none is silently dropped."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from sqlalchemy import select

from services.notify.models import FINAL, INVITE, SENDING, SENT, SKIPPED, Message
from services.notify.senders import Outcome, OutgoingSms, SendResult
from services.notify.senders.console import ConsoleEmailSender, ConsoleSmsSender
from tests.notify.conftest import MONDAY_NOON, deliver, messages, tick, use_senders
from tests.notify.factories import TYPES, Booking

KINDS = sorted(TYPES)


@dataclass
class World:
    """The truth (as the booking service knows it) and what notify has been told so far."""

    app: Flask
    bookings: list[Booking] = field(default_factory=list)
    history: dict[uuid.UUID, dict[int, str]] = field(default_factory=dict)  # booking -> version -> status
    told: dict[uuid.UUID, int] = field(default_factory=dict)  # newest booking version delivered to notify
    in_flight: list[dict[str, Any]] = field(default_factory=list)
    sent: set[tuple[uuid.UUID, str, str, int]] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    faults: list[tuple[bool, str]] = field(default_factory=list)
    raced: set[tuple[int, int]] = field(default_factory=set)  # (message, attempt) claimed before a change

    def record(self, booking: Booking, payload: dict[str, Any]) -> None:
        self.history.setdefault(booking.id, {})[booking.version] = booking.status
        self.in_flight.append(payload)
        if TYPES[booking.kind].mode == "video" and booking.status == "confirmed":
            # The consult service answers each video booking version with its join links.
            self.in_flight.append(booking.links_ready(at=datetime.fromisoformat(payload["occurred_at"])))

    def deliver(self, payload: dict[str, Any]) -> None:
        # Told before the handler runs: a booking event's job sends its confirmation or notice itself.
        if payload["type"].startswith("booking."):
            booking_id = uuid.UUID(payload["booking"]["id"])
            self.told[booking_id] = max(self.told.get(booking_id, 0), payload["booking"]["version"])
        deliver(self.app, payload)

    def check_send(self, key: str) -> tuple[uuid.UUID, str, str, int]:
        """Called by the senders as a message goes out; returns its send key."""
        with self.app.app_context(), self.app.extensions["notify"].db.transaction() as session:
            row = session.scalars(select(Message).where(Message.id == int(key.removeprefix("notify-")))).one()
        version, step = row.booking_version, row.step
        status = self.history[row.booking_id][version]
        send_key = (row.booking_id, step, row.channel, version)
        if send_key in self.sent:
            self.violations.append(f"{send_key} sent twice")
        if (row.id, row.attempts) in self.raced:
            # Claimed (checked under lock) before the change arrived: this attempt is the unavoidable race
            # between a provider call in flight and a change. Any later attempt is checked again.
            return send_key
        if version != self.told[row.booking_id]:
            self.violations.append(
                f"{step} sent for version {version}; notify knew {self.told[row.booking_id]}"
            )
        if status == "cancelled" and step not in ("cancelled", INVITE):  # an invite then is a CANCEL
            self.violations.append(f"{step} sent for a cancelled booking")
        if status == "confirmed" and step == "cancelled":
            self.violations.append("a cancellation notice for a booking that is not cancelled")
        return send_key

    def attempt(self, key: str, record: Callable[[], SendResult]) -> SendResult:
        """One provider call, with the fault the test scripted for it."""
        send_key = self.check_send(key)
        concurrent, fault = self.faults.pop(0) if self.faults else (False, "ok")
        if concurrent and self.in_flight:
            # Another worker handles an event while this call is in flight, for this booking if one waits.
            same = [p for p in self.in_flight if p.get("booking", {}).get("id") == str(send_key[0])]
            payload = same[0] if same else self.in_flight[0]
            self.in_flight.remove(payload)
            with self.app.app_context(), self.app.extensions["notify"].db.transaction() as session:
                claimed = session.execute(
                    select(Message.id, Message.attempts).where(Message.status == SENDING)
                )
                self.raced.update((r.id, r.attempts) for r in claimed)
            self.deliver(payload)
        if fault == "retry":  # Twilio answered 503
            return SendResult(Outcome.RETRY, error_code="503", detail="Twilio answered 503")
        if fault == "lost-request":  # the connection broke before the provider took it
            return SendResult(Outcome.UNKNOWN, detail="no answer")
        result = record()
        self.sent.add(send_key)
        if fault == "lost-answer":  # the provider took it, the answer never came back
            return SendResult(Outcome.UNKNOWN, detail="no answer")
        return result


class CheckingSms(ConsoleSmsSender):
    def __init__(self, world: World) -> None:
        super().__init__(world.app.extensions["db"])
        self.world = world

    def send(self, sms: OutgoingSms) -> SendResult:
        return self.world.attempt(sms.key, lambda: super(CheckingSms, self).send(sms))


class CheckingEmail(ConsoleEmailSender):
    def __init__(self, world: World) -> None:
        super().__init__(world.app.extensions["db"])
        self.world = world

    def send(self, message: Any, *, key: str) -> SendResult:
        return self.world.attempt(key, lambda: super(CheckingEmail, self).send(message, key=key))


operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(20, 6 * 24 * 60), st.sampled_from(KINDS), st.booleans()),
        st.tuples(st.just("reschedule"), st.integers(0, 50), st.integers(-2 * 24 * 60, 3 * 24 * 60)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("deliver"), st.integers(0, 50), st.booleans()),
        st.tuples(st.just("wait"), st.integers(1, 36 * 60)),
    ),
    min_size=5,
    max_size=30,
)
# What each provider call meets: (an event is handled meanwhile?, outcome); calls beyond the list succeed.
faults = st.lists(
    st.tuples(st.booleans(), st.sampled_from(["ok", "ok", "ok", "retry", "lost-request", "lost-answer"])),
    max_size=40,
)
RETRY_FAILURES = ("gave up after", "could not be sent while still useful")


def run(world: World, clock: time_machine.Coordinates, ops: list[tuple[Any, ...]], seed: int) -> None:
    now = MONDAY_NOON
    for op in ops:
        kind = op[0]
        if kind == "create":
            _, minutes, appointment, consent = op
            booking = Booking(start=now + timedelta(minutes=minutes), kind=appointment, sms_consent=consent)
            world.bookings.append(booking)
            world.record(booking, booking.confirmed(at=now))
        elif kind == "reschedule" and world.bookings:
            booking = world.bookings[op[1] % len(world.bookings)]
            target = booking.start + timedelta(minutes=op[2])
            if booking.status == "confirmed" and booking.start > now and target > now + timedelta(minutes=5):
                world.record(booking, booking.reschedule(target, at=now))
        elif kind == "cancel" and world.bookings:
            booking = world.bookings[op[1] % len(world.bookings)]
            if booking.status == "confirmed" and booking.end > now:
                world.record(booking, booking.cancel(at=now))
        elif kind == "deliver" and world.in_flight:
            payload = world.in_flight[op[1] % len(world.in_flight)]
            if not op[2]:  # keep it in flight half of the time: it will be delivered again (at least once)
                world.in_flight.remove(payload)
            world.deliver(payload)
        elif kind == "wait":
            now += timedelta(minutes=op[1])
            clock.move_to(now)
        tick(world.app)
    # Everything in flight arrives in the end, in some order, while time goes on; then past every visit.
    rng = random.Random(seed)
    while world.in_flight:
        world.deliver(world.in_flight.pop(rng.randrange(len(world.in_flight))))
        now += timedelta(minutes=rng.randint(0, 12 * 60))
        clock.move_to(now)
        tick(world.app)
    # Reschedules move a visit relative to its own start, so the last one may be weeks out: go past it.
    last_end = max((b.end for b in world.bookings), default=now)
    while now < last_end + timedelta(days=8):
        now += timedelta(days=1)
        clock.move_to(now)
        tick(world.app)


@pytest.mark.slow
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations, faults=faults, seed=st.integers(0, 2**16))
def test_no_message_for_a_cancelled_or_moved_booking_none_twice_none_dropped(
    make_app: Callable[..., Flask],
    redis_client: Redis,
    ops: list[tuple[Any, ...]],
    faults: list[tuple[bool, str]],
    seed: int,
) -> None:
    redis_client.flushall()
    app = make_app(provider_invites=True)
    world = World(app, faults=list(faults))
    use_senders(app, sms=CheckingSms(world), email=CheckingEmail(world))
    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        run(world, clock, ops, seed)
    assert world.violations == []
    rows = messages(app)
    # Nothing is left pending, and everything not sent says why.
    assert all(m.status in FINAL for m in rows), {(m.step, m.status) for m in rows if m.status not in FINAL}
    assert all(m.reason for m in rows if m.status != SENT)
    # Every message of a booking's final version was sent or skipped on purpose, or failed for a reason the
    # test caused: retries used up, or a join link the consult service had not sent before the visit ended.
    for booking in world.bookings:
        final = [m for m in rows if m.booking_id == booking.id and m.booking_version == booking.version]
        assert final, "each booking's latest version has its messages"
        for m in final:
            failed_on_purpose = m.reason.startswith(RETRY_FAILURES) or (
                (m.step, m.reason) == ("join-1h", "the join link never arrived")
            )
            assert m.status in (SENT, SKIPPED) or failed_on_purpose, (m.step, m.status, m.reason)
    assert len(world.sent) == len([m for m in rows if m.status == SENT])
