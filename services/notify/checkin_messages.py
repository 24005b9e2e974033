"""Messages the checkins service asks for: a patient's check-in link (a 0-10 rating's SMS asks the question
itself, answerable by reply: replies/ratings.py), and on-call staff's safety alerts."""

from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy.orm import Session

from services.notify.models import EMAIL, PLANNED, SKIPPED, SMS, BookingCopy, Message
from services.notify.planning import lock_booking
from services.notify.rendering import RenderedEmail, compose_email, message_id_for, message_key, sms_text
from services.notify.replies import ratings
from services.notify.runtime import Runtime
from services.notify.senders import OutgoingSms
from shared import events
from shared.db import dialect_insert

log = logging.getLogger(__name__)

PROTOCOL = "checkins"
CHECKIN_PREFIX = "checkin:"
ALERT_PREFIX = "alert:"
# An alert no one could be told of within a day is an incident for ops, not a message to send late.
ALERT_LIFETIME = timedelta(days=1)


def is_checkin_step(step: str) -> bool:
    """Whether a plan row is one of these messages (its text was fixed when it was planned)."""
    return step.startswith((CHECKIN_PREFIX, ALERT_PREFIX))


def is_alert_step(step: str) -> bool:
    """Whether a plan row is a safety alert to on-call staff."""
    return step.startswith(ALERT_PREFIX)


def _base_row(copy: BookingCopy, version: int, step: str, channel: str, now: datetime) -> dict[str, Any]:
    return {
        "booking_id": copy.id,
        "booking_version": version,
        "step": step,
        "channel": channel,
        "protocol": PROTOCOL,
        "protocol_version": 1,
        "due_at": now,
        "status": PLANNED,
        "reason": "",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def plan_checkin(
    *, session: Session, runtime: Runtime, event: events.CheckinRequestedEvent, now: datetime
) -> int:
    """Plan the SMS and email carrying a check-in link to the booking's patient; return rows added.

    A rating's SMS asks its question (in neutral words) and opens an ask a numeric reply answers.
    """
    copy = lock_booking(session, event.booking_id)
    if copy is None:
        # The booking event has not reached notify yet: retried (the event job's own retries) until it has.
        raise LookupError(f"booking {event.booking_id} is not known to notify yet")
    snap = copy.snapshot
    clinic, patient = snap["clinic"], snap["patient"]
    step = f"{CHECKIN_PREFIX}{event.checkin_id}:{event.reminder}"
    renderer = runtime.renderer
    env = renderer.envs[renderer.language(snap)]  # the patient's language (templates/checkins/)
    context = {
        "clinic": {"name": clinic["name"], "sms_name": runtime.book.sms_name(clinic["slug"], clinic["name"])},
        "reminder": bool(event.reminder),
        "checkin_url": event.checkin_url,
        "until": renderer.when(snap, event.expires_at, patient["time_zone"]),
        "opt_out_hint": runtime.config.sms_opt_out_hint,
        "rating": event.rating,
    }
    rows = []
    sms = _base_row(copy, event.booking_version, step, SMS, now)
    template = "rating" if event.rating else "request"
    sms.update(
        urgent=False,
        expires_at=event.expires_at,
        recipient=patient.get("phone"),
        body=sms_text(env.get_template(f"{PROTOCOL}/{template}.sms.txt").render(context)),
    )
    if not patient.get("phone") or not patient.get("sms_consent"):
        sms.update(status=SKIPPED, reason="no mobile number or no SMS consent")
    elif event.rating:
        ratings.record_ask(
            session,
            checkin_id=event.checkin_id,
            booking_id=copy.id,
            phone=patient["phone"],
            rating=event.rating,
            expires_at=event.expires_at,
            now=now,
        )
    rows.append(sms)
    email = _base_row(copy, event.booking_version, step, EMAIL, now)
    email.update(
        urgent=False,
        expires_at=event.expires_at,
        recipient=patient["email"],
        subject=" ".join(env.get_template(f"{PROTOCOL}/request.subject.txt").render(context).split()),
        body=env.get_template(f"{PROTOCOL}/request.email.txt").render(context).strip() + "\n",
    )
    rows.append(email)
    return _insert(session, rows)


def plan_alert(*, session: Session, event: events.CheckinAlertEvent, now: datetime) -> int:
    """Plan an urgent SMS and email to every on-call contact the alert names; return rows added."""
    copy = lock_booking(session, event.booking_id)
    if copy is None:
        raise LookupError(f"booking {event.booking_id} is not known to notify yet")
    clinic = copy.snapshot["clinic"]["name"]
    rows = []
    for n, phone in enumerate(event.sms_to):
        row = _base_row(copy, copy.version, f"{ALERT_PREFIX}{event.alert_id}:{n}", SMS, now)
        row.update(
            urgent=True,
            expires_at=now + ALERT_LIFETIME,
            recipient=phone,
            body=f"URGENT {clinic}: a patient's check-in needs a clinician now. Open: {event.alert_url}",
        )
        rows.append(row)
    for n, address in enumerate(event.email_to):
        row = _base_row(copy, copy.version, f"{ALERT_PREFIX}{event.alert_id}:{n}", EMAIL, now)
        row.update(
            urgent=True,
            expires_at=now + ALERT_LIFETIME,
            recipient=address,
            subject=f"URGENT: a patient check-in at {clinic} needs attention now",
            body=f"A patient's check-in needs a clinician's attention now.\n\nOpen the alert, contact the "
            f"patient and acknowledge it:\n\n{event.alert_url}\n",
        )
        rows.append(row)
    if not rows:
        log.error("safety alert with no on-call contact", extra={"alert_id": str(event.alert_id)})
    return _insert(session, rows)


def _insert(session: Session, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    result = session.execute(dialect_insert(session, Message).on_conflict_do_nothing(), rows)
    return int(getattr(result, "rowcount", 0) or 0)


def prepare(
    *, runtime: Runtime, row: Message, status_callback: str
) -> tuple[OutgoingSms | None, EmailMessage | None]:
    """The SMS or email of a planned check-in or alert row, from the text fixed when it was planned."""
    assert row.recipient
    assert row.body
    key = message_key(row.id)
    if row.channel == SMS:
        return OutgoingSms(key=key, to=row.recipient, body=row.body, status_callback=status_callback), None
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in row.body.split("\n\n"))
    page = f"<!doctype html><html><body>{paragraphs}</body></html>"
    rendered = RenderedEmail(subject=row.subject or "", text=row.body, html=page)
    email = compose_email(
        sender=runtime.config.smtp_from,
        to=row.recipient,
        rendered=rendered,
        message_id=message_id_for(key, runtime.config.smtp_from),
    )
    return None, email
