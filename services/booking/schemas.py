"""Request and response shapes of the booking API. They check shape and format only."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.booking.languages import supported_languages
from shared.fields import (
    INT32_MAX,
    Email,
    Flag,
    Id,
    Instant,
    Line,
    MobileNumber,
    TimeZone,
    bounded,
    multiple_of_five,
)


class Strict(Schema):
    """Refuses unknown fields."""

    class Meta:
        unknown = RAISE


class Patch(Strict):
    """A change: an empty one is refused rather than answered as if something changed."""

    MIN_PROPERTIES = 1

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("give at least one field to change")


def aware(**kwargs: Any) -> Instant:
    return Instant(**kwargs)


def minutes(low: int, high: int, **kwargs: Any) -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=[validate.Range(min=low, max=high), multiple_of_five],
        metadata={"multipleOf": 5, **kwargs.pop("metadata", {})},
        **kwargs,
    )


def version(**kwargs: Any) -> fields.Integer:
    return bounded(1, INT32_MAX, **kwargs)


# --- patients ------------------------------------------------------------------------------------------


class PatientDetails(Strict):
    name = Line(required=True, min_length=1, max_length=200)
    email = Email(required=True)
    phone = MobileNumber(load_default=None, allow_none=True)
    time_zone = TimeZone(required=True)
    sms_consent = Flag(load_default=False)
    language = fields.String(
        load_default=None,
        validate=validate.OneOf(supported_languages(), error="must be one of: {choices}"),
        metadata={"description": "the patient's language for pages and messages (default en)"},
    )

    @validates_schema
    def _consent_needs_phone(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("sms_consent") and not data.get("phone"):
            raise ValidationError("SMS consent needs a mobile number", "sms_consent")


class PatientIn(PatientDetails):
    clinic_id = Id(required=True)


class PatientOut(Schema):
    id = fields.UUID()
    clinic_id = fields.Integer()
    name = fields.String()
    email = fields.String()
    phone = fields.String(allow_none=True)
    time_zone = fields.String()
    sms_consent = fields.Boolean()
    language = fields.String()


# --- slots ---------------------------------------------------------------------------------------------


class SlotQuery(Strict):
    provider_id = Id(required=True, strict=False)
    appointment_type_id = Id(required=True, strict=False)
    start = aware(required=True, metadata={"description": "range start, ISO 8601 with offset"})
    end = aware(required=True, metadata={"description": "range end (exclusive), ISO 8601 with offset"})
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


# --- escorts -------------------------------------------------------------------------------------------


class EscortIn(Strict):
    """Who takes the patient home after a session of a type that requires an escort."""

    first_name = Line(required=True, min_length=1, max_length=100)
    phone = MobileNumber(required=True, metadata={"description": "the escort's mobile number"})
    patient_first_name = Line(
        load_default=None,
        min_length=1,
        max_length=100,
        metadata={"description": "what the escort calls the patient (default: the patient's first name)"},
    )
    agreed = Flag(
        required=True,
        validate=validate.Equal(True, error="the escort must have agreed to be contacted"),
        metadata={"description": "the escort agreed to be contacted by text message (must be true)"},
    )


class EscortOut(Schema):
    """A booking's escort state (not_needed, missing, unconfirmed, confirmed) and the escort, if given."""

    booking_id = fields.UUID()
    state = fields.String()
    id = fields.UUID(attribute="escort.id")
    first_name = fields.String(attribute="escort.first_name")
    phone = fields.String(attribute="escort.phone")
    patient_first_name = fields.String(attribute="escort.patient_first_name")
    agreed_at = fields.AwareDateTime(attribute="escort.agreed_at")
    pickup_at = fields.AwareDateTime(
        attribute="escort.pickup_at", metadata={"description": "the session's end plus recovery"}
    )
    confirmed_at = fields.AwareDateTime(allow_none=True)
    confirmed_how = fields.String(allow_none=True, metadata={"description": "sms or staff"})


class EscortStateOut(Schema):
    """Whether the escort is needed, missing, unconfirmed or confirmed (when, how): no contact details."""

    state = fields.String()
    confirmed_at = fields.AwareDateTime(allow_none=True)
    confirmed_how = fields.String(allow_none=True)


# --- bookings ------------------------------------------------------------------------------------------


class BookingIn(Strict):
    provider_id = Id(required=True)
    appointment_type_id = Id(required=True)
    start = aware(required=True, metadata={"description": "ISO 8601 with an offset"})
    patient_id = fields.UUID(load_default=None)
    patient = fields.Nested(PatientDetails, load_default=None)
    resource_id = Id(
        load_default=None,
        allow_none=True,
        metadata={"description": "pin this chair or room (default: the suite picks the least fragmenting)"},
    )
    escort = fields.Nested(
        EscortIn,
        load_default=None,
        allow_none=True,
        metadata={"description": "who takes the patient home (types that require one; may be given later)"},
    )

    @validates_schema
    def _one_patient(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("patient_id") is None) == (data.get("patient") is None):
            raise ValidationError("give either patient_id or patient", "patient")


class RescheduleIn(Strict):
    start = aware(required=True)
    expected_version = version(
        load_default=None, metadata={"description": "refuse with 409 if the booking moved on"}
    )


class CancelIn(Strict):
    expected_version = version(load_default=None)


class BookingFilter(Strict):
    provider_id = Id(strict=False)
    patient_id = fields.UUID()
    status = fields.String(validate=validate.OneOf(("confirmed", "cancelled")))
    start_from = aware()
    start_to = aware()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=INT32_MAX))


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


class ResourceBrief(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()


class AttendanceIn(Strict):
    """What staff know about whether the patient will come (or came)."""

    state = fields.String(
        required=True, validate=validate.OneOf(("unconfirmed", "confirmed", "declined", "arrived", "no_show"))
    )
    # "phone": the patient confirmed to staff by phone; "staff": anything else staff record.
    source = fields.String(load_default="staff", validate=validate.OneOf(("phone", "staff")))


class AttendanceOut(Schema):
    """A booking's attendance, for its current version (an older version's state reads as unconfirmed)."""

    booking_id = fields.UUID()
    booking_version = fields.Integer()
    state = fields.String()
    source = fields.String(allow_none=True, metadata={"description": "sms, phone or staff"})
    at = fields.AwareDateTime(allow_none=True, metadata={"description": "when the patient said so"})


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
    resource = fields.Nested(
        ResourceBrief,
        allow_none=True,
        metadata={"description": "the chair or room held, if the type needs one"},
    )
    escort = fields.Nested(EscortOut, attribute="escort_status")


class BookingEventOut(Schema):
    """One event a booking recorded in the outbox: what changed, when, and whether the relay sent it on."""

    event_id = fields.UUID()
    type = fields.String(attribute="event_type")
    # An ids-only event (``booking.link_requested``) names the version it was asked at and no times.
    version = fields.Function(
        lambda row: (
            row.payload["booking"]["version"] if "booking" in row.payload else row.payload["booking_version"]
        )
    )
    start = fields.Function(lambda row: row.payload.get("booking", {}).get("start"), allow_none=True)
    end = fields.Function(lambda row: row.payload.get("booking", {}).get("end"), allow_none=True)
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
    escort = fields.Nested(EscortOut, attribute="escort_status")


class ManagedSlotQuery(Strict):
    start = aware(required=True)
    end = aware(required=True)
    tz = TimeZone(load_default=None)


class LinkSentOut(Schema):
    """The one answer to a request for the current link: the same whether or not a message goes."""

    detail = fields.String(required=True)
