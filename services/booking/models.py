"""Tables of the booking service."""

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
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

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
    # A patient may hold one visit of this type a day (the clinic's day); false: a second is booked with a
    # warning on the pages (issue 17 point 8).
    one_per_day: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A resource (chair, room) of this kind is held from the start for the visit plus recovery; null: none.
    resource_kind: Mapped[str | None] = mapped_column(String(64))
    recovery_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The provider is held only for the first N minutes (null: the whole visit), so one provider can
    # stagger patients across chairs.
    provider_minutes: Mapped[int | None] = mapped_column(Integer)
    # The patient must not drive home: a support person (escort) picks them up after recovery. A booking may
    # be made without one (patients often arrange it later); staff see "escort missing" until one is given.
    requires_escort: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
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


class WeeklyWindow:
    """Columns of a weekly window of wall-clock time: a weekday and a start before an end."""

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
            CheckConstraint("start_time < end_time", name="order"),
        )

    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 = Monday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)


class AvailabilityRule(WeeklyWindow, Base):
    """A weekly window of availability, in the provider's own time zone."""

    __tablename__ = "availability_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), index=True)


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
    # The language of the pages and of every message to the patient (services/booking/languages.py).
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("status IN ('confirmed', 'cancelled')", name="status"),
        CheckConstraint("start_at < end_at", name="order"),
        Index("ix_bookings_provider_block", "provider_id", "block_start"),
        UniqueConstraint("course_id", "course_index"),
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
    # A session of a treatment course: the course and the session's number in it (1-based); else null.
    course_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("courses.id"), index=True)
    course_index: Mapped[int | None] = mapped_column(Integer)

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    provider: Mapped[Provider] = relationship(lazy="joined")
    appointment_type: Mapped[AppointmentType] = relationship(lazy="joined")
    patient: Mapped[Patient] = relationship(lazy="joined")

    intake: Mapped[Intake | None] = relationship(back_populates="booking", lazy="select")
    course: Mapped[Course | None] = relationship(lazy="select")
    # The chair or room the booking holds, if its type needs one (booking_resources; never in its version).
    resource: Mapped[Resource | None] = relationship(
        secondary="booking_resources", viewonly=True, lazy="select", uselist=False
    )
    # The support person taking the patient home (escorts; never in its version). Written through escorts.py.
    escort: Mapped[Escort | None] = relationship(viewonly=True, lazy="select", uselist=False)

    # Every UPDATE checks and raises the version, so two concurrent changes cannot both win.
    __mapper_args__ = {"version_id_col": version}


class CourseTemplate(Base):
    """A clinic's plan of treatment: which type, how many sessions, how they are spaced, what follows."""

    __tablename__ = "course_templates"
    __table_args__ = (
        UniqueConstraint("clinic_id", "slug"),
        CheckConstraint("sessions > 0", name="sessions"),
        CheckConstraint("same_provider IN ('required', 'preferred')", name="same_provider"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    session_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"))
    sessions: Mapped[int] = mapped_column(Integer)
    min_hours_between: Mapped[int] = mapped_column(Integer, default=0)
    max_per_week: Mapped[int | None] = mapped_column(Integer)
    within_days: Mapped[int | None] = mapped_column(Integer)
    same_provider: Mapped[str] = mapped_column(String(16), default="preferred")
    booster_type_id: Mapped[int | None] = mapped_column(ForeignKey("appointment_types.id"))
    booster_interval_days: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    session_type: Mapped[AppointmentType] = relationship(foreign_keys=[session_type_id], lazy="joined")
    booster_type: Mapped[AppointmentType | None] = relationship(foreign_keys=[booster_type_id])


class Course(Base):
    """One patient's course under a template: its sessions are bookings carrying its id and their index."""

    __tablename__ = "courses"

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("course_templates.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("patients.id"), index=True)
    # Set when the course ends early (cancelled from some session on): when, by whom and why.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_by: Mapped[str | None] = mapped_column(String(16))
    stop_reason: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    template: Mapped[CourseTemplate] = relationship(lazy="joined")
    patient: Mapped[Patient] = relationship(lazy="joined")
    sessions: Mapped[list[Booking]] = relationship(
        order_by="Booking.course_index", viewonly=True, lazy="select"
    )


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


# The day-before safety check's flag, the only part of it anyone but the patient sees.
CHECK_CLEAR = "clear"
CHECK_CALL = "call"
CHECK_UNANSWERED = "unanswered"


class DayCheck(Base):
    """A patient's answers to the day-before safety checklist of one version of a booking.

    Health details (substance use, medication): shown back to the patient only; staff, events, messages,
    logs and calendars see the ``flag`` at most. Its own table for the reason attendance has one: answering
    must not raise the booking's version. Answers recorded for an older version read as unanswered.
    """

    __tablename__ = "day_checks"
    __table_args__ = (CheckConstraint("flag IN ('clear', 'call')", name="flag"),)

    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    booking_version: Mapped[int] = mapped_column(Integer)
    # Which checklist (the type's reminder protocol) and its version the answers are to.
    checklist: Mapped[str] = mapped_column(String(64))
    checklist_version: Mapped[int] = mapped_column(Integer)
    answers: Mapped[dict[str, bool]] = mapped_column(JSONDocument)
    flag: Mapped[str] = mapped_column(String(16))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Escort(Base):
    """The support person who takes the patient home after a session, for one booking.

    Its own table, like attendance: giving or changing an escort must not raise the booking's version. A
    confirmation counts for the booking version it was given for (a moved visit needs a new one).
    """

    __tablename__ = "escorts"
    __table_args__ = (CheckConstraint("confirmed_how IN ('sms', 'staff')", name="confirmed_how"),)

    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    # A new id (and no confirmation) whenever the phone changes: another person, or another number to ask.
    escort_id: Mapped[uuid.UUID] = mapped_column(GUID, default=uuid.uuid4)
    first_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    # What the escort should call the patient (default: the first word of the patient's name).
    patient_first_name: Mapped[str] = mapped_column(String(100))
    agreed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the patient said the escort agreed
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_how: Mapped[str | None] = mapped_column(String(8))  # sms (their reply) or staff (by phone)
    confirmed_version: Mapped[int | None] = mapped_column(Integer)  # the booking version it was for
    # When this escort (this escort_id) was given: an SMS reply from before it was about an earlier one.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
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


class PatientDayClaim(Base):
    """A patient's visit of a one-per-day type on a day (the clinic's): the key refuses a second."""

    __tablename__ = "patient_day_claims"

    patient_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("patients.id"), primary_key=True)
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )


class Resource(Base):
    """Something a visit holds besides the provider's time: an infusion chair, a room."""

    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("clinic_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    hours: Mapped[list[ResourceHours]] = relationship(
        cascade="all, delete-orphan", order_by="(ResourceHours.weekday, ResourceHours.start_time)"
    )
    closures: Mapped[list[ResourceClosure]] = relationship(
        cascade="all, delete-orphan", order_by="ResourceClosure.day"
    )


class ResourceHours(WeeklyWindow, Base):
    """A weekly window in which a resource can be used, in its clinic's time zone."""

    __tablename__ = "resource_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"), index=True)


class ResourceClosure(Base):
    """A date a resource cannot be used (maintenance); bookings already holding it stay."""

    __tablename__ = "resource_closures"

    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reason: Mapped[str] = mapped_column(String(200), default="")


class BookingResource(Base):
    """Which resource a booking holds, and for how long (from its start to the end of recovery).

    Kept apart from the booking's row so that staff moving a booking to another chair does not raise its
    version (which would void the patient's manage link and announce a change the patient never sees).
    """

    __tablename__ = "booking_resources"
    __table_args__ = (Index("ix_booking_resources_resource_start", "resource_id", "start_at"),)

    booking_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


class ResourceClaim(Base):
    """One 5-minute granule of a resource held by one booking: the resource's double-booking guard."""

    __tablename__ = "resource_claims"

    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
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
