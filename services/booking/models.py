"""Tables of the booking service.

Double booking is prevented by the database, not by a check-then-insert: a booking claims every 5-minute
granule of its blocked time (start minus buffer-before to end plus buffer-after) in ``slot_claims``, whose
primary key is (provider, granule). Two bookings that overlap for a provider collide on that key in any
engine, under any timing, and the second transaction fails as a whole. Daily limits work the same way with
numbered ``day_claims``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import GUID, NAMING_CONVENTION, BigIntKey, JSONDocument, UTCDateTime
from shared.delivery import DeliveryMixin
from shared.inbox import ProcessedEventMixin
from shared.timeutil import utcnow

GRANULE_MINUTES = 5


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    time_zone: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Raised with every change to this provider's free time; keys the slot-search cache (see search.py).
    schedule_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Raised only when the provider's hours change (weekly rules, overrides, time zone); keys the cache of
    # the hours a booking is checked against, which bookings themselves do not invalidate.
    hours_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    appointment_types: Mapped[list[AppointmentType]] = relationship(
        secondary="provider_appointment_types", back_populates="providers", order_by="AppointmentType.id"
    )


class AppointmentType(Base):
    __tablename__ = "appointment_types"
    __table_args__ = (
        UniqueConstraint("clinic_id", "slug"),
        CheckConstraint("mode IN ('video', 'in_person')", name="mode"),
        CheckConstraint("duration_minutes > 0", name="duration"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    duration_minutes: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    slot_interval_minutes: Mapped[int] = mapped_column(Integer, default=15)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=0)
    horizon_days: Mapped[int] = mapped_column(Integer, default=60)
    daily_limit: Mapped[int | None] = mapped_column(Integer)
    location: Mapped[str] = mapped_column(Text, default="")
    reminder_protocol: Mapped[str] = mapped_column(String(64))
    # Patients may reschedule or cancel online until this many hours before the start; staff always may.
    change_cutoff_hours: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Whether booking this type asks the short first-consultation intake.
    asks_intake: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    providers: Mapped[list[Provider]] = relationship(
        secondary="provider_appointment_types", back_populates="appointment_types"
    )


class ProviderAppointmentType(Base):
    """Which provider offers which appointment type."""

    __tablename__ = "provider_appointment_types"

    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True)
    appointment_type_id: Mapped[int] = mapped_column(
        ForeignKey("appointment_types.id", ondelete="CASCADE"), primary_key=True
    )


class AvailabilityRule(Base):
    """A weekly window of availability, in the provider's own time zone."""

    __tablename__ = "availability_rules"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("start_time < end_time", name="order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 = Monday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)


class AvailabilityOverride(Base):
    """A date whose hours differ from the weekly rules: closed, or open in the listed windows only."""

    __tablename__ = "availability_overrides"
    __table_args__ = (
        CheckConstraint(
            "(closed AND start_time IS NULL AND end_time IS NULL) OR "
            "(NOT closed AND start_time IS NOT NULL AND end_time IS NOT NULL AND start_time < end_time)",
            name="shape",
        ),
        Index("ix_availability_overrides_provider_day", "provider_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    start_time: Mapped[time | None] = mapped_column(Time)
    end_time: Mapped[time | None] = mapped_column(Time)


class Patient(Base):
    __tablename__ = "patients"
    # A returning patient is found by clinic and lower-cased email on every booking.
    __table_args__ = (Index("ix_patients_clinic_email", "clinic_id", "email_key"),)

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    time_zone: Mapped[str] = mapped_column(String(64))
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("status IN ('confirmed', 'cancelled')", name="status"),
        CheckConstraint("start_at < end_at", name="order"),
        Index("ix_bookings_provider_block", "provider_id", "block_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("patients.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The time the provider is unavailable: start/end widened by the type's buffers when booked.
    block_start: Mapped[datetime] = mapped_column(UTCDateTime)
    block_end: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    provider: Mapped[Provider] = relationship(lazy="joined")
    appointment_type: Mapped[AppointmentType] = relationship(lazy="joined")
    patient: Mapped[Patient] = relationship(lazy="joined")

    intake: Mapped[Intake | None] = relationship(back_populates="booking", lazy="select")

    # Every UPDATE checks and raises the version, so two concurrent changes cannot both win.
    __mapper_args__ = {"version_id_col": version}


# Attendance: nobody answered yet; the patient confirmed (by SMS reply, or to staff by phone); they said they
# will not come; and, on the day, staff saw them arrive or not.
UNCONFIRMED = "unconfirmed"
CONFIRMED = "confirmed"
DECLINED = "declined"
ARRIVED = "arrived"
NO_SHOW = "no_show"
ATTENDANCE_STATES = (UNCONFIRMED, CONFIRMED, DECLINED, ARRIVED, NO_SHOW)


class Attendance(Base):
    """Whether the patient will come (and did) to one version of a booking.

    Its own table, not columns of ``bookings``: a booking's ``version`` rises on every update of its row, and
    an attendance change must not outdate the patient's links or reach notify and consult as a new version.
    A state recorded for an older version reads as unconfirmed (the visit it was about has moved).
    """

    __tablename__ = "attendance"
    __table_args__ = (
        CheckConstraint(
            "state IN ('unconfirmed', 'confirmed', 'declined', 'arrived', 'no_show')", name="state"
        ),
    )

    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    booking_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    # How it was learnt: sms (the patient's reply), phone (staff took it by phone), staff (set by staff).
    source: Mapped[str] = mapped_column(String(16))
    # When the patient said so (an SMS reply's arrival), not when this row was written.
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProcessedEvent(ProcessedEventMixin, Base):
    """Events this service has handled (notify's SMS replies), so a redelivered job changes nothing."""

    __tablename__ = "processed_events"


class Intake(Base):
    """A patient's answers to the first-consultation intake.

    Health details: shown to staff through the staff API only; never copied into events, messages, logs or
    calendar entries.
    """

    __tablename__ = "intakes"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    reasons: Mapped[list[str]] = mapped_column(JSONDocument)
    reason_other: Mapped[str] = mapped_column(Text, default="")
    treatments_tried: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    booking: Mapped[Booking] = relationship(back_populates="intake")


class Invitation(Base):
    """A private booking link a clinic sends to one patient.

    The signed token names only this row's id; what the link allows (type, provider, expiry, single use) and
    the patient's pre-filled details live here, so they never travel readable in a URL.
    """

    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    appointment_type_id: Mapped[int | None] = mapped_column(ForeignKey("appointment_types.id"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))
    single_use: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # name / email / phone to pre-fill, or null.
    prefill: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    appointment_type: Mapped[AppointmentType | None] = relationship(lazy="joined")
    provider: Mapped[Provider | None] = relationship(lazy="joined")
    redemption: Mapped[InvitationRedemption | None] = relationship(lazy="select")


class InvitationRedemption(Base):
    """The one booking a single-use invitation was spent on: the primary key makes a second use fail."""

    __tablename__ = "invitation_redemptions"

    invitation_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("invitations.id", ondelete="CASCADE"), primary_key=True
    )
    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), unique=True
    )
    redeemed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SlotClaim(Base):
    """One 5-minute granule of a provider's time held by one booking."""

    __tablename__ = "slot_claims"

    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )


class DayClaim(Base):
    """One of the N places a provider has for an appointment type on a day (its daily limit)."""

    __tablename__ = "day_claims"

    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), primary_key=True)
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )


class OutboxDelivery(DeliveryMixin, Base):
    """Which consumer has acknowledged which published event (shared/delivery.py)."""

    __tablename__ = "event_deliveries"


class OutboxEvent(Base):
    """An event written in the same transaction as the change it reports, waiting for the relay."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(GUID, unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[uuid.UUID] = mapped_column(GUID, index=True)
    payload: Mapped[dict[str, object]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
