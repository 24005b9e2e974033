"""Reminder protocols: data files that say which messages a kind of visit gets, when, and by which channel."""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from services.notify.models import CHANNELS, EMAIL, SMS
from shared.config import ConfigError
from shared.events import MODES

log = logging.getLogger(__name__)

BOOKED = "booked"
RESCHEDULED = "rescheduled"
CANCELLED = "cancelled"
START = "start"
END = "end"
EVENT_ANCHORS = (BOOKED, RESCHEDULED, CANCELLED)
# One message for a whole-course change (``course.changed``), keyed ``course-...``; its sessions' own
# BOOKED/RESCHEDULED/CANCELLED messages are then skipped as covered (course_messages.py).
COURSE_BOOKED = "course-booked"
COURSE_CANCELLED = "course-cancelled"
COURSE_RESCHEDULED = "course-rescheduled"
COURSE_ANCHORS = (COURSE_BOOKED, COURSE_CANCELLED, COURSE_RESCHEDULED)
COURSE_STEP_PREFIX = "course-"
# Plan rows of a manage link sent again on request, one pair per request (link_messages.py); no protocol
# step can take it (keys have no colon).
LINK_STEP_PREFIX = "link-again:"
TIME_ANCHORS = (START, END)
# Escorts (issue 19): ESCORT anchors the escort's own pick-up message (when an escort is given); a step's
# ``to`` says who gets it, and ``escort = "unconfirmed"`` holds it while the escort has not confirmed;
# ``escort = "missing"`` while the type requires an escort and none is on file.
ESCORT = "escort"
PATIENT = "patient"
CLINIC = "clinic"
AUDIENCES = (PATIENT, ESCORT, CLINIC)
UNCONFIRMED = "unconfirmed"
MISSING = "missing"
DEFAULT_PROTOCOL = "default"
CLINICS_FILE = "clinics.toml"
TEMPLATE_SUFFIXES = {SMS: (".sms.txt",), EMAIL: (".email.txt", ".email.html")}

_DURATION = re.compile(r"^([+-]?)(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
RESERVED_STEP_PREFIX = "provider-"  # the provider's calendar invites (services/notify/calendar/invites.py)
INVITE_SUMMARY_DEFAULT = (
    "*"  # [invite_summaries] and [invite_patient_attendee] key for every clinic not listed
)
_TEXT_TABLES = ("sms_names", "invite_summaries", "staff_emails")
_FLAG_TABLES = ("invite_patient_attendee",)
_PROTOCOL_KEYS = {"slug", "version", "description", "sms_label", "vars", "steps", "replies"}
DEFAULT_REPLIES = "common/replies"
REPLY_TEMPLATES = ("confirmed", "change", "which", "moved", "cancelled", "help")
# Answers to an escort's YES: thanks, or the truth (the visit cancelled, moved, or another escort now).
ESCORT_REPLY_TEMPLATES = ("escort-confirmed", "escort-cancelled", "escort-moved", "escort-replaced")


def parse_duration(raw: str) -> timedelta:
    """Parse ``-24h``, ``30m``, ``+1d`` into a timedelta."""
    match = _DURATION.match(raw.strip())
    if not match:
        raise ValueError(f"not a duration like -24h, 30m or 1d: {raw!r}")
    sign, amount, unit = match.groups()
    delta = timedelta(**{_UNITS[unit]: int(amount)})
    return -delta if sign == "-" else delta


@dataclass(frozen=True)
class Attachment:
    """A file rendered from a template and attached to the step's email."""

    template: str
    filename: str


@dataclass(frozen=True)
class Step:
    """One message of a protocol."""

    key: str
    on: str
    channels: tuple[str, ...]
    template: str
    subject: str = ""
    offset: timedelta = timedelta(0)
    urgent: bool = False
    always: bool = False
    join_link: bool = False
    until: str = END
    modes: tuple[str, ...] = MODES
    attachments: tuple[Attachment, ...] = ()
    calendar: bool = False
    asks_reply: bool = False
    # Carries the link to the day-before safety check of the booking version (booking's ``/d/<code>`` page).
    safety_check: bool = False
    to: str = PATIENT
    escort: str = ""

    @property
    def on_event(self) -> bool:
        """Whether the step goes when a booking, course or escort event happens (not at a visit time)."""
        return self.on in EVENT_ANCHORS or self.on in COURSE_ANCHORS or self.on == ESCORT

    @property
    def about_escort(self) -> bool:
        """Whether the step is planned per escort (services/notify/escorts.py), not by the booking's plan."""
        return self.to == ESCORT or bool(self.escort) or self.on == ESCORT

    def due_at(self, *, start: datetime, end: datetime, happened_at: datetime) -> datetime:
        """When this step is due for a visit from ``start`` to ``end``."""
        if self.on_event:
            return happened_at
        return (start if self.on == START else end) + self.offset

    def expires_at(self, *, due_at: datetime, start: datetime, end: datetime) -> datetime:
        """The moment after which this step is of no use and is skipped instead of sent."""
        if self.until == START:
            return start
        if self.until == END:
            return end
        return due_at + parse_duration(self.until)


@dataclass(frozen=True)
class Protocol:
    """A versioned list of steps for one kind of visit."""

    slug: str
    version: int
    steps: tuple[Step, ...]
    description: str = ""
    sms_label: str = ""
    vars: Mapping[str, Any] = field(default_factory=dict)
    replies: str = DEFAULT_REPLIES

    def steps_on(self, anchors: Iterable[str], mode: str) -> list[Step]:
        """The steps anchored at any of ``anchors`` that apply to a visit of ``mode``."""
        wanted = set(anchors)
        return [s for s in self.steps if s.on in wanted and mode in s.modes]

    def step(self, key: str) -> Step | None:
        """The step ``key``, if the protocol has it."""
        return next((s for s in self.steps if s.key == key), None)


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"reminder protocol {path.name}: {message}")


class _Duration(fields.Field):
    """A duration like ``-24h``, ``30m`` or ``1d``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> timedelta:
        if not isinstance(value, str):
            raise ValidationError("not a duration like -24h, 30m or 1d")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


def _one_of(choices: Iterable[str]) -> validate.OneOf:
    return validate.OneOf(tuple(choices), error="must be one of {choices}")


def _not_reserved(key: str) -> None:
    if key.startswith(RESERVED_STEP_PREFIX):
        raise ValidationError(f"keys starting with {RESERVED_STEP_PREFIX!r} are reserved")


class _AttachmentSchema(Schema):
    template = fields.String(required=True)
    filename = fields.String(required=True)

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> Attachment:
        return Attachment(**data)


class StepSchema(Schema):
    """One ``[[steps]]`` table of a protocol file."""

    class Meta:
        unknown = RAISE

    key = fields.String(
        required=True,
        validate=[
            validate.Regexp(_KEY, error="use lowercase letters, digits and dashes"),
            _not_reserved,
        ],
    )
    on = fields.String(
        required=True, validate=_one_of(EVENT_ANCHORS + TIME_ANCHORS + COURSE_ANCHORS + (ESCORT,))
    )
    offset = _Duration(load_default=timedelta(0))
    channels = fields.List(
        fields.String(validate=_one_of(CHANNELS)),
        required=True,
        validate=validate.Length(min=1, error=f"give one or more of {', '.join(CHANNELS)}"),
    )
    template = fields.String(required=True)
    subject = fields.String(load_default="")
    urgent = fields.Boolean(load_default=False)
    always = fields.Boolean(load_default=False)
    join_link = fields.Boolean(load_default=False)
    until = fields.String()
    modes = fields.List(
        fields.String(validate=_one_of(MODES)), load_default=list(MODES), validate=validate.Length(min=1)
    )
    attachments = fields.List(fields.Nested(_AttachmentSchema), load_default=list)
    calendar = fields.Boolean()
    asks_reply = fields.Boolean(load_default=False)
    safety_check = fields.Boolean(load_default=False)
    to = fields.String(load_default=PATIENT, validate=_one_of(AUDIENCES))
    escort = fields.String(load_default="", validate=_one_of(("", UNCONFIRMED, MISSING)))

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        channels, on = data["channels"], data["on"]
        if len(set(channels)) != len(channels):
            raise ValidationError(f"give one or more of {', '.join(CHANNELS)}, each once", "channels")
        if EMAIL in channels and not data["subject"]:
            raise ValidationError("an email step needs a subject", "subject")
        if on in EVENT_ANCHORS + COURSE_ANCHORS + (ESCORT,) and data["offset"]:
            raise ValidationError("a step sent when a booking event happens takes no offset", "offset")
        if (on in COURSE_ANCHORS) != data["key"].startswith(COURSE_STEP_PREFIX):
            raise ValidationError(f"keys start with {COURSE_STEP_PREFIX!r} exactly for course steps", "key")
        until = data.get("until")
        if until is not None and until not in (START, END) and not _positive_duration(until):
            raise ValidationError("start, end or a positive duration after the due moment", "until")
        _check_channel_fields(data)
        _check_audience(data)

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> Step:
        on, offset = data["on"], data["offset"]
        default_until = START if on == START and offset < timedelta(0) else (END if on != END else "24h")
        data["until"] = data.get("until", default_until)
        data["calendar"] = data.get(
            "calendar", on in EVENT_ANCHORS and EMAIL in data["channels"] and data["to"] == PATIENT
        )
        data["channels"] = tuple(data["channels"])
        data["modes"] = tuple(data["modes"])
        data["attachments"] = tuple(data["attachments"])
        return Step(**data)


def _check_channel_fields(data: dict[str, Any]) -> None:
    """Refuse a field that needs a channel the step does not send on."""
    channels = data["channels"]
    if EMAIL not in channels and data["attachments"]:
        raise ValidationError("attachments need the email channel", "attachments")
    if data["on"] in COURSE_ANCHORS and data.get("calendar"):
        raise ValidationError("a course message carries no one booking's calendar file", "calendar")
    if EMAIL not in channels and data.get("calendar"):
        raise ValidationError("true needs the email channel", "calendar")
    if SMS not in channels and data["asks_reply"]:
        raise ValidationError("true needs the sms channel", "asks_reply")
    if data["safety_check"] and data["on"] != START:
        raise ValidationError("true needs a reminder timed from the start", "safety_check")


def _check_audience(data: dict[str, Any]) -> None:
    """An escort gets SMS only, the clinic email only; the escort's own anchor is for the escort."""
    to, channels = data["to"], data["channels"]
    if to == ESCORT and channels != [SMS]:
        raise ValidationError("an escort is sent SMS only", "channels")
    if to == CLINIC and channels != [EMAIL]:
        raise ValidationError("the clinic is sent email only", "channels")
    if data["on"] == ESCORT and to != ESCORT:
        raise ValidationError("the escort anchor is for steps to the escort", "on")
    if to != PATIENT and data["on"] in COURSE_ANCHORS:
        raise ValidationError("course messages go to the patient", "to")
    if to != ESCORT and data["asks_reply"] and (data["escort"] or to == CLINIC):
        raise ValidationError("only the patient's and the escort's SMS ask for a reply", "asks_reply")
    if data["escort"] == MISSING and (to == ESCORT or data["on"] not in TIME_ANCHORS):
        raise ValidationError(
            "a step for a missing escort goes to the patient or the clinic at a time", "escort"
        )


def _positive_duration(raw: str) -> bool:
    try:
        return parse_duration(raw) > timedelta(0)
    except ValueError:
        return False


_STEP = StepSchema()


def _load_step(path: Path, raw: Any, index: int) -> Step:
    where = raw.get("key") if isinstance(raw, dict) and isinstance(raw.get("key"), str) else f"steps[{index}]"
    if not isinstance(raw, dict):
        raise _fail(path, f"{where} must be a table")
    try:
        step: Step = _STEP.load(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{name}: {'; '.join(map(str, _flat(messages)))}"
            for name, messages in sorted(exc.normalized_messages().items())
        )
        raise _fail(path, problems) from exc
    return step


def _flat(messages: Any) -> list[Any]:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flat(value)]
    if isinstance(messages, list):
        return [m for value in messages for m in _flat(value)]
    return [messages]


def load_protocol(path: Path) -> Protocol:
    """Read and check one protocol file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _fail(path, str(exc)) from exc
    unknown = set(raw) - _PROTOCOL_KEYS
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}")
    if raw.get("slug") != path.stem:
        raise _fail(path, f"slug must be {path.stem!r}, the file's name")
    version = raw.get("version")
    if not isinstance(version, int) or version < 1:
        raise _fail(path, "version must be a positive integer")
    steps = tuple(_load_step(path, item, n) for n, item in enumerate(raw.get("steps", [])))
    if not steps:
        raise _fail(path, "a protocol needs at least one step")
    keys = [s.key for s in steps]
    if len(set(keys)) != len(keys):
        raise _fail(path, "step keys must be unique")
    return Protocol(
        slug=raw["slug"],
        version=version,
        steps=steps,
        description=raw.get("description", ""),
        sms_label=raw.get("sms_label", ""),
        vars=dict(raw.get("vars", {})),
        replies=_replies_folder(path, raw.get("replies", DEFAULT_REPLIES)),
    )


def _replies_folder(path: Path, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip("/"):
        raise _fail(path, "replies must name a templates folder, like common/replies")
    return raw.strip("/")


def _clinic_settings(path: Path) -> dict[str, dict[str, Any]]:
    """The tables of ``clinics.toml`` (none if the file is absent), each checked for its kind of value."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = set(data) - set(_TEXT_TABLES) - set(_FLAG_TABLES)
    if unknown:
        raise ConfigError(f"{path}: unknown tables {sorted(unknown)}")
    for table, kind, what in [(t, str, "text") for t in _TEXT_TABLES] + [
        (t, bool, "true or false") for t in _FLAG_TABLES
    ]:
        values = data.get(table, {})
        if not isinstance(values, dict) or not all(isinstance(v, kind) for v in values.values()):
            raise ConfigError(f"{path}: [{table}] maps clinic slugs to {what}")
    return {table: dict(values) for table, values in data.items()}


class ProtocolBook:
    """Every protocol of a folder, plus how SMS names each clinic."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(f"NOTIFY_PROTOCOLS_DIR {self.directory} is not a folder")
        self.protocols: dict[str, Protocol] = {}
        for path in sorted(self.directory.glob("*.toml")):
            if path.name == CLINICS_FILE:
                continue
            protocol = load_protocol(path)
            self.protocols[protocol.slug] = protocol
        if DEFAULT_PROTOCOL not in self.protocols:
            raise ConfigError(f"{self.directory} needs {DEFAULT_PROTOCOL}.toml for unknown appointment types")
        clinics = _clinic_settings(self.directory / CLINICS_FILE)
        self.sms_names: dict[str, str] = clinics.get("sms_names", {})
        self.invite_summaries: dict[str, str] = clinics.get("invite_summaries", {})
        self.invite_patient_attendee: dict[str, bool] = clinics.get("invite_patient_attendee", {})
        self.staff_emails: dict[str, str] = clinics.get("staff_emails", {})

    def get(self, slug: str) -> Protocol:
        """The protocol ``slug``, or the default one (logged) when no file has that slug."""
        found = self.protocols.get(slug)
        if found is None:
            log.warning("no reminder protocol %s; using the default", slug, extra={"protocol": slug})
            return self.protocols[DEFAULT_PROTOCOL]
        return found

    def sms_name(self, clinic_slug: str, clinic_name: str) -> str:
        """How SMS names a clinic: its configured SMS name, else its name."""
        return self.sms_names.get(clinic_slug, clinic_name)

    def staff_email(self, clinic_slug: str) -> str | None:
        """Where the clinic's staff are emailed (escort alerts): its own address, else the ``"*"`` one."""
        return self.staff_emails.get(clinic_slug, self.staff_emails.get(INVITE_SUMMARY_DEFAULT)) or None

    def invite_summary(self, clinic_slug: str) -> str | None:
        """The clinic's template for provider calendar titles (its own, else the ``"*"`` one), if set."""
        return self.invite_summaries.get(clinic_slug, self.invite_summaries.get(INVITE_SUMMARY_DEFAULT))

    def invites_patient(self, clinic_slug: str) -> bool:
        """Whether the clinic's provider invites list the patient as an attendee (docs/invites.md: off)."""
        default = self.invite_patient_attendee.get(INVITE_SUMMARY_DEFAULT, False)
        return self.invite_patient_attendee.get(clinic_slug, default)

    def template_names(self) -> set[str]:
        """Every template file the protocols refer to (for checks)."""
        names: set[str] = set()
        for protocol in self.protocols.values():
            for step in protocol.steps:
                for channel in step.channels:
                    names.update(step.template + suffix for suffix in TEMPLATE_SUFFIXES[channel])
                names.update(a.template for a in step.attachments)
            if any(step.asks_reply and step.to == PATIENT for step in protocol.steps):
                names.update(f"{protocol.replies}/{name}.sms.txt" for name in REPLY_TEMPLATES)
            if any(step.asks_reply and step.to == ESCORT for step in protocol.steps):
                names.update(f"{protocol.replies}/{name}.sms.txt" for name in ESCORT_REPLY_TEMPLATES)
        return names
