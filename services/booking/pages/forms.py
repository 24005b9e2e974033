"""Shapes of the page forms. Like the API schemas, they check shape and format only."""

from __future__ import annotations

from datetime import time
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from werkzeug.datastructures import MultiDict

from services.booking.pages.i18n import N_
from shared.fields import Email, Id, Instant, Line, MobileNumber, Text, TimeZone

# What brings a patient to a first consultation: (value, label). Stored by value with the booking; the page
# shows each label in the patient's language.
REASONS = (
    ("depression", N_("Depression")),
    ("anxiety", N_("Anxiety")),
    ("chronic_pain", N_("Chronic pain")),
    ("ptsd", N_("PTSD")),
    ("other", N_("Something else")),
)
# Messages of the shared fields and the business operations that a patient can meet on the pages: the pages
# show them from the catalogue.
SHARED_MESSAGES = (
    N_("not a phone number"),
    N_("not a valid phone number; include the country code, e.g. +1 415 555 2671"),
    N_("not a mobile number that can receive text messages"),
    N_("must not contain control characters"),
    # The problem pages' details (links and invitations).
    N_("This link has expired."),
    N_("This link is not valid."),
    N_("This invitation is not valid."),
    N_("This invitation has expired."),
    N_("This invitation has already been used to book."),
    N_("This provider or appointment type is not taking bookings."),
)
REASON_VALUES = tuple(value for value, _ in REASONS)


class _Form(Schema):
    class Meta:
        unknown = EXCLUDE  # the CSRF token and the submit button


class SlotChoice(_Form):
    start = Instant(required=True)
    provider_id = Id(required=True, strict=False)


class DetailsForm(SlotChoice):
    """The details step: who the patient is and how to reach them."""

    name = Line(
        required=True,
        min_length=1,
        max_length=200,
        length_error=N_("enter your full name"),
        error_messages={"required": N_("enter your full name")},
    )
    # Only text messages need a phone: a patient who declines them books with an email address alone.
    phone = MobileNumber(load_default=None)
    email = Email(
        required=True,
        error_messages={
            "required": N_("enter your email address"),
            "invalid": N_("enter an email address like name@example.com"),
        },
    )
    sms_consent = fields.Boolean(load_default=False)
    time_zone = TimeZone(required=True)
    idempotency_key = Line(load_default=None, max_length=64)

    @validates_schema
    def _texts_need_a_phone(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("sms_consent") and not data.get("phone"):
            raise ValidationError(
                N_("enter a mobile number for text messages, or untick text messages"), "phone"
            )


class IntakeForm(_Form):
    """The short first-consultation intake."""

    reasons = fields.List(
        fields.String(validate=validate.OneOf(REASON_VALUES)),
        required=True,
        validate=validate.Length(min=1, error=N_("choose at least one")),
        error_messages={"required": N_("choose at least one")},
    )
    reason_other = Text(load_default="", max_length=500)
    treatments_tried = Text(load_default="", max_length=2000)

    @validates_schema
    def _other_needs_words(self, data: dict[str, Any], **_: Any) -> None:
        if "other" in data.get("reasons", ()) and not data.get("reason_other", "").strip():
            raise ValidationError(N_("tell us briefly what brings you"), "reason_other")


class EscortForm(_Form):
    """Who takes the patient home (types that require an escort); the patient confirms they agreed."""

    escort_first_name = Line(
        required=True,
        min_length=1,
        max_length=100,
        length_error=N_("enter their first name"),
        error_messages={"required": N_("enter their first name")},
    )
    escort_phone = MobileNumber(required=True, error_messages={"required": N_("enter their mobile number")})
    escort_patient_first_name = Line(load_default=None, max_length=100)
    escort_agreed = fields.Boolean(
        required=True,
        validate=validate.Equal(True, error=N_("confirm they agreed to be contacted")),
        error_messages={"required": N_("confirm they agreed to be contacted")},
    )

    FIELDS = ("escort_first_name", "escort_phone", "escort_patient_first_name", "escort_agreed")

    @classmethod
    def given(cls, values: dict[str, Any]) -> bool:
        """Whether any escort field was filled in (none: the patient arranges it later)."""
        return any(values.get(name) for name in cls.FIELDS)

    @staticmethod
    def escort(data: dict[str, Any]) -> dict[str, Any]:
        """The loaded form as the booking operations take it."""
        return {
            "first_name": data["escort_first_name"],
            "phone": data["escort_phone"],
            "patient_first_name": data.get("escort_patient_first_name"),
            "agreed": True,
        }


# The course page's times of day: value -> the starts each allows, in the clinic's zone (docs/courses.md).
# The page offers the three parts of the day as checkboxes, all ticked at first (any time); "any" stays
# accepted for links made when the page had a single choice.
TIMES_OF_DAY = {
    "any": (time(0), time(23, 59)),
    "morning": (time(0), time(11, 59)),
    "afternoon": (time(12), time(16, 59)),
    "evening": (time(17), time(23, 59)),
}
PARTS_OF_DAY = ("morning", "afternoon", "evening")


class CourseWishesForm(_Form):
    """When a patient can come to a course's sessions: weekdays (0 = Monday), times of day, a first day."""

    day = fields.List(
        fields.Integer(
            strict=False,
            validate=validate.Range(0, 6, error=N_("choose days from the list")),
            error_messages={"invalid": N_("choose days from the list")},
        ),
        required=True,
        validate=validate.Length(min=1, error=N_("choose at least one day")),
        error_messages={"required": N_("choose at least one day")},
    )
    time = fields.List(
        fields.String(
            validate=validate.OneOf(tuple(TIMES_OF_DAY), error=N_("choose a time of day from the list"))
        ),
        required=True,
        validate=validate.Length(min=1, error=N_("choose at least one time of day")),
        error_messages={"required": N_("choose at least one time of day")},
    )
    start_from = fields.Date(
        data_key="from",
        load_default=None,
        error_messages={"invalid": N_("enter a date like 2026-03-09")},
    )


def form_values(form: MultiDict[str, str]) -> dict[str, Any]:
    """The submitted fields as plain values (checkbox groups as lists, blanks as missing)."""
    values: dict[str, Any] = {}
    for key in form:
        if key == "reasons":
            values[key] = form.getlist(key)
        else:
            value = form.get(key, "").strip()
            if value:
                values[key] = value
    return values


def flat_errors(messages: dict[str, Any]) -> dict[str, str]:
    """Marshmallow's messages as one sentence per field."""
    flat: dict[str, str] = {}
    for key, value in messages.items():
        if isinstance(value, dict):
            # a list field reports per item: {0: [...]}
            first = next(iter(value.values()))
            flat[key] = first[0] if isinstance(first, list) else str(first)
        elif isinstance(value, list):
            flat[key] = str(value[0])
        else:
            flat[key] = str(value)
    return flat
