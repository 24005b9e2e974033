"""Marshmallow fields for values every service validates the same way: ids, text, instants, zones, mobiles.

Each input field states its limits in the OpenAPI document too (range, length, pattern or format), so what the
document calls valid is what the API accepts. Why these limits: docs/architecture.md, "Input handling".
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
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

# The largest value of the columns ids live in: INTEGER (PostgreSQL's is 32-bit) and BIGINT.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Years an instant or a date may name: far from datetime's limits, so zone conversions and the services'
# arithmetic (days, months, horizons) never overflow.
FIRST_YEAR, LAST_YEAR = 1900, 8999
_YEAR = r"(?:19|[2-8][0-9])[0-9]{2}"
_DATE = _YEAR + r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_HOUR = r"(?:[01][0-9]|2[0-3])"
_DATE_TIME = _DATE + rf"T{_HOUR}:[0-5][0-9]:[0-5][0-9](?:\.[0-9]{{1,6}})?(?:Z|[+-]{_HOUR}:[0-5][0-9])"
DAY_PATTERN = f"^{_DATE}$"
# No control characters (C0, DEL, C1); free text may still hold tabs and line breaks. The same patterns go
# into the OpenAPI document, so they are written for both Python and ECMAScript regular expressions.
LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
EMAIL_MAX = 254  # RFC 5321's limit on a forward path; the columns hold 320


class Pattern(validate.Regexp):
    """``Regexp`` matching the whole value (``$`` alone lets a trailing newline through)."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


Slug = Pattern(
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


def largest_id(bits: int = 32) -> int:
    """The largest id an INTEGER (``bits=32``) or BIGINT (``bits=64``) key column holds."""
    return INT64_MAX if bits == 64 else INT32_MAX


class Id(fields.Integer):
    """A row id: 1 up to its column's largest value (``bits=64`` for BIGINT keys); beyond, it names nothing.

    ``strict=False`` (query strings) also takes ASCII digits; JSON bodies must send a number.
    """

    def __init__(self, *, bits: int = 32, strict: bool = True, **kwargs: Any) -> None:
        top = largest_id(bits)
        kwargs.setdefault("validate", validate.Range(min=1, max=top, error=f"not an id (1 to {top})"))
        super().__init__(strict=strict, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and not (value.isascii() and value.isdigit()):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def parse_id(raw: str, *, bits: int = 32) -> int | None:
    """``raw`` as a row id (ASCII digits, 1 up to the column's largest value), else None."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if 1 <= value <= largest_id(bits) else None


def bounded(low: int, high: int, **kwargs: Any) -> fields.Integer:
    """A JSON integer from ``low`` to ``high`` (every count and version has a ceiling below the columns')."""
    return fields.Integer(strict=True, validate=validate.Range(min=low, max=high), **kwargs)


class Flag(fields.Boolean):
    """A JSON ``true`` or ``false``, nothing else (not 0, 1 or "yes": the document says boolean)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


class Line(fields.String):
    """One line of text: no control characters, at most ``max_length`` characters."""

    pattern = LINE_PATTERN

    def __init__(
        self, *, max_length: int, min_length: int = 0, length_error: str | None = None, **kwargs: Any
    ) -> None:
        checks = [
            validate.Length(min=min_length, max=max_length, error=length_error),
            Pattern(self.pattern, error="must not contain control characters"),
        ]
        super().__init__(validate=checks, **kwargs)


class Text(Line):
    """Free text: like ``Line``, but tabs and line breaks are welcome."""

    pattern = TEXT_PATTERN


class Email(fields.Email):
    """An email address of at most 254 characters, on one line."""

    def __init__(self, **kwargs: Any) -> None:
        checks = [validate.Length(max=EMAIL_MAX), Pattern(LINE_PATTERN)]
        super().__init__(validate=checks, **kwargs)


class Instant(fields.AwareDateTime):
    """An RFC 3339 date-time with an offset, years 1900-8999 (conversions and arithmetic cannot overflow)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": f"^{_DATE_TIME}$", **kwargs.pop("metadata", {})}
        super().__init__(format="iso", metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or re.fullmatch(_DATE_TIME, value) is None:
            raise ValidationError(
                f"use an RFC 3339 date-time with an offset between {FIRST_YEAR} and {LAST_YEAR},"
                " e.g. 2026-03-03T10:00:00-05:00"
            )
        parsed: datetime = super()._deserialize(value, attr, data, **kwargs)
        return parsed


class Day(fields.Date):
    """A ``YYYY-MM-DD`` date, years 1900-8999."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": DAY_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if not isinstance(value, str) or re.fullmatch(_DATE, value) is None:
            raise ValidationError(f"use a date YYYY-MM-DD between {FIRST_YEAR} and {LAST_YEAR}")
        parsed: date = super()._deserialize(value, attr, data, **kwargs)
        return parsed


def is_day(raw: str) -> bool:
    """Whether ``raw`` is a ``YYYY-MM-DD`` date within the years ``Day`` takes."""
    return re.fullmatch(_DATE, raw) is not None


class TimeZone(fields.String):
    """An IANA time zone name such as ``America/New_York`` (documented as format ``iana-time-zone``)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "iana-time-zone", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        name: str = super()._deserialize(value, attr, data, **kwargs)
        if not is_time_zone(name):
            raise ValidationError("not a known IANA time zone, e.g. America/New_York")
        return name


class MobileNumber(fields.String):
    """A mobile number (format ``mobile``), taken in national form for the default region, kept in E.164."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "mobile", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        raw: str = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalize_mobile(raw)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class WallTime(fields.Time):
    """A wall-clock time ``HH:MM`` on a 5-minute boundary."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": "^(?:[01][0-9]|2[0-3]):[0-5][05]$", **kwargs.pop("metadata", {})}
        super().__init__(format="%H:%M", metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> time:
        if not isinstance(value, str) or re.fullmatch(self.metadata["pattern"], value) is None:
            raise ValidationError("use a time on a 5-minute boundary, e.g. 09:00 or 13:45")
        parsed: time = super()._deserialize(value, attr, data, **kwargs)
        return parsed


def multiple_of_five(value: int) -> None:
    """Validator: minutes must fall on the 5-minute grid."""
    if value % 5:
        raise ValidationError("must be a multiple of 5 minutes")
