"""Marshmallow fields for values every service validates the same way: zones, mobiles, slugs, times."""

from __future__ import annotations

from datetime import time
from typing import Any

import phonenumbers
from marshmallow import ValidationError, fields, validate

from shared.timeutil import is_time_zone

DEFAULT_PHONE_REGION = "US"
_SMS_CAPABLE = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    phonenumbers.PhoneNumberType.VOIP,
}

Slug = validate.Regexp(
    r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$", error="use 1-64 lowercase letters, digits or dashes"
)


def normalize_mobile(raw: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """Return ``raw`` as an E.164 mobile number or raise ``ValueError`` saying why not."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number; include the country code, e.g. +1 415 555 2671")
    if phonenumbers.number_type(number) not in _SMS_CAPABLE:
        raise ValueError("not a mobile number that can receive text messages")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class TimeZone(fields.String):
    """An IANA time zone name such as ``America/New_York``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        name: str = super()._deserialize(value, attr, data, **kwargs)
        if not is_time_zone(name):
            raise ValidationError("not a known IANA time zone, e.g. America/New_York")
        return name


class MobileNumber(fields.String):
    """A mobile number, accepted in national form for the default region, stored in E.164."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        raw: str = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalize_mobile(raw)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class WallTime(fields.Time):
    """A wall-clock time ``HH:MM`` on a 5-minute boundary."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> time:
        parsed: time = super()._deserialize(value, attr, data, **kwargs)
        if parsed.minute % 5 or parsed.second or parsed.microsecond:
            raise ValidationError("use a time on a 5-minute boundary, e.g. 09:00 or 13:45")
        return parsed


def multiple_of_five(value: int) -> None:
    """Validator: minutes must fall on the 5-minute grid."""
    if value % 5:
        raise ValidationError("must be a multiple of 5 minutes")
