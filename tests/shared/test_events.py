"""The event contract: versioned, validated on the way out, tolerant of added fields on the way in."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from marshmallow import ValidationError

from shared import events


def _event(**changes: Any) -> events.BookingEvent:
    booking = events.BookingSnapshot(
        id=uuid.uuid4(),
        version=2,
        status="confirmed",
        start=datetime(2026, 5, 1, 14, tzinfo=UTC),
        end=datetime(2026, 5, 1, 14, 45, tzinfo=UTC),
        clinic=events.ClinicRef(slug="c", name="Clinic", time_zone="America/New_York"),
        appointment_type=events.AppointmentTypeRef(
            id=1,
            slug="video-consultation",
            name="Video",
            mode="video",
            duration_minutes=45,
            reminder_protocol="video-consultation",
        ),
        provider=events.ProviderRef(
            id=3, name="Dr. P", email="p@clinic.example", time_zone="America/New_York"
        ),
        patient=events.PatientRef(
            id=uuid.uuid4(),
            name="Pat",
            email="pat@example.com",
            phone="+14155552671",
            time_zone="Europe/London",
            sms_consent=True,
        ),
    )
    fields: dict[str, Any] = {"type": events.BOOKING_RESCHEDULED, "booking": booking, "correlation_id": "abc"}
    fields.update(changes)
    return events.BookingEvent(**fields)


def test_round_trip() -> None:
    event = _event(
        previous=events.TimeRange(
            datetime(2026, 4, 30, 9, tzinfo=UTC), datetime(2026, 4, 30, 9, 45, tzinfo=UTC)
        )
    )
    payload = events.dump_event(event)
    assert payload["schema_version"] == 1
    assert payload["booking"]["start"] == "2026-05-01T14:00:00+00:00"
    assert events.load_event(payload) == event


def test_an_escort_travels_with_its_booking() -> None:
    base = _event()
    escort = events.EscortRef(
        id=uuid.uuid4(),
        first_name="Sam",
        phone="+15555550123",
        patient_first_name="Alex",
        agreed_at=datetime(2026, 4, 20, 9, tzinfo=UTC),
        pickup_at=datetime(2026, 5, 1, 16, tzinfo=UTC),
    )
    event = _event(
        type=events.BOOKING_ESCORT_CHANGED, booking=dataclasses.replace(base.booking, escort=escort)
    )
    payload = events.dump_event(event)
    assert payload["booking"]["escort"]["confirmed_at"] is None
    assert events.load_event(payload) == event
    # Events from before escorts load with none.
    del payload["booking"]["escort"]
    assert events.load_event(payload).booking.escort is None


def test_requires_escort_is_optional_so_older_events_load() -> None:
    payload = events.dump_event(_event())
    assert payload["booking"]["appointment_type"]["requires_escort"] is False
    payload["booking"]["appointment_type"]["requires_escort"] = True
    assert events.load_event(payload).booking.appointment_type.requires_escort is True
    del payload["booking"]["appointment_type"]["requires_escort"]  # an event from before the field
    assert events.load_event(payload).booking.appointment_type.requires_escort is False


def test_the_clinic_id_is_optional_so_older_events_load() -> None:
    payload = events.dump_event(_event())
    assert payload["booking"]["clinic"]["id"] is None
    payload["booking"]["clinic"]["id"] = 7
    assert events.load_event(payload).booking.clinic.id == 7
    del payload["booking"]["clinic"]["id"]
    assert events.load_event(payload).booking.clinic.id is None


def test_unknown_fields_are_ignored_so_producers_can_add_optional_ones() -> None:
    payload = events.dump_event(_event())
    payload["new_top_level"] = 1
    payload["booking"]["patient"]["preferred_language"] = "fr"
    assert events.load_event(payload).booking.patient.phone == "+14155552671"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("schema_version",), 2),
        (("type",), "booking.teleported"),
        (("booking", "version"), 0),
        (("booking", "start"), "2026-05-01T14:00:00"),
        (("booking", "appointment_type", "mode"), "phone"),
    ],
)
def test_contract_breaks_are_refused(path: tuple[str, ...], value: Any) -> None:
    payload = copy.deepcopy(events.dump_event(_event()))
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValidationError):
        events.load_event(payload)


def test_dump_refuses_an_invalid_event() -> None:
    with pytest.raises(ValidationError):
        events.dump_event(_event(type="booking.unknown"))
