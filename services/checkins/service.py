"""Business operations of the checkins service: answering, scoring, safety alerts, flags, stopping, acks."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.checkins import instruments, publishing
from services.checkins.models import (
    CANCELLED,
    COMPLETED,
    OPEN,
    RISE,
    SELF_HARM,
    SENT,
    STARTED,
    Alert,
    AlertAck,
    Answer,
    Checkin,
    Flag,
    Patient,
)
from shared.links import LinkError, LinkSigner, new_secret, secret_matches

log = logging.getLogger(__name__)

INVALID = "invalid"
EXPIRED = "expired"
CLOSED = "closed"


class CheckinError(Exception):
    """A check-in that cannot take answers now; ``reason`` is invalid, expired or closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Rules:
    """How much a questionnaire's total may rise before the patient is flagged."""

    rises: dict[str, int]


def open_by_token(*, session: Session, signer: LinkSigner, token: str, purpose: str, model: type) -> object:
    """The row a signed link with a stored secret names; raise ``CheckinError`` if it must not open."""
    try:
        claims = signer.verify(token, purpose=purpose)
        row_id = uuid.UUID(claims.subject)
    except LinkError as exc:
        raise CheckinError(EXPIRED if exc.reason == "expired" else INVALID) from exc
    except ValueError as exc:
        raise CheckinError(INVALID) from exc
    row = session.get(model, row_id)
    secret = getattr(row, "link_secret", None) or getattr(row, "timeline_secret", None)
    if row is None or not secret_matches(claims, secret):
        raise CheckinError(INVALID)
    return row


def answers_of(session: Session, checkin_id: uuid.UUID) -> dict[int, int]:
    """The items answered so far, by item number."""
    return {a.item: a.value for a in session.scalars(select(Answer).where(Answer.checkin_id == checkin_id))}


def completed_with_answers(
    *, session: Session, patient_id: uuid.UUID
) -> list[tuple[Checkin, dict[int, int]]]:
    """The patient's completed check-ins, oldest first, each with its answers."""
    done = list(
        session.scalars(
            select(Checkin)
            .where(Checkin.patient_id == patient_id, Checkin.status == COMPLETED)
            .order_by(Checkin.completed_at)
        )
    )
    return [(c, answers_of(session, c.id)) for c in done]


def next_item(checkin: Checkin, answered: dict[int, int]) -> int | None:
    """The first unanswered item (1-based), or None when all are answered."""
    count = len(instruments.INSTRUMENTS[checkin.instrument].items)
    return next((n for n in range(1, count + 1) if n not in answered), None)


@dataclass(frozen=True)
class Answered:
    """What an answer led to."""

    completed: bool
    crisis: bool


def record_answer(
    *,
    session: Session,
    checkin: Checkin,
    item: int,
    value: int,
    rules: Rules,
    now: datetime,
    source: str = "page",
) -> Answered:
    """Store one answer (replacing an earlier answer to that item); complete and score the last one."""
    if checkin.status not in (SENT, STARTED):
        raise CheckinError(CLOSED)
    if checkin.expires_at <= now:
        raise CheckinError(EXPIRED)
    instrument = instruments.INSTRUMENTS[checkin.instrument]
    existing = session.get(Answer, (checkin.id, item))
    if existing is None:
        session.add(Answer(checkin_id=checkin.id, item=item, value=value, source=source, answered_at=now))
    else:
        existing.value, existing.answered_at, existing.source = value, now, source
    checkin.status, checkin.updated_at = STARTED, now
    crisis = instruments.reports_self_harm(checkin.instrument, item, value)
    if crisis:
        raise_alert(session=session, checkin=checkin, now=now)
    session.flush()
    answered = answers_of(session, checkin.id)
    if next_item(checkin, answered) is not None:
        return Answered(completed=False, crisis=crisis)
    result = instruments.score(instrument, answered)
    checkin.score, checkin.band = result.total, result.band
    checkin.status, checkin.completed_at = COMPLETED, now
    if source != "sms":  # notify's ask was answered by this SMS already
        publishing.close_send(checkin, now)
    _flag_rise(session=session, checkin=checkin, rules=rules, now=now)
    log.info("check-in completed", extra={"checkin_id": str(checkin.id)})
    return Answered(completed=True, crisis=crisis)


def raise_alert(*, session: Session, checkin: Checkin, now: datetime) -> Alert:
    """Record the check-in's safety alert and flag once (a changed answer does not raise a second one)."""
    alert = session.scalar(select(Alert).where(Alert.checkin_id == checkin.id))
    if alert is not None:
        return alert
    alert = Alert(
        id=uuid.uuid4(),
        checkin_id=checkin.id,
        patient_id=checkin.patient_id,
        booking_id=checkin.booking_id,
        link_secret=new_secret(),
        event_id=uuid.uuid4(),
        created_at=now,
    )
    session.add(alert)
    session.add(
        Flag(
            patient_id=checkin.patient_id,
            checkin_id=checkin.id,
            kind=SELF_HARM,
            detail="PHQ-9 item 9 answered above 0: thoughts of self-harm. On-call staff alerted.",
            created_at=now,
        )
    )
    # Ids only: what was answered never reaches a log line.
    log.warning("safety alert raised", extra={"alert_id": str(alert.id), "checkin_id": str(checkin.id)})
    return alert


def _flag_rise(*, session: Session, checkin: Checkin, rules: Rules, now: datetime) -> None:
    threshold = rules.rises.get(checkin.instrument)
    if threshold is None or checkin.score is None:
        return
    previous = session.scalar(
        select(Checkin)
        .where(
            Checkin.patient_id == checkin.patient_id,
            Checkin.instrument == checkin.instrument,
            Checkin.status == COMPLETED,
            Checkin.id != checkin.id,
        )
        .order_by(Checkin.completed_at.desc())
        .limit(1)
    )
    if previous is None or previous.score is None or checkin.score - previous.score < threshold:
        return
    title = instruments.INSTRUMENTS[checkin.instrument].title
    session.add(
        Flag(
            patient_id=checkin.patient_id,
            checkin_id=checkin.id,
            kind=RISE,
            detail=f"{title} rose {checkin.score - previous.score} points (from {previous.score} to "
            f"{checkin.score}); consider a booster session.",
            created_at=now,
        )
    )


def stop_checkins(*, session: Session, patient: Patient, now: datetime) -> int:
    """Stop the patient's check-ins (appointment messages, notify's, go on); count those cancelled."""
    if patient.stopped_at is None:
        patient.stopped_at = now
    query = select(Checkin).where(Checkin.patient_id == patient.id, Checkin.status.in_(OPEN))
    stopped = list(session.scalars(query.with_for_update()))
    for checkin in stopped:
        checkin.status, checkin.updated_at = CANCELLED, now
        publishing.close_send(checkin, now)  # a rating asked by SMS: notify closes its ask
    log.info("check-ins stopped by the patient", extra={"patient_id": str(patient.id)})
    return len(stopped)


def acknowledge_alert(
    *, session: Session, alert: Alert, by: str, via: str, note: str, now: datetime
) -> AlertAck:
    """Add to the alert's acknowledgement trail; the first one marks it acknowledged."""
    ack = AlertAck(alert_id=alert.id, by=by, via=via, note=note, at=now)
    session.add(ack)
    if alert.acknowledged_at is None:
        alert.acknowledged_at = now
    session.flush()
    log.info("alert acknowledged", extra={"alert_id": str(alert.id), "via": via})
    return ack


def reply_rating(*, session: Session, checkin_id: uuid.UUID, value: int, rules: Rules, now: datetime) -> str:
    """Apply a rating the patient sent by SMS; say what happened (a late or foreign reply changes nothing)."""
    checkin = session.scalar(select(Checkin).where(Checkin.id == checkin_id).with_for_update())
    if checkin is None:
        return "unknown"
    if len(instruments.INSTRUMENTS[checkin.instrument].items) != 1 or checkin.status not in (SENT, STARTED):
        return "not-open"
    if checkin.expires_at <= now:
        return "expired"
    record_answer(session=session, checkin=checkin, item=1, value=value, rules=rules, now=now, source="sms")
    return "recorded"
