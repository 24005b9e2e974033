"""Structured logs with a correlation id and without patient data."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")

# Extra fields that must never reach a log line, at any depth.
PRIVATE_FIELDS = frozenset(
    {
        "name",
        "patient_name",
        "phone",
        "mobile",
        "email",
        "to",
        "from_",
        "body",
        "address",
        "intake",
        "notes",
        "reason",
        "patient",
        # RQ logs a failed job's arguments as extras; a booking event carries the patient's contact details.
        "arguments",
        "kwargs",
        "args_repr",
    }
)
# Fields known to hold no patient data (ids, statuses, counts, route templates, error types): written as they
# are, so masking never mangles an id, a time or an error code. Any other field is masked.
SAFE_FIELDS = frozenset(
    {
        "time",
        "level",
        "logger",
        "service",
        "correlation_id",
        "booking_id",
        "patient_id",
        "provider_id",
        "clinic_id",
        "event_id",
        "event_type",
        "job_id",
        "message_id",
        "outbox_id",
        "room_sid",
        "version",
        "stored_version",
        "current_version",
        "status",
        "outcome",
        "verdict",
        "step",
        "channel",
        "error",
        "error_code",
        "code",
        "check",
        "call",
        "collector",
        "count",
        "duration_ms",
        "endpoint",
        "method",
        "port",
        "queue",
        "handler",
    }
)
# A phone number as people write one: E.164 (a plus, or its URL encoding, then 8 to 15 digits, grouped or
# not) or a grouped national number. Bare digit runs are not phone numbers here: they are ids, epoch seconds,
# or the seconds and fraction of a timestamp (RQ's "retry at 16:12:35.123456+00:00").
_PHONE = re.compile(
    r"(?<![\w+%:.-])"
    r"(?:(?:\+|%2[Bb])\d(?:[ ().-]{0,2}\d){7,14}|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})"
    r"(?![\w.:-]*\d)"
)
# Signed tokens in link paths are credentials.
_LINK_TOKEN = re.compile(r"(/(?:manage|join|invite|calendar)/)[^/\s?\"']+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# PostgreSQL quotes the values of a violated key or a failing row in its error DETAIL; SQLAlchemy quotes bound
# parameters (hidden by the engines' hide_parameters, masked here too).
_DATABASE_VALUES = (
    (
        re.compile(r"Key \(([^)]*)\)=\(.*?\)( already exists| is not present| conflicts)"),
        r"Key (\1)=([values])\2",
    ),
    (re.compile(r"Failing row contains \(.*"), "Failing row contains ([row])"),
    (re.compile(r"\[parameters: .*?\]$", re.MULTILINE), "[parameters: hidden]"),
)
_MAX_DEPTH = 8


def new_correlation_id() -> str:
    """A fresh correlation id."""
    return uuid.uuid4().hex


def get_correlation_id() -> str:
    """The correlation id of the current request or job ('' outside one)."""
    return _correlation_id.get()


def set_correlation_id(value: str) -> contextvars.Token[str]:
    """Set the correlation id for the current context; return a token to reset it."""
    return _correlation_id.set(value)


@contextlib.contextmanager
def correlation(value: str | None) -> Iterator[str]:
    """Run a block under correlation id ``value`` (or a new one)."""
    cid = value or new_correlation_id()
    token = _correlation_id.set(cid)
    try:
        yield cid
    finally:
        _correlation_id.reset(token)


def mask(text: str) -> str:
    """Mask phone numbers, email addresses, link tokens and quoted database values in ``text``."""
    for pattern, replacement in _DATABASE_VALUES:
        text = pattern.sub(replacement, text)
    text = _LINK_TOKEN.sub(r"\1[token]", text)
    return _EMAIL.sub("[email]", _PHONE.sub("[phone]", text))


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` with private fields dropped and everything else masked, at any depth."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > _MAX_DEPTH:
        return "[nested]"
    if isinstance(value, Mapping):
        return {str(k): scrub(v, depth + 1) for k, v in value.items() if str(k) not in PRIVATE_FIELDS}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, depth + 1) for v in value]
    return mask(str(value))


class PrivateJsonFormatter(JsonFormatter):
    """One JSON object a line: safe fields kept, private ones dropped, the rest (exc_info too) masked."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {
            key: value if key in SAFE_FIELDS and isinstance(value, str | int | float) else scrub(value)
            for key, value in log_data.items()
            if key not in PRIVATE_FIELDS
        }


class PrivateTextFormatter(logging.Formatter):
    """Plain text lines (development), masked like the JSON ones; extra fields are not written."""

    def format(self, record: logging.LogRecord) -> str:
        # The whole line: another handler may have cached the record's exception text unmasked.
        return mask(super().format(record))


class ContextFilter(logging.Filter):
    """Stamp each record with the service name and the correlation id."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = _correlation_id.get()
        return True


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "json") -> None:
    """Send every log record to stderr, one JSON object a line (or plain text), masked where it is written."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(service))
    if fmt == "json":
        handler.setFormatter(
            PrivateJsonFormatter(
                "{asctime}{levelname}{name}{message}{service}{correlation_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            PrivateTextFormatter(
                "%(asctime)s %(levelname)s %(service)s %(name)s [%(correlation_id)s] %(message)s"
            )
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_suite_handler", False):
            root.removeHandler(existing)
    handler._suite_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
