"""Shapes of the staff API that sets a clinic up: clinics, providers, hours, types, invitations.

They check shape and format only.
"""

from __future__ import annotations

import itertools
from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.booking.schemas import Patch, Strict, aware, minutes
from shared.events import MODES
from shared.fields import Day, Email, Flag, Id, Line, MobileNumber, Slug, Text, TimeZone, WallTime, bounded

# --- clinics -------------------------------------------------------------------------------------------


class ClinicIn(Strict):
    slug = fields.String(required=True, validate=Slug)
    name = Line(required=True, min_length=1, max_length=200)
    time_zone = TimeZone(required=True)
    address = Text(load_default="", max_length=500)
    phone = Line(load_default="", max_length=32)


class ClinicPatch(Patch):
    name = Line(min_length=1, max_length=200)
    time_zone = TimeZone()
    address = Text(max_length=500)
    phone = Line(max_length=32)


class ClinicOut(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    time_zone = fields.String()
    address = fields.String()
    phone = fields.String()


# --- providers -----------------------------------------------------------------------------------------


class ProviderIn(Strict):
    clinic_id = Id(required=True)
    name = Line(required=True, min_length=1, max_length=200)
    email = Email(required=True)
    time_zone = TimeZone(required=True)
    appointment_type_ids = fields.List(Id(), load_default=list)


class ProviderPatch(Patch):
    name = Line(min_length=1, max_length=200)
    email = Email()
    time_zone = TimeZone()
    active = Flag()
    appointment_type_ids = fields.List(Id())


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
    clinic_id = Id(strict=False)


# --- appointment types ---------------------------------------------------------------------------------


class AppointmentTypeIn(Strict):
    clinic_id = Id(required=True)
    slug = fields.String(required=True, validate=Slug)
    name = Line(required=True, min_length=1, max_length=200)
    description = Text(load_default="", max_length=2000)
    duration_minutes = minutes(5, 480, required=True)
    mode = fields.String(required=True, validate=validate.OneOf(MODES))
    buffer_before_minutes = minutes(0, 240, load_default=0)
    buffer_after_minutes = minutes(0, 240, load_default=0)
    slot_interval_minutes = minutes(5, 240, load_default=15)
    min_notice_minutes = bounded(0, 60 * 24 * 30, load_default=0)
    horizon_days = bounded(1, 730, load_default=60)
    daily_limit = bounded(1, 200, load_default=None, allow_none=True)
    location = Text(load_default="", max_length=500)
    reminder_protocol = fields.String(required=True, validate=Slug)
    change_cutoff_hours = bounded(
        0,
        720,
        load_default=0,
        metadata={"description": "patients may reschedule or cancel online until this many hours before"},
    )
    asks_intake = Flag(
        load_default=False, metadata={"description": "ask the first-consultation intake when booking"}
    )
    one_per_day = Flag(
        load_default=False,
        metadata={
            "description": "a patient may book this type once a day (the clinic's day): a second is a 409 "
            "(same-day); false: it is booked and the pages warn"
        },
    )
    resource_kind = fields.String(
        load_default=None,
        allow_none=True,
        validate=Slug,
        metadata={"description": "the kind of resource (e.g. infusion-chair) a visit holds; null: none"},
    )
    recovery_minutes = minutes(
        0, 480, load_default=0, metadata={"description": "the resource is held this long after the visit"}
    )
    provider_minutes = minutes(
        5,
        480,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "the provider is held only this long from the start (null: the whole visit)"
        },
    )
    requires_escort = Flag(
        load_default=False,
        metadata={
            "description": "the patient needs someone to take them home; bookings without one show it missing"
        },
    )

    @validates_schema
    def _location_for_visits(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("mode") == "in_person" and not data.get("location"):
            raise ValidationError("an in-person appointment type needs a location", "location")

    @validates_schema
    def _provider_within_visit(self, data: dict[str, Any], **_: Any) -> None:
        held = data.get("provider_minutes")
        if held is not None and held > data.get("duration_minutes", held):
            raise ValidationError("cannot be longer than duration_minutes", "provider_minutes")


class AppointmentTypePatch(Patch):
    name = Line(min_length=1, max_length=200)
    description = Text(max_length=2000)
    duration_minutes = minutes(5, 480)
    mode = fields.String(validate=validate.OneOf(MODES))
    buffer_before_minutes = minutes(0, 240)
    buffer_after_minutes = minutes(0, 240)
    slot_interval_minutes = minutes(5, 240)
    min_notice_minutes = bounded(0, 60 * 24 * 30)
    horizon_days = bounded(1, 730)
    daily_limit = bounded(1, 200, allow_none=True)
    location = Text(max_length=500)
    reminder_protocol = fields.String(validate=Slug)
    change_cutoff_hours = bounded(0, 720)
    asks_intake = Flag()
    one_per_day = Flag()
    resource_kind = fields.String(allow_none=True, validate=Slug)
    recovery_minutes = minutes(0, 480)
    provider_minutes = minutes(5, 480, allow_none=True)
    requires_escort = Flag()
    active = Flag()


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
    one_per_day = fields.Boolean()
    resource_kind = fields.String(allow_none=True)
    recovery_minutes = fields.Integer()
    provider_minutes = fields.Integer(allow_none=True)
    requires_escort = fields.Boolean()
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
    weekday = bounded(0, 6, required=True, metadata={"description": "0 = Monday"})


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
    closed = Flag(required=True)
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
    start = Day()
    end = Day()


# --- invitations ---------------------------------------------------------------------------------------


class InvitationPatient(Strict):
    name = Line(min_length=1, max_length=200)
    email = Email()
    phone = MobileNumber(allow_none=True)


class InvitationIn(Strict):
    clinic_id = Id(required=True)
    appointment_type_id = Id(load_default=None, allow_none=True)
    provider_id = Id(load_default=None, allow_none=True)
    single_use = Flag(load_default=True)
    expires_at = aware(load_default=None, metadata={"description": "default: now + expires_in_hours"})
    expires_in_hours = bounded(1, 24 * 90, load_default=None)
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
