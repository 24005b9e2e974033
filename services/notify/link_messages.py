"""The patient's current manage link, sent again when they ask for it from an older or cancelled link; or
their course's page link, asked for from an expired one."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from services.notify.models import EMAIL, PLANNED, SKIPPED, SMS, insert_messages
from services.notify.planning import lock_booking
from services.notify.protocols import BOOKED, LINK_STEP_PREFIX, ProtocolBook, Step
from shared import events, links

log = logging.getLogger(__name__)

# A built-in step (no protocol file lists it): its texts are templates/common/link-again.* in each language.
# Urgent: the patient is waiting on the page for it, so it goes at once, in quiet hours too.
LINK_AGAIN = Step(
    key="link-again",
    on=BOOKED,  # unused: planned from booking.link_requested, never from a protocol
    channels=(SMS, EMAIL),
    template="common/link-again",
    urgent=True,
    calendar=False,
)
# The same for a course's page link (the event names the course): the course's own wording and link.
COURSE_LINK_AGAIN = dataclasses.replace(
    LINK_AGAIN, key="course-link-again", template="common/course-link-again"
)
BUILT_IN_STEPS = (LINK_AGAIN, COURSE_LINK_AGAIN)
# Its plan rows: still link rows (any version, never re-planned), told apart by this prefix.
COURSE_LINK_PREFIX = f"{LINK_STEP_PREFIX}course:"
# Asked for now: a link that could not go within a day is no longer what the patient is waiting for.
LIFETIME = timedelta(days=1)


def is_link_step(step: str) -> bool:
    """Whether a plan row is a link sent again (rendered from the newest booking copy, any version)."""
    return step.startswith(LINK_STEP_PREFIX)


def step_of(row_step: str) -> Step:
    """The built-in step a link row is rendered from: a course's link or a booking's."""
    return COURSE_LINK_AGAIN if row_step.startswith(COURSE_LINK_PREFIX) else LINK_AGAIN


def plan(*, session: Session, book: ProtocolBook, event: events.LinkRequestedEvent, now: datetime) -> int:
    """Plan the SMS and email carrying the booking's current link; the rows added."""
    copy = lock_booking(session, event.booking_id)
    if copy is None:
        # The booking's own events have not reached notify yet: retried (the event job's retries) until then.
        raise LookupError(f"booking {event.booking_id} is not known to notify yet")
    if event.course_id is not None and str((copy.snapshot.get("course") or {}).get("id")) != str(
        event.course_id
    ):
        raise LookupError(
            f"booking {event.booking_id} is not known to notify as a session of that course yet"
        )
    patient = copy.snapshot["patient"]
    protocol = book.get(copy.protocol)
    expires_at = min(now + LIFETIME, copy.end_at + links.MANAGE_LINK_GRACE)
    rows = []
    for channel in LINK_AGAIN.channels:
        status, reason = PLANNED, ""
        if now >= expires_at:
            status, reason = SKIPPED, "too late: even the current link has expired"
        elif channel == SMS and not patient.get("phone"):
            status, reason = SKIPPED, "the patient gave no mobile number"
        elif channel == SMS and not patient.get("sms_consent"):
            status, reason = SKIPPED, "the patient did not consent to SMS"
        rows.append(_row(copy.id, copy.version, event, protocol.slug, protocol.version, channel, now))
        rows[-1].update(status=status, reason=reason, expires_at=max(expires_at, now))
    added = insert_messages(session, rows)
    log.info("planned the current link again", extra={"booking_id": str(copy.id), "rows": len(added)})
    return len(added)


def _row(
    booking_id: Any,
    version: int,
    event: events.LinkRequestedEvent,
    protocol: str,
    protocol_version: int,
    channel: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "booking_id": booking_id,
        "booking_version": version,
        "step": f"{COURSE_LINK_PREFIX if event.course_id else LINK_STEP_PREFIX}{event.event_id}",
        "channel": channel,
        "protocol": protocol,
        "protocol_version": protocol_version,
        "urgent": LINK_AGAIN.urgent,
        "due_at": now,
        "status": PLANNED,
        "reason": "",
        "blocked_on": None,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
