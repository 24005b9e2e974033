"""Booking events as the booking service publishes them, for notify tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared import events

CLINIC = events.ClinicRef(
    slug="demo-clinic",
    name="Demo Ketamine Clinic",
    time_zone="America/New_York",
    address="200 Demo Avenue, Suite 3, Brooklyn, NY 11201",
    phone="+17185550100",
    id=7,
)
TYPES = {
    "video-consultation": events.AppointmentTypeRef(
        id=1,
        slug="video-consultation",
        name="Video consultation",
        mode="video",
        duration_minutes=45,
        reminder_protocol="video-consultation",
    ),
    "infusion-session": events.AppointmentTypeRef(
        id=2,
        slug="infusion-session",
        name="In-clinic infusion session",
        mode="in_person",
        duration_minutes=60,
        reminder_protocol="infusion-session",
        location=CLINIC.address,
    ),
    "follow-up": events.AppointmentTypeRef(
        id=3,
        slug="follow-up",
        name="Follow-up by video",
        mode="video",
        duration_minutes=20,
        reminder_protocol="follow-up",
    ),
}
ESCORT_PHONE = "+14155550123"
RECOVERY = timedelta(minutes=60)
PROVIDER = events.ProviderRef(
    id=1, name="Dr. Maya Chen", email="maya@example.com", time_zone="America/New_York"
)


@dataclass
class Booking:
    """A booking as the booking service holds it; each change yields the event it would publish."""

    start: datetime
    kind: str = "video-consultation"
    phone: str | None = "+14155552671"
    email: str = "alex@example.com"
    sms_consent: bool = True
    time_zone: str = "Europe/London"
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    version: int = 1
    status: str = "confirmed"
    patient_id: uuid.UUID = field(default_factory=uuid.uuid4)
    patient_name: str = "Alex Demo"
    language: str = "en"
    provider: events.ProviderRef = PROVIDER
    course: events.CourseRef | None = None
    # Set while a whole-course change is being made: the course event whose one notice covers this change.
    course_change: uuid.UUID | None = None
    language: str = "en"
    # The escort as the booking service keeps it; a confirmation counts for the version it was made at.
    escort: events.EscortRef | None = None
    escort_confirmed_version: int | None = None
    # Whether the type requires an escort (the demo infusion's does; off by default so other plans stay as
    # they are).
    requires_escort: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=TYPES[self.kind].duration_minutes)

    def snapshot(self) -> events.BookingSnapshot:
        return events.BookingSnapshot(
            id=self.id,
            version=self.version,
            status=self.status,
            start=self.start,
            end=self.end,
            clinic=CLINIC,
            appointment_type=replace(TYPES[self.kind], requires_escort=self.requires_escort),
            provider=self.provider,
            patient=events.PatientRef(
                id=self.patient_id,
                name=self.patient_name,
                email=self.email,
                phone=self.phone,
                time_zone=self.time_zone,
                sms_consent=self.sms_consent,
                language=self.language,
            ),
            course=self.course,
            escort=self.escort_ref(),
        )

    def escort_ref(self) -> events.EscortRef | None:
        """The escort as events carry it: picked up after an hour's recovery, confirmed for this version."""
        if self.escort is None:
            return None
        counts = self.escort_confirmed_version == self.version
        return replace(
            self.escort,
            pickup_at=self.end + RECOVERY,
            confirmed_at=self.escort.confirmed_at if counts else None,
            confirmed_how=self.escort.confirmed_how if counts else None,
        )

    def give_escort(
        self, *, at: datetime, first_name: str = "Sam", phone: str = ESCORT_PHONE
    ) -> dict[str, Any]:
        """A new escort (a new id, not confirmed), and its ``booking.escort_changed``."""
        self.escort = events.EscortRef(
            id=uuid.uuid4(),
            first_name=first_name,
            phone=phone,
            patient_first_name=self.patient_name.split()[0],
            agreed_at=at,
            pickup_at=self.end + RECOVERY,
        )
        self.escort_confirmed_version = None
        return self.escort_changed(at=at)

    def remove_escort(self, *, at: datetime) -> dict[str, Any]:
        self.escort = None
        return self.escort_changed(at=at)

    def confirm_escort(self, *, at: datetime, how: str = "staff") -> dict[str, Any]:
        assert self.escort is not None
        self.escort = replace(self.escort, confirmed_at=at, confirmed_how=how)
        self.escort_confirmed_version = self.version
        return self.escort_changed(at=at)

    def escort_changed(self, *, at: datetime) -> dict[str, Any]:
        return events.dump_event(
            events.BookingEvent(type=events.BOOKING_ESCORT_CHANGED, booking=self.snapshot(), occurred_at=at)
        )

    def confirmed(self, *, at: datetime) -> dict[str, Any]:
        return events.dump_event(
            events.BookingEvent(
                type=events.BOOKING_CONFIRMED,
                booking=self.snapshot(),
                occurred_at=at,
                course_change=self.course_change,
            )
        )

    def reschedule(self, start: datetime, *, at: datetime) -> dict[str, Any]:
        previous = events.TimeRange(start=self.start, end=self.end)
        self.start = start
        self.version += 1
        return events.dump_event(
            events.BookingEvent(
                type=events.BOOKING_RESCHEDULED,
                booking=self.snapshot(),
                occurred_at=at,
                previous=previous,
                course_change=self.course_change,
            )
        )

    def cancel(self, *, at: datetime, by: str = "patient") -> dict[str, Any]:
        self.status = "cancelled"
        self.version += 1
        return events.dump_event(
            events.BookingEvent(
                type=events.BOOKING_CANCELLED,
                booking=self.snapshot(),
                occurred_at=at,
                cancelled_by=by,
                course_change=self.course_change,
            )
        )

    def links_ready(self, *, at: datetime, version: int | None = None) -> dict[str, Any]:
        v = version or self.version
        return events.dump_event(
            events.LinksReadyEvent(
                booking_id=self.id,
                booking_version=v,
                patient_join_url=f"http://127.0.0.1:8003/join/patient-{self.id.hex[:8]}-v{v}",
                provider_join_url=f"http://127.0.0.1:8003/join/provider-{self.id.hex[:8]}-v{v}",
                opens_at=self.start - timedelta(minutes=15),
                closes_at=self.end + timedelta(minutes=30),
                occurred_at=at,
            )
        )

    def copy(self) -> Booking:
        return replace(self)


def course_sessions(first: datetime, *, count: int = 6, gap: timedelta = timedelta(days=2)) -> list[Booking]:
    """A course of ``count`` infusion sessions, ``gap`` apart, as the booking service books them."""
    course_id = uuid.uuid4()
    return [
        Booking(
            start=first + n * gap,
            kind="infusion-session",
            course=events.CourseRef(id=course_id, index=n + 1, sessions=count),
        )
        for n in range(count)
    ]


def course_change(
    sessions: list[Booking], change: str, *, at: datetime, make: str = "", by: str | None = None, **kw: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A whole-course change: the ``course.changed`` event and each session's own event, carrying its id.

    ``make`` names the session change (``confirmed``, ``cancel``, ``reschedule``; default from ``change``);
    ``kw`` goes to it (a reschedule's ``shift``: how far every session moves).
    """
    event_id = uuid.uuid4()
    own = []
    for booking in sessions:
        booking.course_change = event_id
        if change == events.COURSE_BOOKED:
            own.append(booking.confirmed(at=at))
        elif change == events.COURSE_CANCELLED:
            own.append(booking.cancel(at=at, by=by or "staff"))
        else:
            own.append(booking.reschedule(booking.start + kw["shift"], at=at))
        booking.course_change = None
    assert sessions[0].course is not None
    course = events.dump_event(
        events.CourseEvent(
            event_id=event_id,
            course_id=sessions[0].course.id,
            change=change,
            sessions=[
                events.CourseSession(
                    booking_id=b.id, index=b.course.index if b.course else 0, version=b.version
                )
                for b in sessions
            ],
            occurred_at=at,
            cancelled_by=by if change == events.COURSE_CANCELLED else None,
        )
    )
    return course, own
