"""Tables of the notify service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from shared.db import GUID, NAMING_CONVENTION, BigIntKey, JSONDocument, UTCDateTime, insert_of
from shared.delivery import DeliveryMixin
from shared.inbox import ProcessedEventMixin
from shared.timeutil import utcnow

SMS = "sms"
EMAIL = "email"
CHANNELS = (SMS, EMAIL)

# Message states. planned -> queued -> sending -> sent is the happy path; skipped, cancelled and failed are
# final and always carry a reason.
PLANNED = "planned"  # waiting for its moment (or for the join link: ``blocked_on``)
QUEUED = "queued"  # due, handed to Redis in job ``job_id``
SENDING = "sending"  # claimed by a worker; the provider call may be in flight
SENT = "sent"  # the provider accepted it (``provider_ref``); delivery_status follows from callbacks
SKIPPED = "skipped"  # deliberately not sent (past at booking time, no consent, opted out, too late)
CANCELLED = "cancelled"  # the booking was cancelled or moved before it went
FAILED = "failed"  # the provider refused it for good, or retries ran out
STATUSES = (PLANNED, QUEUED, SENDING, SENT, SKIPPED, CANCELLED, FAILED)
PENDING = (PLANNED, QUEUED)
FINAL = (SENT, SKIPPED, CANCELLED, FAILED)

WAITING_FOR_JOIN_LINK = "join_link"

# The provider's calendar invites (services/notify/calendar/invites.py): plan rows with these reserved steps.
INVITE = "provider-invite"  # from every booking event: REQUEST (confirmed, rescheduled) or CANCEL
INVITE_LINK = "provider-invite-link"  # from consult.links_ready: REQUEST carrying the provider's join link
# From a whole-course change: one email to each provider, an iTIP calendar per session (planned with the
# course notice, on that provider's first listed session; not bound to its version, like course messages).
COURSE_INVITE = "provider-course-invite"
INVITE_STEPS = (INVITE, INVITE_LINK, COURSE_INVITE)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProcessedEvent(ProcessedEventMixin, Base):
    """Events this service has handled, so a redelivered job changes nothing."""

    __tablename__ = "processed_events"


class BookingCopy(Base):
    """The newest version of a booking this service has seen, from the fat booking events."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("status IN ('confirmed', 'cancelled')", name="status"),
        # The provider's calendar feed: this provider's bookings ending after a cutoff.
        Index("ix_bookings_provider_end", "provider_id", "end_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    protocol: Mapped[str] = mapped_column(String(64))
    # When the booking service made this version (the event's occurred_at): reminders due before it are
    # skipped on purpose, reminders due after it are sent even if this service is running late.
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The snapshot as the event carried it (contact details included; they never go to logs).
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class JoinLink(Base):
    """The join links the consult service issued for one version of a video booking."""

    __tablename__ = "join_links"

    booking_id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    booking_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_url: Mapped[str] = mapped_column(Text)
    # The provider's join link: the LOCATION of their calendar invite and feed entry.
    provider_url: Mapped[str] = mapped_column(Text)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """One planned message: a protocol step, on one channel, for one version of one booking."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("booking_id", "step", "channel", "booking_version", name="uq_messages_send_key"),
        CheckConstraint(
            "status IN ('planned', 'queued', 'sending', 'sent', 'skipped', 'cancelled', 'failed')",
            name="status",
        ),
        CheckConstraint("channel IN ('sms', 'email')", name="channel"),
        Index("ix_messages_due", "status", "due_at"),
        Index("ix_messages_provider_ref", "provider_ref"),
        # An SMS reply is matched to the bookings whose messages went to its sender (replies.py).
        Index("ix_messages_recipient", "recipient"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("bookings.id"), index=True)
    booking_version: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    protocol: Mapped[str] = mapped_column(String(64))
    protocol_version: Mapped[int] = mapped_column(Integer)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # After this moment the message is no use any more (the visit started or ended): skipped, not sent late.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=PLANNED)
    reason: Mapped[str] = mapped_column(Text, default="")
    blocked_on: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(64))
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sending_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What went out, fixed when the send was claimed: the reconciliation after a crash looks for exactly this.
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    delivery_status: Mapped[str | None] = mapped_column(String(32))
    delivery_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_code: Mapped[str | None] = mapped_column(String(32))
    # A provider's calendar invite: the SEQUENCE it carried when it was last claimed.
    sequence: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CourseNotice(Base):
    """One whole-course change (a ``course.changed`` event) and the one message that tells the patient.

    Its sessions' booking events carry its id and may arrive before it: whichever of them and the course event
    comes first creates the row, and the last one to arrive plans the messages, under this row's lock.
    """

    __tablename__ = "course_notices"
    __table_args__ = (Index("ix_course_notices_anchor", "anchor_id", "anchor_version"),)

    event_id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    # From the course event (null while only sessions' events have named it).
    course_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    change: Mapped[str | None] = mapped_column(String(16))
    sessions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument)
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The session whose plan rows carry the message (the first listed), at the version the change left it.
    anchor_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    anchor_version: Mapped[int | None] = mapped_column(Integer)
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarInvite(Base):
    """The provider's calendar entry of one booking: the last invite claimed for it, and its SEQUENCE.

    Sequences are given out here, under this row's lock, in the transaction that claims the send, so every
    invite that goes carries a higher SEQUENCE than any before it, whatever order events and retries come in.
    """

    __tablename__ = "calendar_invites"

    booking_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("bookings.id"), primary_key=True)
    uid: Mapped[str] = mapped_column(String(255))
    # The highest SEQUENCE given to an invite of this booking (None: no invite was ever claimed).
    sequence: Mapped[int | None] = mapped_column(Integer)
    # The invite that carries it, and what that invite says (a hash of method, recipient and event without
    # DTSTAMP and SEQUENCE): a second invite saying the same is not sent while the first is on its way.
    message_id: Mapped[int | None] = mapped_column(BigIntKey)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProviderFeed(Base):
    """A provider's calendar feed: its links' token version and secret, and the revision of its ETag."""

    __tablename__ = "provider_feeds"

    provider_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    # Random, carried in every feed token and replaced on rotation: a token cannot be made from the provider's
    # id and a signing key alone. NULL only on a row an older release created; the next link issue sets it.
    token_secret: Mapped[str | None] = mapped_column(String(64))
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OptOut(Base):
    """A phone number's SMS opt-out state, from inbound STOP/START and Twilio error 21610."""

    __tablename__ = "sms_opt_outs"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SmsReply(Base):
    """One inbound SMS, once per Twilio MessageSid: what it meant, what we answered, the event it made.

    The row is the outbox of its event (``event_id``, ``published_at``): ``notify.sms_reply``, or
    ``reply.rating`` when it answered a rating ask (``checkin_id``, ``rating``). The text is kept only when no
    keyword understood it (for staff to read); the number is kept so staff can call back. Neither ever goes to
    logs or events.
    """

    __tablename__ = "sms_replies"
    __table_args__ = (
        Index("ix_sms_replies_unpublished", "published_at", "event_id"),
        Index("ix_sms_replies_booking", "booking_id"),
        # The dispatcher's prune: replies received before a cutoff (replies/service.py ``prune``).
        Index("ix_sms_replies_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    phone: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # confirm, change, other or a carrier keyword (stop, start, help); outcome: what was done about it.
    intent: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32), default="")
    booking_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    booking_version: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)  # only when not understood: staff read it
    answer: Mapped[str | None] = mapped_column(Text)  # the same answer goes back to a retried webhook
    event_id: Mapped[uuid.UUID | None] = mapped_column(GUID, unique=True)
    meaning: Mapped[str | None] = mapped_column(String(32))
    correlation_id: Mapped[str] = mapped_column(String(64), default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checkin_id: Mapped[uuid.UUID | None] = mapped_column(GUID)  # a ``reply.rating``: the check-in answered
    rating: Mapped[int | None] = mapped_column(Integer)  # and the number (0-10); never logged


class RatingAsk(Base):
    """A 0-10 rating check-in asked by SMS, open to a numeric reply from ``phone`` until it expires.

    Planned with the check-in's SMS (checkin_messages.py); open once that SMS was sent; closed by the first
    number that comes back (``reply_id``, the inbound SMS whose ``reply.rating`` carries it), or by checkins'
    ``checkin.closed`` (``reply_id`` null: answered by the link, or stopped).
    """

    __tablename__ = "rating_asks"
    __table_args__ = (
        Index("ix_rating_asks_phone", "phone", "expires_at"),
        # The dispatcher's prune (asks expired before a cutoff), and the replies' prune (no ask points at it).
        Index("ix_rating_asks_expires", "expires_at"),
        Index("ix_rating_asks_reply", "reply_id"),
    )

    checkin_id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(GUID)
    phone: Mapped[str] = mapped_column(String(32))
    rating: Mapped[str] = mapped_column(String(16))  # shared.events.RATINGS: which question
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sms_replies.id"))


class ReplyDelivery(DeliveryMixin, Base):
    """Which consumer has acknowledged which reply event (``notify.sms_reply``, ``reply.rating``)."""

    __tablename__ = "event_deliveries"


class OutboxMessage(Base):
    """A message the console senders "sent": what a developer sees on the /outbox page."""

    __tablename__ = "console_outbox"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    # The sender's idempotency key (the plan row's id), so a repeated send is recognised, not doubled.
    message_key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    attachments: Mapped[list[OutboxAttachment]] = relationship(
        order_by="OutboxAttachment.id", cascade="all, delete-orphan", lazy="selectin"
    )


class OutboxAttachment(Base):
    """A file (or a calendar part) of an email in the console outbox."""

    __tablename__ = "console_outbox_attachments"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("console_outbox.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    data: Mapped[bytes] = mapped_column(LargeBinary)


_PLAN_KEY = ["booking_id", "step", "channel", "booking_version"]


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert plan rows, each at most once (the plan's unique key); the ids of those inserted."""
    if not rows:
        return []
    # One cached statement run over the rows (batched into one INSERT by SQLAlchemy's insertmanyvalues):
    # a multi-row .values(rows) would be compiled anew for every booking.
    statement = (
        insert_of(session.get_bind().dialect.name)(Message.__table__)
        .on_conflict_do_nothing(index_elements=_PLAN_KEY)
        .returning(Message.__table__.c.id)
    )
    return list(session.scalars(statement, rows))
