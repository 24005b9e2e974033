"""An inbound SMS, once per MessageSid: carrier keywords first, then a 0-10 number to an open rating ask
(replies/ratings.py), then the reply matched to a booking."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notify import escorts, optouts
from services.notify.models import SENT, SMS, BookingCopy, Message, SmsReply
from services.notify.planning import lock_booking
from services.notify.protocols import DEFAULT_PROTOCOL, Protocol, Step
from services.notify.rendering import MessageContext
from services.notify.replies import grammar, ratings
from services.notify.runtime import Runtime
from shared import links
from shared.db import dialect_insert
from shared.events import ATTENDANCE_CONFIRMED, ESCORT_CONFIRMED
from shared.logging import get_correlation_id
from shared.timeutil import local_date, utcnow

log = logging.getLogger(__name__)

# A reminder's question stays open this long after it was sent (a reply weeks later is about nothing).
LOOKBACK = timedelta(days=14)


@dataclass(frozen=True)
class Candidate:
    """A booking whose SMS to this number asked for a reply: the version and step that asked."""

    booking: BookingCopy
    asked_version: int
    step: str

    @property
    def is_open(self) -> bool:
        """Still the visit the question was about, and still ahead."""
        booking = self.booking
        return booking.status == "confirmed" and booking.version == self.asked_version

    def local_day(self) -> int:
        """The day of the month of the visit, in the patient's zone."""
        return local_date(self.booking.start_at, self.booking.snapshot["patient"]["time_zone"]).day


@dataclass
class Outcome:
    """What to answer an inbound SMS, and the reply row whose event to publish after the commit."""

    answer: str | None = None
    publish_reply_id: int | None = None
    duplicate: bool = False
    notes: dict[str, Any] = field(default_factory=dict)


def candidates(session: Session, runtime: Runtime, phone: str, now: datetime) -> list[Candidate]:
    """Bookings whose SMS to ``phone`` asked for a reply lately, with the newest version that asked."""
    rows = session.execute(
        select(Message.booking_id, Message.booking_version, Message.step, Message.protocol).where(
            Message.recipient == phone,
            Message.channel == SMS,
            Message.status == SENT,
            Message.sent_at >= now - LOOKBACK,
        )
    ).all()
    asked: dict[uuid.UUID, tuple[int, str]] = {}
    for booking_id, version, step_key, protocol in rows:
        step = runtime.book.get(protocol).step(step_key)
        if step is not None and step.asks_reply and version >= asked.get(booking_id, (0, ""))[0]:
            asked[booking_id] = (version, step_key)
    if not asked:
        return []
    found = session.scalars(select(BookingCopy).where(BookingCopy.id.in_(asked), BookingCopy.start_at > now))
    return sorted(
        (Candidate(b, *asked[b.id]) for b in found), key=lambda c: (c.booking.start_at, str(c.booking.id))
    )


@dataclass(frozen=True)
class EscortCandidate:
    """A booking whose SMS to this number asked its escort to confirm: the version, escort and step."""

    booking: BookingCopy
    asked_version: int
    escort: str  # the escort id's prefix in the row's step (escorts.step_key)
    step: str

    @property
    def truth(self) -> str | None:
        """None while still the pick-up that was asked about; else what became of it."""
        booking = self.booking
        if booking.status != "confirmed":
            return "escort-cancelled"
        current = booking.snapshot.get("escort")
        if not current or uuid.UUID(current["id"]).hex[:16] != self.escort:
            return "escort-replaced"
        return None if booking.version == self.asked_version else "escort-moved"

    def as_candidate(self) -> Candidate:
        return Candidate(self.booking, self.asked_version, self.step)


def escort_candidates(session: Session, runtime: Runtime, phone: str, now: datetime) -> list[EscortCandidate]:
    """Upcoming bookings whose SMS to ``phone`` asked an escort to confirm lately, nearest first."""
    rows = session.execute(
        select(Message.booking_id, Message.booking_version, Message.step, Message.protocol).where(
            Message.recipient == phone,
            Message.channel == SMS,
            Message.status == SENT,
            Message.sent_at >= now - LOOKBACK,
            Message.step.like(f"{escorts.PREFIX}%"),
        )
    ).all()
    asked: dict[uuid.UUID, tuple[int, str, str]] = {}
    for booking_id, version, row_step, protocol in rows:
        short, key = escorts.split(row_step)
        step = runtime.book.get(protocol).step(key)
        if step is not None and step.asks_reply and version >= asked.get(booking_id, (0, "", ""))[0]:
            asked[booking_id] = (version, short, key)
    if not asked:
        return []
    found = session.scalars(select(BookingCopy).where(BookingCopy.id.in_(asked), BookingCopy.start_at > now))
    return sorted(
        (EscortCandidate(b, *asked[b.id]) for b in found),
        key=lambda c: (c.booking.start_at, str(c.booking.id)),
    )


def _claim(session: Session, *, sid: str, phone: str, now: datetime) -> SmsReply | None:
    """The new row of MessageSid ``sid``, or None when it was handled before (Twilio retried)."""
    new_id = session.execute(
        dialect_insert(session, SmsReply)
        .values(message_sid=sid, phone=phone, received_at=now, intent="", outcome="")
        .on_conflict_do_nothing()
        .returning(SmsReply.id)
    ).scalar()
    return None if new_id is None else session.get(SmsReply, new_id)


def handle_inbound(
    *, session: Session, runtime: Runtime, sid: str, phone: str, body: str, opt_out_type: str | None
) -> Outcome:
    """Apply one inbound SMS (once per ``sid``) and say what to answer."""
    now = utcnow()
    row = _claim(session, sid=sid, phone=phone, now=now)
    if row is None:
        previous = session.scalar(select(SmsReply.answer).where(SmsReply.message_sid == sid))
        log.info("inbound sms already handled")
        return Outcome(answer=previous, duplicate=True)
    outcome = _handle(session, runtime, row, body, opt_out_type, now)
    row.answer = outcome.answer
    log.info("inbound sms", extra={"intent": row.intent, "outcome": row.outcome})
    return outcome


def _handle(
    session: Session, runtime: Runtime, row: SmsReply, body: str, opt_out_type: str | None, now: datetime
) -> Outcome:
    word = optouts.keyword(body, opt_out_type)
    reply = grammar.parse(body)
    if word == optouts.STOP:
        optouts.set_opt_out(session, row.phone, opted_out=True, source="inbound-stop", now=now)
        row.intent = row.outcome = "stop"
        return Outcome()  # the carrier (or Twilio's Advanced Opt-Out) answers STOP itself
    if word == optouts.HELP:
        row.intent = row.outcome = "help"
        return Outcome(answer=runtime.config.sms_help_reply or None)
    if word == optouts.START:
        optouts.set_opt_out(session, row.phone, opted_out=False, source="inbound-start", now=now)
        if reply.intent != grammar.CONFIRM:  # YES is both Twilio's opt-in and a confirmation
            row.intent = row.outcome = "start"
            return Outcome()
    elif optouts.is_opted_out(session, row.phone):
        row.intent, row.outcome = reply.intent, "opted-out"
        return Outcome()  # no answer may go to a number that opted out
    row.intent = reply.intent
    value = grammar.rating(body)
    if value is not None:
        answer = ratings.answer(session, runtime, row, value, now)
        if answer is not None:
            return Outcome(answer=answer, publish_reply_id=row.id if row.event_id else None)
    return _answer(session, runtime, row, reply, body, now)


def _answer(
    session: Session, runtime: Runtime, row: SmsReply, reply: grammar.Reply, body: str, now: datetime
) -> Outcome:
    found = candidates(session, runtime, row.phone, now)
    open_ = [c for c in found if c.is_open]
    if reply.intent == grammar.CONFIRM and reply.day is None:
        escort = _escort_target(session, runtime, row.phone, now, found, open_)
        if escort is not None:
            return _escort_answer(session, runtime, row, escort, now)
    if reply.intent == grammar.OTHER:
        row.body = body  # kept for staff to read, never logged
        return _say(runtime, row, open_[0] if open_ else None, "help", "kept")
    chosen = [c for c in open_ if reply.day is None or c.local_day() == reply.day]
    if len(chosen) != 1:
        return _not_one(runtime, row, reply, found, open_)
    target = chosen[0]
    if reply.intent == grammar.CHANGE:
        return _say(runtime, row, target, "change", "manage-link")
    _confirm(row, target, now)
    outcome = _say(runtime, row, target, "confirmed", "confirmed")
    outcome.publish_reply_id = row.id
    return outcome


def _escort_target(
    session: Session,
    runtime: Runtime,
    phone: str,
    now: datetime,
    found: list[Candidate],
    open_: list[Candidate],
) -> EscortCandidate | None:
    """The escort ask a YES answers: the nearest upcoming open one, unless the number's own visit is nearer;
    with nothing open anywhere, the newest closed escort ask (to tell the truth)."""
    asks = escort_candidates(session, runtime, phone, now)
    open_asks = [a for a in asks if a.truth is None]
    if open_asks and (not open_ or open_asks[0].booking.start_at <= open_[0].booking.start_at):
        return open_asks[0]
    if asks and not open_asks and not found:
        return max(asks, key=lambda a: a.booking.changed_at)
    return None


def _escort_answer(
    session: Session, runtime: Runtime, row: SmsReply, target: EscortCandidate, now: datetime
) -> Outcome:
    """Confirm the escort's pick-up (its event published after the commit), or tell what became of it."""
    row.intent = "escort-confirm"
    truth = target.truth
    if truth is not None:
        row.booking_id, row.booking_version = target.booking.id, target.booking.version
        return _say(runtime, row, target.as_candidate(), truth, truth)
    row.booking_id, row.booking_version = target.booking.id, target.asked_version
    row.meaning, row.event_id = ESCORT_CONFIRMED, uuid.uuid4()
    row.correlation_id = (get_correlation_id() or "")[:64]
    # The booking first (the lock order of the event handler): its nudges and alerts are no longer needed.
    lock_booking(session, target.booking.id)
    escorts.cancel_on_confirmation(session, target.booking.id, target.escort, now)
    outcome = _say(runtime, row, target.as_candidate(), "escort-confirmed", "escort-confirmed")
    outcome.publish_reply_id = row.id
    return outcome


def _not_one(
    runtime: Runtime, row: SmsReply, reply: grammar.Reply, found: list[Candidate], open_: list[Candidate]
) -> Outcome:
    """The answer when a reply names no single open booking: which one, what became of it, or help."""
    if open_:
        return _say(runtime, row, open_[0], "which", "asked-which", choices=open_, word=reply.intent)
    closed = sorted((c for c in found if not c.is_open), key=lambda c: c.booking.changed_at, reverse=True)
    if closed:
        truth = "cancelled" if closed[0].booking.status == "cancelled" else "moved"
        return _say(runtime, row, closed[0], truth, truth)
    return _say(runtime, row, None, "help", "unmatched")


def _confirm(row: SmsReply, target: Candidate, now: datetime) -> None:
    """Record the confirmation as this row's event (published after the commit)."""
    row.booking_id, row.booking_version = target.booking.id, target.asked_version
    row.meaning, row.event_id = ATTENDANCE_CONFIRMED, uuid.uuid4()
    row.correlation_id = (get_correlation_id() or "")[:64]


def _say(
    runtime: Runtime,
    row: SmsReply,
    target: Candidate | None,
    template: str,
    outcome: str,
    *,
    choices: list[Candidate] | None = None,
    word: str = grammar.CONFIRM,
) -> Outcome:
    row.outcome = outcome
    if target is not None and row.booking_id is None:
        row.booking_id, row.booking_version = target.booking.id, target.booking.version
    if target is None:
        protocol = runtime.book.get(DEFAULT_PROTOCOL)
        return Outcome(answer=runtime.renderer.reply(f"{protocol.replies}/unmatched", {}))
    protocol = runtime.book.get(target.booking.protocol)
    context = _context(runtime, protocol, target)
    if choices:
        context["choices"] = [_choice(runtime, c) for c in choices]
        context["reply_word"] = "R" if word == grammar.CHANGE else "C"
    return Outcome(answer=runtime.renderer.reply(f"{protocol.replies}/{template}", context))


def _choice(runtime: Runtime, candidate: Candidate) -> dict[str, Any]:
    snap = candidate.booking.snapshot
    when = runtime.renderer.when(snap, candidate.booking.start_at, snap["patient"]["time_zone"])
    return {"day": candidate.local_day(), "when": when}


def _context(runtime: Runtime, protocol: Protocol, target: Candidate) -> dict[str, Any]:
    booking = target.booking
    token = links.manage_token(
        runtime.signer, booking_id=str(booking.id), version=booking.version, ends_at=booking.end_at
    )
    step = protocol.step(escorts.base_key(target.step)) or Step(
        key=target.step, on="start", channels=(SMS,), template=""
    )
    snap = booking.snapshot
    return runtime.renderer.context(
        protocol=protocol,
        step=step,
        message=MessageContext(
            snapshot=snap, manage_url=links.manage_url(runtime.config.booking_public_url, token)
        ),
        sms_name=runtime.book.sms_name(snap["clinic"]["slug"], snap["clinic"]["name"]),
    )


def list_replies(*, session: Session, kept: bool = True, limit: int = 100) -> list[SmsReply]:
    """Inbound SMS, newest first; with ``kept``, only those no keyword understood (staff read them)."""
    query = select(SmsReply).order_by(SmsReply.id.desc()).limit(limit)
    if kept:
        query = query.where(SmsReply.outcome == "kept")
    return list(session.scalars(query))
