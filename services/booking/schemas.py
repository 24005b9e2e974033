"""Request and response shapes of the booking API. They check shape and format only."""

from __future__ import annotations

import itertools
from datetime import UTC
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.events import MODES
from shared.fields import MobileNumber, Slug, TimeZone, WallTime, multiple_of_five


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _aware(**kwargs: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(format="iso", **kwargs)


def _minutes(low: int, high: int, **kwargs: Any) -> fields.Integer:
    return fields.Integer(
        strict=True, validate=[validate.Range(min=low, max=high), multiple_of_five], **kwargs
    )


# --- clinics -------------------------------------------------------------------------------------------


class ClinicIn(_Strict):
    slug = fields.String(required=True, validate=Slug)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    time_zone = TimeZone(required=True)
    address = fields.String(load_default="", validate=validate.Length(max=500))
    phone = fields.String(load_default="", validate=validate.Length(max=32))


class ClinicPatch(_Strict):
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


class ProviderIn(_Strict):
    clinic_id = fields.Integer(required=True, strict=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True)
    time_zone = TimeZone(required=True)
    appointment_type_ids = fields.List(fields.Integer(strict=True), load_default=list)


class ProviderPatch(_Strict):
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


class ClinicFilter(_Strict):
    clinic_id = fields.Integer()


# --- appointment types ---------------------------------------------------------------------------------


class AppointmentTypeIn(_Strict):
    clinic_id = fields.Integer(required=True, strict=True)
    slug = fields.String(required=True, validate=Slug)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    duration_minutes = _minutes(5, 480, required=True)
    mode = fields.String(required=True, validate=validate.OneOf(MODES))
    buffer_before_minutes = _minutes(0, 240, load_default=0)
    buffer_after_minutes = _minutes(0, 240, load_default=0)
    slot_interval_minutes = _minutes(5, 240, load_default=15)
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


class AppointmentTypePatch(_Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=2000))
    duration_minutes = _minutes(5, 480)
    mode = fields.String(validate=validate.OneOf(MODES))
    buffer_before_minutes = _minutes(0, 240)
    buffer_after_minutes = _minutes(0, 240)
    slot_interval_minutes = _minutes(5, 240)
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


class WindowIn(_Strict):
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


class WeeklyAvailabilityIn(_Strict):
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


class OverrideIn(_Strict):
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


class OverrideRange(_Strict):
    start = fields.Date()
    end = fields.Date()


# --- patients ------------------------------------------------------------------------------------------


class PatientDetails(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True)
    phone = MobileNumber(load_default=None, allow_none=True)
    time_zone = TimeZone(required=True)
    sms_consent = fields.Boolean(load_default=False)

    @validates_schema
    def _consent_needs_phone(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("sms_consent") and not data.get("phone"):
            raise ValidationError("SMS consent needs a mobile number", "sms_consent")


class PatientIn(PatientDetails):
    clinic_id = fields.Integer(required=True, strict=True)


class PatientOut(Schema):
    id = fields.UUID()
    clinic_id = fields.Integer()
    name = fields.String()
    email = fields.String()
    phone = fields.String(allow_none=True)
    time_zone = fields.String()
    sms_consent = fields.Boolean()


# --- slots ---------------------------------------------------------------------------------------------


class SlotQuery(_Strict):
    provider_id = fields.Integer(required=True)
    appointment_type_id = fields.Integer(required=True)
    start = _aware(required=True, metadata={"description": "range start, ISO 8601 with offset"})
    end = _aware(required=True, metadata={"description": "range end (exclusive), ISO 8601 with offset"})
    tz = TimeZone(
        load_default=None, metadata={"description": "zone to express slots in (default: provider's)"}
    )


class SlotOut(Schema):
    start = fields.String()
    end = fields.String()


class SlotsOut(Schema):
    provider_id = fields.Integer()
    appointment_type_id = fields.Integer()
    time_zone = fields.String()
    provider_time_zone = fields.String()
    slots = fields.List(fields.Nested(SlotOut))


# --- bookings ------------------------------------------------------------------------------------------


class BookingIn(_Strict):
    provider_id = fields.Integer(required=True, strict=True)
    appointment_type_id = fields.Integer(required=True, strict=True)
    start = _aware(required=True, metadata={"description": "ISO 8601 with an offset"})
    patient_id = fields.UUID(load_default=None)
    patient = fields.Nested(PatientDetails, load_default=None)

    @validates_schema
    def _one_patient(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("patient_id") is None) == (data.get("patient") is None):
            raise ValidationError("give either patient_id or patient", "patient")


class RescheduleIn(_Strict):
    start = _aware(required=True)
    expected_version = fields.Integer(
        strict=True, load_default=None, metadata={"description": "refuse with 409 if the booking moved on"}
    )


class CancelIn(_Strict):
    expected_version = fields.Integer(strict=True, load_default=None)


class BookingFilter(_Strict):
    provider_id = fields.Integer()
    patient_id = fields.UUID()
    status = fields.String(validate=validate.OneOf(("confirmed", "cancelled")))
    start_from = _aware()
    start_to = _aware()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class TypeBrief(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    mode = fields.String()
    duration_minutes = fields.Integer()
    location = fields.String()


class ProviderBrief(Schema):
    id = fields.Integer()
    name = fields.String()
    time_zone = fields.String()


class IntakeOut(Schema):
    """The patient's first-consultation intake answers (staff only)."""

    reasons = fields.List(fields.String())
    reason_other = fields.String()
    treatments_tried = fields.String()
    created_at = fields.AwareDateTime(default_timezone=UTC)


class BookingOut(Schema):
    """A booking as staff see it."""

    id = fields.UUID()
    status = fields.String()
    version = fields.Integer()
    start = fields.AwareDateTime(attribute="start_at", default_timezone=UTC)
    end = fields.AwareDateTime(attribute="end_at", default_timezone=UTC)
    clinic_id = fields.Integer()
    appointment_type = fields.Nested(TypeBrief)
    provider = fields.Nested(ProviderBrief)
    patient = fields.Nested(PatientOut)
    cancelled_by = fields.String(allow_none=True)
    cancelled_at = fields.AwareDateTime(allow_none=True, default_timezone=UTC)
    created_at = fields.AwareDateTime(default_timezone=UTC)
    updated_at = fields.AwareDateTime(default_timezone=UTC)
    manage_url = fields.String(metadata={"description": "the patient's signed manage link"})
    intake = fields.Nested(IntakeOut, allow_none=True, metadata={"description": "intake answers, if asked"})


class BookingEventOut(Schema):
    """One event a booking recorded in the outbox: what changed, when, and whether the relay sent it on."""

    event_id = fields.UUID()
    type = fields.String(attribute="event_type")
    version = fields.Function(lambda row: row.payload["booking"]["version"])
    start = fields.Function(lambda row: row.payload["booking"]["start"])
    end = fields.Function(lambda row: row.payload["booking"]["end"])
    occurred_at = fields.Function(lambda row: row.payload["occurred_at"])
    correlation_id = fields.Function(lambda row: row.payload.get("correlation_id", ""))
    published_at = fields.AwareDateTime(allow_none=True, default_timezone=UTC)


class BookingPage(Schema):
    total = fields.Integer()
    items = fields.List(fields.Nested(BookingOut))


class ManagedBookingOut(Schema):
    """A booking as its patient sees it through a manage link (no other patient data)."""

    id = fields.UUID()
    status = fields.String()
    version = fields.Integer()
    start = fields.AwareDateTime(attribute="start_at", default_timezone=UTC)
    end = fields.AwareDateTime(attribute="end_at", default_timezone=UTC)
    time_zone = fields.String(metadata={"description": "the patient's zone"})
    appointment_type = fields.Nested(TypeBrief)
    provider = fields.Nested(ProviderBrief)
    manage_url = fields.String(metadata={"description": "the link to use from now on"})
    manage_token = fields.String()


# --- invitations ---------------------------------------------------------------------------------------


class InvitationPatient(_Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    email = fields.Email()
    phone = MobileNumber(allow_none=True)


class InvitationIn(_Strict):
    clinic_id = fields.Integer(required=True, strict=True)
    appointment_type_id = fields.Integer(strict=True, load_default=None, allow_none=True)
    provider_id = fields.Integer(strict=True, load_default=None, allow_none=True)
    single_use = fields.Boolean(load_default=True)
    expires_at = _aware(load_default=None, metadata={"description": "default: now + expires_in_hours"})
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
