"""Tables of the checkins service: its copy of each session, the planned check-ins, answers, flags, alerts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import GUID, NAMING_CONVENTION, BigIntKey, UTCDateTime
from shared.delivery import DeliveryMixin
from shared.inbox import ProcessedEventMixin
from shared.timeutil import utcnow

CONFIRMED = "confirmed"
CANCELLED = "cancelled"

# Check-in states: planned -> sent -> started -> completed; cancelled and expired are final.
PLANNED = "planned"
SENT = "sent"
STARTED = "started"
COMPLETED = "completed"
EXPIRED = "expired"
OPEN = (PLANNED, SENT, STARTED)
CHECKIN_STATUSES = (PLANNED, SENT, STARTED, COMPLETED, CANCELLED, EXPIRED)

# What a booking event did, as the timeline's history lists it; and the escort's state it left.
BOOKED, MOVED, ESCORT_CHANGED = "booked", "rescheduled", "escort"
NO_ESCORT, ESCORT_GIVEN, ESCORT_CONFIRMED = "none", "given", "confirmed"

SELF_HARM = "self-harm"
RISE = "rise"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProcessedEvent(ProcessedEventMixin, Base):
    """Events this service has handled, so a redelivered job changes nothing."""

    __tablename__ = "processed_events"


class CheckinDelivery(DeliveryMixin, Base):
    """Whether notify has acknowledged each ``checkin.*`` event (shared/delivery.py)."""

    __tablename__ = "event_deliveries"


class Patient(Base):
    """A patient as this service knows them: an id from the booking events, and whether they stopped."""

    __tablename__ = "patients"

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    clinic_slug: Mapped[str] = mapped_column(String(64))
    time_zone: Mapped[str] = mapped_column(String(64))
    # The language of the patient's pages, from the booking events (a code, not personal data).
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    # Set when the patient stopped check-ins (appointment messages are notify's and go on).
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Random: carried in every timeline link of this patient; replacing it stops the old links.
    timeline_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SessionCopy(Base):
    """The newest version of a booking this service has seen (the sessions check-ins are timed from)."""

    __tablename__ = "sessions"
    __table_args__ = (CheckConstraint("status IN ('confirmed', 'cancelled')", name="status"),)

    booking_id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("patients.id"), index=True)
    type_slug: Mapped[str] = mapped_column(String(64))
    type_name: Mapped[str] = mapped_column(String(120))
    provider_id: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "Session ``course_index`` of ``course_sessions``" if of a course (an index past the count: a booster).
    course_index: Mapped[int | None] = mapped_column(Integer)
    course_sessions: Mapped[int | None] = mapped_column(Integer)
    correlation_id: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SessionChange(Base):
    """One booking event as the timeline lists it: booked, moved, cancelled, the escort's state (no names)."""

    __tablename__ = "session_changes"

    event_id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("patients.id"), index=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(GUID)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    previous_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    # Whether the booking had an escort and whether they confirmed (sms, staff): never who they are.
    escort: Mapped[str] = mapped_column(String(16), default=NO_ESCORT)
    escort_confirmed_how: Mapped[str | None] = mapped_column(String(8))


class Checkin(Base):
    """One check-in of a plan: an instrument, for one patient, timed from one session."""

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("patient_id", "plan_step", "booking_id"),
        CheckConstraint(
            "status IN ('planned', 'sent', 'started', 'completed', 'cancelled', 'expired')", name="status"
        ),
        # The scheduler's question: which open check-ins are due (or past their expiry)?
        Index("ix_checkins_due", "status", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("patients.id"), index=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("sessions.booking_id"))
    booking_version: Mapped[int] = mapped_column(Integer)
    plan: Mapped[str] = mapped_column(String(64))
    plan_step: Mapped[str] = mapped_column(String(64))
    instrument: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=PLANNED)
    link_secret: Mapped[str] = mapped_column(String(64))
    # The checkin.requested event of the current send (kept, so a re-send is the same event).
    event_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int | None] = mapped_column(Integer)
    band: Mapped[str | None] = mapped_column(String(32))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Answer(Base):
    """One answered item of a check-in (a page per item, so a check-in can be left and resumed)."""

    __tablename__ = "answers"

    checkin_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("checkins.id"), primary_key=True)
    item: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(8), default="page")
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Flag(Base):
    """Something the provider must see: thoughts of self-harm, or a score that rose past the threshold."""

    __tablename__ = "flags"
    __table_args__ = (
        UniqueConstraint("checkin_id", "kind"),
        CheckConstraint("kind IN ('self-harm', 'rise')", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("patients.id"), index=True)
    checkin_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("checkins.id"))
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Alert(Base):
    """A safety alert to on-call staff (one per check-in), the outbox of its ``checkin.alert`` event."""

    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    checkin_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("checkins.id"), unique=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("patients.id"), index=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(GUID)
    link_secret: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[uuid.UUID] = mapped_column(GUID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertAck(Base):
    """The acknowledgement trail of an alert: who took it, when, and what they noted."""

    __tablename__ = "alert_acks"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("alerts.id"), index=True)
    by: Mapped[str] = mapped_column(String(120))
    via: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
