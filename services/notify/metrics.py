"""What the notify service reports on ``/metrics`` besides requests: sends by channel and outcome, delivery
callbacks, the dispatcher's work, and the messages whose moment has come but that have not gone yet.

Error codes are folded into the codes ops act on (Twilio's and SMTP's common ones) and ``other``, so a
provider that invents codes cannot grow the series without bound.
"""

from __future__ import annotations

from prometheus_client import Counter
from sqlalchemy import func, select

from services.notify.models import PENDING, SENDING, WAITING_FOR_JOIN_LINK, Message
from shared.db import get_db
from shared.metrics import age_seconds
from shared.timeutil import utcnow

MESSAGES = Counter(
    "suite_notify_messages",
    "Send attempts by channel and outcome (accepted, retry, permanent, opted_out, unknown) and error code",
    ["channel", "outcome", "error_code"],
)
DELIVERY = Counter(
    "suite_notify_delivery_callbacks",
    "Twilio status callbacks by delivery status and error code",
    ["status", "error_code"],
)
FEED_ANSWERS = Counter(
    "suite_notify_calendar_feed_answers",
    "Provider calendar feed requests by answer: not_modified (304), cached (built earlier by this process),"
    " built, refused (a wrong, rotated or expired link)",
    ["answer"],
)
DISPATCHED = Counter(
    "suite_notify_dispatched_messages",
    "What the dispatcher did: enqueued (due), requeued (their job was lost), reconciling (an interrupted "
    "send), expired (a join link that never came)",
    ["action"],
)

# Twilio: credentials, rate limit, invalid/unroutable/landline numbers, unsubscribed, body too long, the
# delivery failures callbacks report, unregistered A2P traffic; SMTP: temporary and permanent refusals.
KNOWN_ERROR_CODES = frozenset(
    {
        "20003", "20429", "21211", "21408", "21610", "21612", "21614", "21617",
        "30003", "30004", "30005", "30006", "30007", "30008", "30034",
        "401", "403", "429", "500", "502", "503", "504",
        "smtp-421", "smtp-450", "smtp-451", "smtp-452", "smtp-535",
        "smtp-550", "smtp-551", "smtp-552", "smtp-553", "smtp-554",
    }
)  # fmt: skip
DELIVERY_STATUSES = frozenset(
    {"accepted", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled"}
)


def error_label(code: str | None) -> str:
    """``code`` as a metric label: itself when known, ``other`` (or ``smtp-other``) when not, '' for none."""
    if not code:
        return ""
    if code in KNOWN_ERROR_CODES:
        return code
    return "smtp-other" if code.startswith("smtp-") else "other"


def status_label(status: str) -> str:
    """A Twilio delivery status as a metric label (``other`` for one Twilio adds later)."""
    return status if status in DELIVERY_STATUSES else "other"


Samples = dict[tuple[str, str], list[tuple[dict[str, str], float]]]


def read() -> Samples:
    """Messages due and not sent yet (by channel), how late the latest is, those stuck on a join link."""
    now = utcnow()
    with get_db().transaction() as session:
        due = session.execute(
            select(Message.channel, func.count(), func.min(Message.due_at))
            .where(Message.status.in_(PENDING), Message.due_at <= now, Message.blocked_on.is_(None))
            .group_by(Message.channel)
        ).all()
        sending = session.scalar(select(func.count()).select_from(Message).where(Message.status == SENDING))
        waiting = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.status.in_(PENDING),
                Message.blocked_on == WAITING_FOR_JOIN_LINK,
                Message.due_at <= now,
            )
        )
    oldest = min((row[2] for row in due if row[2] is not None), default=None)
    return {
        (
            "suite_notify_due_messages",
            "Messages whose moment has come that have not gone yet (planned or queued), by channel",
        ): [({"channel": channel}, float(count)) for channel, count, _ in due] or [({"channel": "sms"}, 0.0)],
        (
            "suite_notify_oldest_due_age_seconds",
            "How late the most overdue unsent message is (0 when none is due)",
        ): [({}, age_seconds(oldest, now))],
        (
            "suite_notify_sending_messages",
            "Messages claimed by a worker whose provider call is not recorded",
        ): [({}, float(sending or 0))],
        (
            "suite_notify_join_link_overdue_messages",
            "Due join-link messages still waiting for consult's links",
        ): [({}, float(waiting or 0))],
    }
