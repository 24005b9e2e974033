"""Sending due messages: claim (check again, render, mark sending), call the providers, record the outcome."""

from __future__ import annotations

import logging
import random
import uuid
from collections import Counter
from collections.abc import Generator
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notify import checkin_messages, course_messages, escorts, link_messages, optouts
from services.notify.calendar import invites
from services.notify.calendar.planning import bump_feeds
from services.notify.metrics import MESSAGES, error_label
from services.notify.models import (
    CANCELLED,
    EMAIL,
    FAILED,
    PENDING,
    PLANNED,
    SENDING,
    SENT,
    SKIPPED,
    SMS,
    BookingCopy,
    JoinLink,
    Message,
)
from services.notify.planning import quiet_deadline, respect_quiet_hours
from services.notify.protocols import CLINIC, ESCORT, Step
from services.notify.rendering import (
    DEFAULT_LANGUAGE,
    MessageContext,
    compose_email,
    message_id_for,
    message_key,
)
from services.notify.runtime import Runtime
from services.notify.senders import Outcome, OutgoingSms, SendResult
from shared import killpoints, links
from shared.metrics import count_after_commit
from shared.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A claimed message, rendered and ready for its provider."""

    message_id: int
    channel: str
    key: str
    sms: OutgoingSms | None = None
    email: EmailMessage | None = None


def status_callback_url(runtime: Runtime, message_id: int) -> str:
    """Where Twilio reports this message's delivery status."""
    return f"{runtime.config.notify_public_url.rstrip('/')}/webhooks/twilio/status?m={message_id}"


@dataclass(frozen=True)
class Held:
    """What the caller's transaction already holds for a claim: the booking copies of the messages, locked
    for update, and those bookings' join links as read in that transaction."""

    bookings: dict[uuid.UUID, BookingCopy]
    join_links: dict[tuple[uuid.UUID, int], JoinLink]


def _lock_rows(session: Session, ids: list[int], statuses: tuple[str, ...]) -> list[Message]:
    # Bookings first, shared, then messages: the same order the event handler takes its locks in.
    locked = session.scalars(
        select(BookingCopy.id)
        .where(BookingCopy.id.in_(select(Message.booking_id).where(Message.id.in_(ids))))
        .order_by(BookingCopy.id)
        .with_for_update(read=True)
    ).all()
    if not locked:
        return []
    return _lock_messages(session, ids, statuses)


def _lock_messages(session: Session, ids: list[int], statuses: tuple[str, ...]) -> list[Message]:
    query = select(Message).where(Message.id.in_(ids), Message.status.in_(statuses)).order_by(Message.id)
    return list(session.scalars(query.with_for_update().execution_options(populate_existing=True)))


def _why_not(row: Message, booking: BookingCopy, now: datetime) -> tuple[str, str] | None:
    """(final status, reason) when this message must not go now, else None."""
    # A whole-course message and a link sent again tell of the booking as it is when they go.
    current = course_messages.is_course_step(row.step) or link_messages.is_link_step(row.step)
    if row.booking_version != booking.version and not current:
        if booking.status == CANCELLED:
            return CANCELLED, "the booking was cancelled"
        return CANCELLED, f"the booking was moved (now version {booking.version})"
    if now > row.expires_at:
        return SKIPPED, "too late: the moment it was useful had passed"
    return None


def claim(
    *, session: Session, runtime: Runtime, ids: list[int], now: datetime, held: Held | None = None
) -> list[Prepared]:
    """Check, render and mark ``sending`` the due messages among ``ids`` (in the caller's transaction);
    ``held``: their bookings are already locked and read there (an event's own inline batch)."""
    prepared: list[Prepared] = []
    rows, bookings, join_links = _claim_rows(session, ids, held)
    # What the checks and the texts need, read once for the batch rather than once per message.
    phones = {b.snapshot["patient"].get("phone") for b in bookings.values()} - {None}
    phones |= {b.snapshot["escort"]["phone"] for b in bookings.values() if b.snapshot.get("escort")}
    opted_out = optouts.opted_out_among(session, phones)
    with session.no_autoflush:
        for row in rows:
            ready = _claim_one(
                session=session,
                runtime=runtime,
                row=row,
                booking=bookings[row.booking_id],
                now=now,
                opted_out=opted_out,
                join_links=join_links,
            )
            if ready is not None:
                prepared.append(ready)
    # An invite given a new SEQUENCE changes what its provider's feed says.
    invited = {
        bookings[r.booking_id].provider_id for r in rows if invites.is_invite(r.step) and r.status == SENDING
    }
    bump_feeds(session, invited, now)
    return prepared


def _claim_rows(
    session: Session, ids: list[int], held: Held | None
) -> tuple[list[Message], dict[uuid.UUID, BookingCopy], dict[tuple[uuid.UUID, int], JoinLink]]:
    """The due messages among ``ids``, locked, with their bookings and those bookings' join links."""
    if held is not None:
        rows = _lock_messages(session, ids, PENDING)
        if not {r.booking_id for r in rows} <= held.bookings.keys():
            raise ValueError("a claim given held bookings was asked for a message of another booking")
        return rows, held.bookings, held.join_links
    rows = _lock_rows(session, ids, PENDING)
    booking_ids = {r.booking_id for r in rows}
    bookings = {b.id: b for b in session.scalars(select(BookingCopy).where(BookingCopy.id.in_(booking_ids)))}
    join_links = {
        (j.booking_id, j.booking_version): j
        for j in session.scalars(select(JoinLink).where(JoinLink.booking_id.in_(booking_ids)))
    }
    return rows, bookings, join_links


def _claim_one(
    *,
    session: Session,
    runtime: Runtime,
    row: Message,
    booking: BookingCopy,
    now: datetime,
    opted_out: set[str],
    join_links: dict[tuple[uuid.UUID, int], JoinLink],
) -> Prepared | None:
    """Check one message again and render it; None when it is not to go now (recorded on the row)."""
    if row.due_at > now or row.blocked_on:
        # Not due (re-planned for a retry or quiet hours) or waiting for its link: the dispatcher owns it.
        row.status = PLANNED
        return None
    if _held_back(runtime=runtime, row=row, booking=booking, now=now, opted_out=opted_out):
        return None
    join = join_links.get((booking.id, booking.version))
    try:
        ready = _prepare(session=session, runtime=runtime, row=row, booking=booking, join=join, now=now)
    except Exception as exc:  # noqa: BLE001 (recorded on the row; logged by type, see below)
        # The type only: a template error quotes the values it was rendering (the patient's details).
        log.error("could not render message", extra={"message_id": row.id, "error": type(exc).__name__})
        row.status, row.reason = FAILED, f"could not render the message ({type(exc).__name__})"
        return None
    if ready is None:
        return None  # recorded on the row: nothing new for the provider's calendar
    row.status = SENDING
    row.sending_started_at = now
    row.attempts += 1
    row.updated_at = now
    return ready


def _held_back(
    *, runtime: Runtime, row: Message, booking: BookingCopy, now: datetime, opted_out: set[str]
) -> bool:
    """Whether a due message is not to go now: skipped, or moved past quiet hours (recorded on the row)."""
    alert = checkin_messages.is_alert_step(row.step)
    # A safety alert goes to on-call staff whatever happens to the booking or the patient's SMS consent.
    verdict = (SKIPPED, "too late: the alert expired") if alert and now > row.expires_at else None
    if not alert:
        verdict = _why_not(row, booking, now)
    about_escort = escorts.is_escort_step(row.step)
    escort_step = _escort_step(runtime, row) if about_escort else None
    if verdict is None and about_escort:
        verdict = escorts.verdict(
            row=row,
            booking=booking,
            step=escort_step,
            opted_out=opted_out,
            staff_email=_staff_email(runtime, booking),
        )
    if verdict is None and row.channel == SMS and not alert:
        if not (escort_step is not None and escort_step.to == ESCORT):
            verdict = _sms_verdict(booking=booking, opted_out=opted_out)
        if verdict is None and not row.urgent:
            tz = escorts.quiet_zone(booking, escort_step)
            later = _after_quiet_hours(runtime=runtime, row=row, booking=booking, now=now, tz=tz)
            if later is not None:
                row.status, row.due_at, row.reason = PLANNED, later, "waiting for the end of quiet hours"
                row.updated_at = now
                return True
    if verdict is None:
        return False
    row.status, row.reason = verdict
    row.updated_at = now
    log.info(
        "message not sent: %s",
        verdict[1],
        extra={"message_id": row.id, "booking_id": str(row.booking_id)},
    )
    return True


def _escort_step(runtime: Runtime, row: Message) -> Step | None:
    """The protocol step of an escort row (None: no longer in the protocol)."""
    return runtime.book.get(row.protocol).step(escorts.base_key(row.step))


def _staff_email(runtime: Runtime, booking: BookingCopy) -> str | None:
    return runtime.book.staff_email(booking.snapshot["clinic"]["slug"])


def _prepare(
    *,
    session: Session,
    runtime: Runtime,
    row: Message,
    booking: BookingCopy,
    join: JoinLink | None,
    now: datetime,
) -> Prepared | None:
    """Render a message that is to go: an invite (None when it says nothing new), a check-in, a reminder."""
    if invites.is_invite(row.step):
        email = invites.prepare(
            session=session,
            runtime=runtime,
            row=row,
            booking=booking,
            join_url=join.provider_url if join else None,
            now=now,
        )
        if email is None:
            return None
        return Prepared(message_id=row.id, channel=EMAIL, key=message_key(row.id), email=email)
    if checkin_messages.is_checkin_step(row.step):
        sms, email = checkin_messages.prepare(
            runtime=runtime, row=row, status_callback=status_callback_url(runtime, row.id)
        )
        return Prepared(message_id=row.id, channel=row.channel, key=message_key(row.id), sms=sms, email=email)
    if course_messages.is_course_step(row.step):
        extra = course_messages.render_extra(session, row)
        course = _course_links(runtime, booking, extra)
        return _render(runtime=runtime, row=row, booking=booking, join=None, extra=extra, course=course)
    if link_messages.is_link_step(row.step):
        again = link_messages.step_of(row.step)
        page = _current_course_links(runtime, booking) if again is link_messages.COURSE_LINK_AGAIN else None
        return _render(runtime=runtime, row=row, booking=booking, join=None, step=again, course=page)
    if escorts.is_escort_step(row.step):
        step = _escort_step(runtime, row)
        assert step  # checked by escorts.verdict
        to = escorts.recipient(row, booking, step, _staff_email(runtime, booking))
        return _render(runtime=runtime, row=row, booking=booking, join=None, step=step, to=to)
    return _render(runtime=runtime, row=row, booking=booking, join=join)


def _sms_verdict(*, booking: BookingCopy, opted_out: set[str]) -> tuple[str, str] | None:
    """(final status, reason) when this SMS must not go: no number, no consent, opted out."""
    patient = booking.snapshot["patient"]
    if not patient.get("phone"):
        return SKIPPED, "the patient gave no mobile number"
    if not patient.get("sms_consent"):
        return SKIPPED, "the patient did not consent to SMS"
    if patient["phone"] in opted_out:
        return SKIPPED, "the number opted out of SMS"
    return None


def _after_quiet_hours(
    *, runtime: Runtime, row: Message, booking: BookingCopy, now: datetime, tz: str
) -> datetime | None:
    """When a non-urgent SMS due now should go instead, if it is quiet hours in ``tz`` (its reader's)."""
    later = respect_quiet_hours(
        due_at=now,
        tz=tz,
        quiet=runtime.config.quiet_hours,
        deadline=quiet_deadline(due_at=now, expires_at=row.expires_at, start=booking.start_at),
    )
    return later if later > now else None


def _course_links(runtime: Runtime, booking: BookingCopy, extra: dict[str, Any]) -> tuple[str, str]:
    """The course page's link and its short form, valid until a week after the last session listed."""
    course_id = str(booking.snapshot["course"]["id"])
    # A whole-course change lists the course's last session; the sessions share the anchor's length.
    last_start = max(line["start"] for line in extra["course_sessions"])
    ends_at = last_start + (booking.end_at - booking.start_at)
    base = runtime.config.booking_public_url
    token = links.course_token(runtime.signer, course_id=course_id, ends_at=ends_at)
    short = links.short_course_url(runtime.signer.keys, base, course_id=course_id, ends_at=ends_at)
    return links.course_url(base, token), short


def _current_course_links(runtime: Runtime, booking: BookingCopy) -> tuple[str, str]:
    """The course page's current link and its short form, from its last session (the one a course's link
    request names): valid until the grace after that session ends, as the booking service signs it."""
    course_id = str(booking.snapshot["course"]["id"])
    base = runtime.config.booking_public_url
    token = links.course_token(runtime.signer, course_id=course_id, ends_at=booking.end_at)
    short = links.short_course_url(runtime.signer.keys, base, course_id=course_id, ends_at=booking.end_at)
    return links.course_url(base, token), short


def _render(
    *,
    runtime: Runtime,
    row: Message,
    booking: BookingCopy,
    join: JoinLink | None,
    extra: dict[str, Any] | None = None,
    step: Step | None = None,
    course: tuple[str, str] | None = None,
    to: str | None = None,
) -> Prepared:
    """Render a message from its templates (``step``: a built-in one, else the row's protocol step), for the
    patient or ``to`` (an escort's phone, the clinic's address)."""
    protocol = runtime.book.get(row.protocol)
    step = step or protocol.step(row.step)
    if step is None:
        raise LookupError(f"step {row.step} is no longer in protocol {row.protocol}")
    snap = booking.snapshot
    if step.to == CLINIC:  # staff read the clinic's language (English), whatever the patient's
        snap = {**snap, "patient": {**snap["patient"], "language": DEFAULT_LANGUAGE}}
    token = links.manage_token(
        runtime.signer, booking_id=str(booking.id), version=booking.version, ends_at=booking.end_at
    )
    if not step.join_link:
        join = None
    previous = snap.get("previous_start")
    context = runtime.renderer.context(
        protocol=protocol,
        step=step,
        message=MessageContext(
            snapshot=snap,
            manage_url=links.manage_url(runtime.config.booking_public_url, token),
            short_manage_url=links.short_manage_url(
                runtime.signer.keys,
                runtime.config.booking_public_url,
                booking_id=str(booking.id),
                version=booking.version,
                ends_at=booking.end_at,
            ),
            safety_check_url=links.short_day_check_url(
                runtime.signer.keys,
                runtime.config.booking_public_url,
                booking_id=str(booking.id),
                version=booking.version,
                ends_at=booking.end_at,
            )
            if step.safety_check
            else None,
            join_url=join.patient_url if join else None,
            course_url=course[0] if course else None,
            short_course_url=course[1] if course else None,
            previous_start=datetime.fromisoformat(previous) if previous else None,
            cancelled_by=snap.get("cancelled_by"),
            extra=extra or {},
        ),
        sms_name=runtime.book.sms_name(snap["clinic"]["slug"], snap["clinic"]["name"]),
    )
    key = message_key(row.id)
    if row.channel == SMS:
        body = runtime.renderer.sms(step, context)
        row.recipient, row.body, row.subject = to or snap["patient"]["phone"], body, None
        sms = OutgoingSms(
            key=key, to=row.recipient, body=body, status_callback=status_callback_url(runtime, row.id)
        )
        return Prepared(message_id=row.id, channel=SMS, key=key, sms=sms)
    rendered = runtime.renderer.email(step, context)
    if step.calendar:
        rendered = replace(
            rendered, attachments=(*rendered.attachments, invites.patient_calendar(runtime, booking, context))
        )
    row.recipient, row.subject, row.body = to or snap["patient"]["email"], rendered.subject, None
    email = compose_email(
        sender=runtime.config.smtp_from,
        to=row.recipient,
        rendered=rendered,
        message_id=message_id_for(key, runtime.config.smtp_from),
    )
    return Prepared(message_id=row.id, channel=EMAIL, key=key, email=email)


def deliver(
    runtime: Runtime, prepared: list[Prepared]
) -> Generator[list[tuple[Prepared, SendResult]], None, None]:
    """Hand each prepared message to its provider, several at a time; yield the outcomes as they come back.

    Whatever has come back is yielded at once, so the caller records it while the other calls go on. A worker
    killed mid-batch then leaves unrecorded only the calls in flight and the last outcomes not yet committed;
    only those are checked with the provider (email, which SMTP cannot be asked about, goes again).
    Close the generator when done (``contextlib.closing``): calls not yet started must not start after the job
    stops.
    """
    if not prepared:
        return
    if len(prepared) == 1:  # one call: in this thread, no handing over
        yield [(prepared[0], _deliver_one(runtime, prepared[0]))]
        return
    pool = runtime.send_pool.get(runtime.config.send_concurrency)
    pending = {pool.submit(_deliver_one, runtime, item): item for item in prepared}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            yield [(pending.pop(future), future.result()) for future in done]
    finally:
        # If the job is stopped (timeout), calls not yet started must not start afterwards; those already
        # started finish before the job lets go (as with a pool of its own, shut down).
        for future in pending:
            future.cancel()
        wait(pending)


def _deliver_one(runtime: Runtime, item: Prepared) -> SendResult:
    try:
        if item.sms is not None:
            return runtime.senders.sms.send(item.sms)
        assert item.email is not None
        return runtime.senders.email.send(item.email, key=item.key)
    except Exception as exc:  # noqa: BLE001 (an unknown outcome, checked later; logged by type, see below)
        # The type only: providers' errors name the recipient (an SMTP refusal, a Twilio error's URL).
        log.error("sender failed", extra={"message_id": item.message_id, "error": type(exc).__name__})
        return SendResult(Outcome.UNKNOWN, detail=f"sender error ({type(exc).__name__})")


def record(
    *, session: Session, runtime: Runtime, results: list[tuple[Prepared, SendResult]], now: datetime
) -> dict[str, int]:
    """Store each outcome on its message (in the caller's transaction); return counts by outcome."""
    counts: dict[str, int] = {}
    rows = {r.id: r for r in _lock_rows(session, [p.message_id for p, _ in results], (SENDING, SENT))}
    for item, result in results:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
        row = rows.get(item.message_id)
        if row is None:
            continue
        if row.status == SENT:
            # A status callback already proved it went (and recorded the provider's reference).
            continue
        _apply_result(session=session, runtime=runtime, row=row, result=result, now=now)
    return counts


def _apply_result(
    *, session: Session, runtime: Runtime, row: Message, result: SendResult, now: datetime
) -> None:
    count_after_commit(
        session,
        MESSAGES,
        channel=row.channel,
        outcome=result.outcome.value,
        error_code=error_label(result.error_code),
    )
    row.updated_at = now
    row.error_code = result.error_code
    extra = {
        "message_id": row.id,
        "booking_id": str(row.booking_id),
        "step": row.step,
        "channel": row.channel,
        "outcome": result.outcome.value,
    }
    if result.outcome is Outcome.ACCEPTED:
        row.status, row.reason, row.sent_at = SENT, "", now
        row.provider_ref = result.provider_ref
        row.delivery_status = result.provider_status
        row.delivery_updated_at = now
        log.info("message sent", extra=extra)
        return
    if result.outcome is Outcome.RETRY:
        if row.attempts >= runtime.config.max_attempts:
            row.status, row.reason = FAILED, f"gave up after {row.attempts} attempts: {result.detail}"
        else:
            wait = runtime.config.retry_backoff_seconds[row.attempts - 1]
            next_try = now + timedelta(seconds=wait * random.uniform(1.0, 1.1))
            if next_try > row.expires_at:
                row.status, row.reason = FAILED, f"could not be sent while still useful: {result.detail}"
            else:
                row.status, row.due_at, row.reason = PLANNED, next_try, f"will retry: {result.detail}"
        log.warning("temporary send failure", extra={**extra, "error_code": result.error_code})
        return
    if result.outcome is Outcome.OPTED_OUT:
        assert row.recipient is not None
        optouts.set_opt_out(session, row.recipient, opted_out=True, source="twilio-21610", now=now)
        row.status, row.reason = FAILED, result.detail
        log.info("number opted out at the carrier", extra=extra)
        return
    if result.outcome is Outcome.PERMANENT:
        row.status, row.reason = FAILED, result.detail or "refused by the provider"
        log.warning("message refused", extra={**extra, "error_code": result.error_code})
        return
    # UNKNOWN: leave it "sending"; reconcile() asks the provider once the send can no longer be in flight.
    row.reason = f"outcome unknown, to be checked with the provider: {result.detail}"
    log.warning("send outcome unknown", extra=extra)


def send_batch(runtime: Runtime, ids: list[int], *, now: datetime | None = None) -> dict[str, int]:
    """Claim, send and record the due messages among ``ids``."""
    with runtime.db.transaction() as session:
        prepared = claim(session=session, runtime=runtime, ids=ids, now=now or utcnow())
    return send_claimed(runtime, prepared, now=now)


def send_claimed(
    runtime: Runtime, prepared: list[Prepared], *, now: datetime | None = None
) -> dict[str, int]:
    """Send and record messages whose claim is committed."""
    if prepared:
        killpoints.reached("send.claimed")
    counts: Counter[str] = Counter()
    with closing(deliver(runtime, prepared)) as outcomes:
        for results in outcomes:
            with runtime.db.transaction() as session:
                counts.update(record(session=session, runtime=runtime, results=results, now=now or utcnow()))
            killpoints.reached("send.recorded")
    return dict(counts)


def reconcile(runtime: Runtime, ids: list[int], *, now: datetime | None = None) -> dict[str, int]:
    """Settle sends whose outcome was never recorded: found at the provider -> sent, absent -> send again."""
    now = now or utcnow()
    stale_before = now - timedelta(seconds=runtime.config.sending_stale_seconds)
    with runtime.db.transaction() as session:
        rows = [
            r
            for r in _lock_rows(session, ids, (SENDING,))
            if r.sending_started_at is not None and r.sending_started_at <= stale_before
        ]
        pending = [(r.id, r.channel, r.recipient, r.body, r.sending_started_at) for r in rows]
    verdicts = {send[0]: _ask_provider(runtime, *send) for send in pending}
    counts = {"found": 0, "resend": 0, "unknown": 0}
    with runtime.db.transaction() as session:
        for row in _lock_rows(session, list(verdicts), (SENDING,)):
            verdict, ref, status = verdicts[row.id]
            counts[verdict] += 1
            _settle(row, verdict=verdict, ref=ref, status=status, now=now)
            log.info("reconciled an interrupted send", extra={"message_id": row.id, "verdict": verdict})
    return counts


def _ask_provider(
    runtime: Runtime,
    message_id: int,
    channel: str,
    recipient: str | None,
    body: str | None,
    started: datetime | None,
) -> tuple[str, str | None, str | None]:
    """What the provider knows of an interrupted send: ("found", ref, status), "resend" or "unknown"."""
    assert started is not None
    key = message_key(message_id)
    try:
        if channel == SMS:
            assert recipient is not None
            assert body is not None
            lookup = runtime.senders.sms.find(OutgoingSms(key=key, to=recipient, body=body), since=started)
        else:
            lookup = runtime.senders.email.find(key=key, since=started)
    except Exception as exc:  # noqa: BLE001 (asked again later; logged by type: errors name the number)
        log.warning(
            "could not check an interrupted send",
            extra={"message_id": message_id, "error": type(exc).__name__},
        )
        return ("unknown", None, None)
    if lookup is not None and lookup.found:
        return ("found", lookup.provider_ref, lookup.provider_status)
    return ("resend", None, "cannot tell" if lookup is None else None)


def _settle(row: Message, *, verdict: str, ref: str | None, status: str | None, now: datetime) -> None:
    """Record on a locked row what the provider said about its interrupted send."""
    row.updated_at = now
    if verdict == "found":
        row.status, row.sent_at, row.provider_ref = SENT, now, ref
        row.delivery_status, row.reason = (
            status,
            "sent (confirmed with the provider after an interrupted send)",
        )
    elif verdict == "resend":
        row.status, row.due_at = PLANNED, now
        row.reason = (
            "sending again after an interrupted send (same Message-ID)"
            if status == "cannot tell"
            else "sending again: the interrupted send never reached the provider"
        )
    elif now > row.expires_at:
        row.status, row.reason = FAILED, "outcome unknown: the provider could not be asked in time"
    else:
        row.queued_at = now  # ask again after another stale period
