"""Structured logs with a correlation id and without patient data.

Log calls name records by id (``booking_id``, ``patient_id``), never by name, phone or email. As a second
line of defence, :class:`PrivacyFilter` drops extra fields with personal names and masks anything shaped
like a phone number or an email address in the message, so a careless ``log.info("%s", patient)`` cannot
leak contact details.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import uuid
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter

_correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")

# Extra fields that must never reach a log line.
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
        # RQ logs a failed job's arguments as extras; a booking event carries the patient's contact details.
        "arguments",
        "kwargs",
        "args_repr",
    }
)
# Word boundaries keep ids (UUIDs, hex) intact: a phone number stands on its own.
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d ().-]{6,}\d(?![\w-])")
# Signed tokens in link paths are credentials.
_LINK_TOKEN = re.compile(r"(/(?:manage|join|invite|calendar)/)[^/\s?\"']+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# LogRecord's own attributes, which are not "extra" fields even where a name clashes.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


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
    """Mask phone numbers, email addresses and link tokens in ``text``."""
    text = _LINK_TOKEN.sub(r"\1[token]", text)
    return _EMAIL.sub("[email]", _PHONE.sub(_mask_phone, text))


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    # Short digit runs (ids, durations, years) are not phone numbers.
    return "[phone]" if len(digits) >= 8 and not _looks_like_timestamp(match.group(0)) else match.group(0)


def _looks_like_timestamp(text: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", text.strip()))


class PrivacyFilter(logging.Filter):
    """Drop private extra fields and mask contact details in messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in list(vars(record)):
            if key in PRIVATE_FIELDS and key not in _RECORD_ATTRS:
                delattr(record, key)
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, ()
        return True


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
    """Send every log record to stderr, one JSON object a line (or plain text), privacy-filtered."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(service))
    handler.addFilter(PrivacyFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{service}{correlation_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
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
