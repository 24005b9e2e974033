"""Shapes of the readiness API: a day's sessions and the day-sheet links staff hand out."""

from __future__ import annotations

from marshmallow import Schema, fields

from services.booking.schemas import AttendanceOut, EscortStateOut, Strict
from shared.fields import Day, Id


class ReadinessFilter(Strict):
    """Which day's sessions (in the clinic's zone), of which clinic, optionally of one provider."""

    clinic_id = Id(required=True, strict=False)
    day = Day(required=True)
    provider_id = Id(strict=False)


class ReadinessOut(Schema):
    """One session of the day with its attendance and flags (no health details, no checklist answers)."""

    booking_id = fields.UUID()
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    provider_id = fields.Integer()
    provider_name = fields.String()
    chair = fields.String(allow_none=True, metadata={"description": "the chair or room held, if any"})
    appointment_type = fields.String()
    patient_first_name = fields.String()
    attendance = fields.Nested(AttendanceOut)
    checklist = fields.String(
        allow_none=True,
        metadata={
            "description": "the day-before safety check: clear, call (the clinic calls the patient) or "
            "unanswered; null when the visit has no checklist. Never the answers."
        },
    )
    escort = fields.Nested(
        EscortStateOut,
        metadata={
            "description": "not_needed, missing, unconfirmed or confirmed (when, sms or staff); never the "
            "escort's name or number"
        },
    )
    changed_at = fields.AwareDateTime(
        metadata={"description": "the last change of the booking, its attendance, safety check or escort"}
    )


class DaySheetLinkIn(Strict):
    """A day-sheet link for one clinic's day (and one provider's sessions, if given)."""

    clinic_id = Id(required=True)
    day = Day(required=True)
    provider_id = Id()


class DaySheetLinkOut(Schema):
    """A signed link to the day sheet page; it works until the day ends in the clinic's zone."""

    url = fields.String()
    expires_at = fields.AwareDateTime()
    clinic_id = fields.Integer()
    day = fields.Date()
    provider_id = fields.Integer(allow_none=True)
