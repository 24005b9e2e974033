"""Shapes of the staff API that sets a clinic up: clinics, providers, hours, types, invitations.

They check shape and format only.
"""

from __future__ import annotations

import itertools
from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.booking.schemas import Strict, aware, minutes
from shared.events import MODES
from shared.fields import MobileNumber, Slug, TimeZone, WallTime

# --- clinics -------------------------------------------------------------------------------------------


class ClinicIn(Strict):
    slug = fields.String(required=True, validate=Slug)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    time_zone = TimeZone(required=True)
    address = fields.String(load_default="", validate=validate.Length(max=500))
    phone = fields.String(load_default="", validate=validate.Length(max=32))


class ClinicPatch(Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    time_zone = TimeZone()
    address = fields.String(validate=validate.Length(max=500))
    phone = fields.String(validate=validate.Length(max=32))


class ClinicOut(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    time_zone = fields.String()
    address = fields.String()
    phone = fields.String()


# --- providers -----------------------------------------------------------------------------------------


class ProviderIn(Strict):
    clinic_id = fields.Integer(required=True, strict=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True)
    time_zone = TimeZone(required=True)
    appointment_type_ids = fields.List(fields.Integer(strict=True), load_default=list)


class ProviderPatch(Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    email = fields.Email()
    time_zone = TimeZone()
    active = fields.Boolean()
    appointment_type_ids = fields.List(fields.Integer(strict=True))


class ProviderOut(Schema):
    id = fields.Integer()
    clinic_id = fields.Integer()
    name = fields.String()
    email = fields.String()
    time_zone = fields.String()
    active = fields.Boolean()
    appointment_type_ids = fields.Method("_type_ids")

    def _type_ids(self, provider: Any) -> list[int]:
        return [t.id for t in provider.appointment_types]


class ClinicFilter(Strict):
    clinic_id = fields.Integer()


# --- appointment types ---------------------------------------------------------------------------------


class AppointmentTypeIn(Strict):
    clinic_id = fields.Integer(required=True, strict=True)
    slug = fields.String(required=True, validate=Slug)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    duration_minutes = minutes(5, 480, required=True)
    mode = fields.String(required=True, validate=validate.OneOf(MODES))
    buffer_before_minutes = minutes(0, 240, load_default=0)
    buffer_after_minutes = minutes(0, 240, load_default=0)
    slot_interval_minutes = minutes(5, 240, load_default=15)
    min_notice_minutes = fields.Integer(
        strict=True, load_default=0, validate=validate.Range(min=0, max=60 * 24 * 30)
    )
    horizon_days = fields.Integer(strict=True, load_default=60, validate=validate.Range(min=1, max=730))
    daily_limit = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1, max=200)
    )
    location = fields.String(load_default="", validate=validate.Length(max=500))
    reminder_protocol = fields.String(required=True, validate=Slug)
    change_cutoff_hours = fields.Integer(
        strict=True,
        load_default=0,
        validate=validate.Range(min=0, max=720),
        metadata={"description": "patients may reschedule or cancel online until this many hours before"},
    )
    asks_intake = fields.Boolean(
        load_default=False, metadata={"description": "ask the first-consultation intake when booking"}
    )

    @validates_schema
    def _location_for_visits(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("mode") == "in_person" and not data.get("location"):
            raise ValidationError("an in-person appointment type needs a location", "location")


class AppointmentTypePatch(Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=2000))
    duration_minutes = minutes(5, 480)
    mode = fields.String(validate=validate.OneOf(MODES))
    buffer_before_minutes = minutes(0, 240)
    buffer_after_minutes = minutes(0, 240)
    slot_interval_minutes = minutes(5, 240)
    min_notice_minutes = fields.Integer(strict=True, validate=validate.Range(min=0, max=60 * 24 * 30))
    horizon_days = fields.Integer(strict=True, validate=validate.Range(min=1, max=730))
    daily_limit = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=200))
    location = fields.String(validate=validate.Length(max=500))
    reminder_protocol = fields.String(validate=Slug)
    change_cutoff_hours = fields.Integer(strict=True, validate=validate.Range(min=0, max=720))
    asks_intake = fields.Boolean()
    active = fields.Boolean()


class AppointmentTypeOut(Schema):
    id = fields.Integer()
    clinic_id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    description = fields.String()
    duration_minutes = fields.Integer()
    mode = fields.String()
    buffer_before_minutes = fields.Integer()
    buffer_after_minutes = fields.Integer()
    slot_interval_minutes = fields.Integer()
    min_notice_minutes = fields.Integer()
    horizon_days = fields.Integer()
    daily_limit = fields.Integer(allow_none=True)
    location = fields.String()
    reminder_protocol = fields.String()
    change_cutoff_hours = fields.Integer()
    asks_intake = fields.Boolean()
    active = fields.Boolean()


# --- availability --------------------------------------------------------------------------------------


class WindowIn(Strict):
    start = WallTime(required=True)
    end = WallTime(required=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data["start"] >= data["end"]:
            raise ValidationError("must be after start", "end")


def _no_overlap(windows: list[Any], label: str) -> None:
    ordered = sorted(windows, key=lambda w: w["start"])
    for a, b in itertools.pairwise(ordered):
        if b["start"] < a["end"]:
            raise ValidationError(f"windows overlap on {label}")


class WeeklyRuleIn(WindowIn):
    weekday = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=0, max=6),
        metadata={"description": "0 = Monday"},
    )


class WeeklyAvailabilityIn(Strict):
    rules = fields.List(fields.Nested(WeeklyRuleIn), required=True)

    @validates_schema
    def _per_day(self, data: dict[str, Any], **_: Any) -> None:
        for weekday in range(7):
            try:
                _no_overlap([r for r in data["rules"] if r["weekday"] == weekday], f"weekday {weekday}")
            except ValidationError as exc:
                raise ValidationError(exc.messages, "rules") from exc


class WeeklyRuleOut(Schema):
    weekday = fields.Integer()
    start = fields.Time(format="%H:%M", attribute="start_time")
    end = fields.Time(format="%H:%M", attribute="end_time")


class WeeklyAvailabilityOut(Schema):
    provider_id = fields.Integer()
    rules = fields.List(fields.Nested(WeeklyRuleOut))


class OverrideIn(Strict):
    closed = fields.Boolean(required=True)
    windows = fields.List(fields.Nested(WindowIn), load_default=list)

    @validates_schema
    def _shape(self, data: dict[str, Any], **_: Any) -> None:
        if data["closed"] and data["windows"]:
            raise ValidationError("a closed day has no windows", "windows")
        if not data["closed"] and not data["windows"]:
            raise ValidationError("list the hours of the day, or set closed", "windows")
        try:
            _no_overlap(data["windows"], "this day")
        except ValidationError as exc:
            raise ValidationError(exc.messages, "windows") from exc


class OverrideOut(Schema):
    day = fields.Date()
    closed = fields.Boolean()
    start = fields.Time(format="%H:%M", attribute="start_time", allow_none=True)
    end = fields.Time(format="%H:%M", attribute="end_time", allow_none=True)


class OverrideRange(Strict):
    start = fields.Date()
    end = fields.Date()


# --- invitations ---------------------------------------------------------------------------------------


class InvitationPatient(Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    email = fields.Email()
    phone = MobileNumber(allow_none=True)


class InvitationIn(Strict):
    clinic_id = fields.Integer(required=True, strict=True)
    appointment_type_id = fields.Integer(strict=True, load_default=None, allow_none=True)
    provider_id = fields.Integer(strict=True, load_default=None, allow_none=True)
    single_use = fields.Boolean(load_default=True)
    expires_at = aware(load_default=None, metadata={"description": "default: now + expires_in_hours"})
    expires_in_hours = fields.Integer(
        strict=True, load_default=None, validate=validate.Range(min=1, max=24 * 90)
    )
    patient_id = fields.UUID(load_default=None, metadata={"description": "pre-fill from a known patient"})
    patient = fields.Nested(
        InvitationPatient, load_default=None, metadata={"description": "or pre-fill these"}
    )

    @validates_schema
    def _shape(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("expires_at") is not None and data.get("expires_in_hours") is not None:
            raise ValidationError("give expires_at or expires_in_hours, not both", "expires_at")
        if data.get("patient_id") is not None and data.get("patient") is not None:
            raise ValidationError("give patient_id or patient, not both", "patient")


class InvitationOut(Schema):
    id = fields.UUID()
    clinic_id = fields.Integer()
    appointment_type_id = fields.Integer(allow_none=True)
    provider_id = fields.Integer(allow_none=True)
    single_use = fields.Boolean()
    expires_at = fields.AwareDateTime(default_timezone=UTC)
    revoked_at = fields.AwareDateTime(allow_none=True, default_timezone=UTC)
    created_at = fields.AwareDateTime(default_timezone=UTC)
    used_by_booking_id = fields.UUID(allow_none=True, metadata={"description": "single-use: the booking"})
    prefilled = fields.Boolean(metadata={"description": "whether the form is pre-filled (details not shown)"})
    url = fields.String(metadata={"description": "the signed link to send to the patient"})
