"""0-10 ratings asked by SMS: the asks a check-in's SMS opens, and the number that answers the oldest one.

Two asks open at once (the day's two ratings) are answered in turn: a number answers the oldest, and the
thanks carries the next open question, so the patient always knows what their next number answers.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.notify.models import CANCELLED, PLANNED, SENT, SMS, BookingCopy, Message, RatingAsk, SmsReply
from services.notify.rendering import sms_text
from services.notify.runtime import Runtime
from shared.db import dialect_insert, rowcount
from shared.logging import get_correlation_id

# The step of a check-in's plan rows (checkin_messages.CHECKIN_PREFIX), kept here to avoid an import cycle.
_CHECKIN_STEP = "checkin:"
# A number weeks after a question is about nothing: the truth is told only about asks this recent.
LOOKBACK = timedelta(days=14)
TEMPLATES = "checkins"
# The step of the SMS telling a patient their number was not recorded (the check-in closed in checkins first).
NOT_RECORDED = "not-recorded"
# That SMS answers a text the patient just sent: a day late it is about nothing.
NOT_RECORDED_LIFETIME = timedelta(days=1)
# An ask is deleted this long after it expired: a late number is told the truth about asks sent within
# LOOKBACK (_asks), and every such ask expires after it was sent, so none of them is gone yet.
PRUNE_GRACE = LOOKBACK


def record_ask(
    session: Session,
    *,
    checkin_id: uuid.UUID,
    booking_id: uuid.UUID,
    phone: str,
    rating: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    """Note that ``phone`` is asked rating ``rating`` of ``checkin_id`` (a reminder re-asks the same)."""
    session.execute(
        dialect_insert(session, RatingAsk)
        .values(
            checkin_id=checkin_id,
            booking_id=booking_id,
            phone=phone,
            rating=rating,
            asked_at=now,
            expires_at=expires_at,
        )
        .on_conflict_do_nothing()
    )


def close_ask(
    session: Session, runtime: Runtime, *, booking_id: uuid.UUID, checkin_id: uuid.UUID, now: datetime
) -> None:
    """Close the ask of a check-in closed in checkins (answered by its link, stopped); drop its unsent SMS.

    Checkins sends ``checkin.closed`` only when the check-in closed by something other than an SMS number
    (services/checkins/service.py), so an ask a number already closed here means that number reached checkins
    too late and was not recorded: the patient, thanked with "received", is now told so.
    """
    ask = session.scalar(select(RatingAsk).where(RatingAsk.checkin_id == checkin_id).with_for_update())
    if ask is not None and ask.closed_at is None:
        ask.closed_at = now
    session.flush()
    session.execute(
        update(Message)
        .where(
            Message.booking_id == booking_id,
            Message.step.like(f"{_CHECKIN_STEP}{checkin_id}:%"),
            Message.status == PLANNED,
        )
        .values(status=CANCELLED, reason="the check-in closed", updated_at=now)
    )
    if ask is not None and ask.reply_id is not None:
        _not_recorded(session, runtime, ask, now)


def _not_recorded(session: Session, runtime: Runtime, ask: RatingAsk, now: datetime) -> None:
    """Plan the SMS telling the patient the number that closed ``ask`` was not recorded; mark its reply."""
    reply = session.get(SmsReply, ask.reply_id)
    if reply is None or reply.outcome != "rating-noted":
        return  # told already (a redelivered checkin.closed finds the reply marked)
    reply.outcome = "rating-not-recorded"
    copy = session.get(BookingCopy, ask.booking_id)
    assert copy is not None  # an ask is recorded under its booking's lock
    session.execute(
        dialect_insert(session, Message)
        .values(
            booking_id=copy.id,
            booking_version=copy.version,
            step=f"{_CHECKIN_STEP}{ask.checkin_id}:{NOT_RECORDED}",
            channel=SMS,
            protocol=TEMPLATES,
            protocol_version=1,
            due_at=now,
            status=PLANNED,
            reason="",
            attempts=0,
            created_at=now,
            updated_at=now,
            urgent=False,
            expires_at=now + NOT_RECORDED_LIFETIME,
            recipient=ask.phone,
            body=_render(session, runtime, ask, "rating-closed", None),
        )
        .on_conflict_do_nothing()
    )


def prune(session: Session, *, now: datetime, limit: int) -> int:
    """Delete up to ``limit`` asks expired more than PRUNE_GRACE ago; return how many."""
    ids = list(
        session.scalars(
            select(RatingAsk.checkin_id)
            .where(RatingAsk.expires_at < now - PRUNE_GRACE)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return 0
    return rowcount(session.execute(delete(RatingAsk).where(RatingAsk.checkin_id.in_(ids))))


def _sent_checkins(session: Session, phone: str, now: datetime) -> set[str]:
    """The check-in ids (hex) whose SMS went to ``phone`` lately: only a question seen can be answered."""
    steps = session.scalars(
        select(Message.step).where(
            Message.recipient == phone,
            Message.channel == SMS,
            Message.status == SENT,
            Message.sent_at >= now - LOOKBACK,
            Message.step.like(f"{_CHECKIN_STEP}%"),
        )
    )
    return {uuid.UUID(step.split(":")[1]).hex for step in steps}


def _asks(session: Session, phone: str, now: datetime, *, open_only: bool) -> list[RatingAsk]:
    """The asks whose SMS reached ``phone`` (open ones locked), oldest first."""
    query = select(RatingAsk).where(RatingAsk.phone == phone, RatingAsk.asked_at >= now - LOOKBACK)
    if open_only:
        query = query.where(RatingAsk.closed_at.is_(None), RatingAsk.expires_at > now).with_for_update()
    asks = list(session.scalars(query.order_by(RatingAsk.asked_at, RatingAsk.rating)))
    if not asks:
        return []
    sent = _sent_checkins(session, phone, now)
    return [a for a in asks if a.checkin_id.hex in sent]


def answer(session: Session, runtime: Runtime, row: SmsReply, value: int, now: datetime) -> str | None:
    """Apply a 0-10 reply: answer the oldest open ask (the row becomes its ``reply.rating``) or tell that the
    question closed; None when no rating was asked of this number (the ordinary reply handling follows)."""
    open_ = _asks(session, row.phone, now, open_only=True)
    if open_:
        ask = open_[0]
        ask.closed_at, ask.reply_id = now, row.id
        row.intent, row.outcome, row.booking_id = "rating", "rating-noted", ask.booking_id
        row.checkin_id, row.rating, row.event_id = ask.checkin_id, value, uuid.uuid4()
        row.correlation_id = (get_correlation_id() or "")[:64]
        following = open_[1].rating if len(open_) > 1 else None
        return _render(session, runtime, ask, "rating-noted", following)
    closed = _asks(session, row.phone, now, open_only=False)
    if not closed:
        return None
    ask = closed[-1]
    row.intent, row.outcome, row.booking_id = "rating", "rating-closed", ask.booking_id
    return _render(session, runtime, ask, "rating-closed", None)


def _render(session: Session, runtime: Runtime, ask: RatingAsk, template: str, following: str | None) -> str:
    """An answer in the patient's language, naming the clinic (and the next question, if one is open)."""
    copy = session.get(BookingCopy, ask.booking_id)
    assert copy is not None  # an ask is recorded under its booking's lock
    snap = copy.snapshot
    clinic = snap["clinic"]
    env = runtime.renderer.envs[runtime.renderer.language(snap)]
    context = {
        "clinic": {"sms_name": runtime.book.sms_name(clinic["slug"], clinic["name"])},
        "rating": following,
    }
    return sms_text(env.get_template(f"{TEMPLATES}/{template}.sms.txt").render(context))
