"""Reminder protocols: data files that say which messages a kind of visit gets, when, and by which channel.

A protocol is ``<protocols dir>/<slug>.toml`` (its slug is the appointment type's ``reminder_protocol``)::

    slug = "video-consultation"
    version = 2                      # raise it with every change; each planned message records it
    sms_label = "video appointment"  # how SMS names the visit; never a diagnosis or a treatment

    [[steps]]
    key = "reminder-24h"             # unique in the protocol; part of the send key
    on = "start"                     # booked | rescheduled | cancelled (the moment it happens) | start | end
    offset = "-24h"                  # relative to start/end: -72h, -1h, 30m, 1d
    channels = ["sms", "email"]
    template = "video/reminder-24h"  # templates/<template>.sms.txt, .email.txt, .email.html
    subject = "Your appointment {{ when }}"

Optional step keys: ``urgent`` (SMS ignores quiet hours), ``always`` (never skipped for being already past
when the booking was made: sent at once instead), ``join_link`` (waits for and carries the patient's join
link), ``until`` (``start``, ``end`` or a duration after the due moment: later than this it is skipped),
``modes`` (only for these visit modes), ``attachments`` (``[{template = ..., filename = ...}]``),
``calendar`` (attach the patient's ``appointment.ics`` to the email; default: on for steps sent when a
booking event happens, off for the others). Step keys starting with ``provider-`` are reserved for the
provider's calendar invites.
``clinics.toml`` beside the protocols names clinics in SMS (a clinic's full name can reveal a treatment) and
may set, per clinic, how a provider's calendar titles an appointment (``[invite_summaries]``).
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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
TIME_ANCHORS = (START, END)
DEFAULT_PROTOCOL = "default"
CLINICS_FILE = "clinics.toml"
TEMPLATE_SUFFIXES = {SMS: (".sms.txt",), EMAIL: (".email.txt", ".email.html")}

_DURATION = re.compile(r"^([+-]?)(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_STEP_KEYS = {
    "key",
    "on",
    "offset",
    "channels",
    "template",
    "subject",
    "urgent",
    "always",
    "join_link",
    "until",
    "modes",
    "attachments",
    "calendar",
}
RESERVED_STEP_PREFIX = "provider-"  # the provider's calendar invites (services/notify/invites.py)
INVITE_SUMMARY_DEFAULT = "*"  # [invite_summaries] key for every clinic not listed
_PROTOCOL_KEYS = {"slug", "version", "description", "sms_label", "vars", "steps"}


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

    @property
    def on_event(self) -> bool:
        """Whether the step goes when a booking event happens (not at a time relative to the visit)."""
        return self.on in EVENT_ANCHORS

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

    def steps_on(self, anchors: Iterable[str], mode: str) -> list[Step]:
        """The steps anchored at any of ``anchors`` that apply to a visit of ``mode``."""
        wanted = set(anchors)
        return [s for s in self.steps if s.on in wanted and mode in s.modes]

    def step(self, key: str) -> Step | None:
        """The step ``key``, if the protocol has it."""
        return next((s for s in self.steps if s.key == key), None)


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"reminder protocol {path.name}: {message}")


def _load_step(path: Path, raw: Any, index: int) -> Step:
    where = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise _fail(path, f"{where} must be a table")
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise _fail(path, f"{where}: unknown keys {sorted(unknown)}")
    for required in ("key", "on", "channels", "template"):
        if required not in raw:
            raise _fail(path, f"{where}: missing {required!r}")
    key = raw["key"]
    if not isinstance(key, str) or not _KEY.match(key):
        raise _fail(path, f"{where}.key: use lowercase letters, digits and dashes")
    if key.startswith(RESERVED_STEP_PREFIX):
        raise _fail(path, f"{where}.key: keys starting with {RESERVED_STEP_PREFIX!r} are reserved")
    on = raw["on"]
    if on not in EVENT_ANCHORS + TIME_ANCHORS:
        raise _fail(path, f"{key}.on must be one of {', '.join(EVENT_ANCHORS + TIME_ANCHORS)}")
    channels = tuple(raw["channels"])
    if not channels or any(c not in CHANNELS for c in channels) or len(set(channels)) != len(channels):
        raise _fail(path, f"{key}.channels: give one or more of {', '.join(CHANNELS)}")
    if EMAIL in channels and not raw.get("subject"):
        raise _fail(path, f"{key}: an email step needs a subject")
    try:
        offset = parse_duration(raw.get("offset", "0m"))
    except ValueError as exc:
        raise _fail(path, f"{key}.offset: {exc}") from exc
    if on in EVENT_ANCHORS and offset:
        raise _fail(path, f"{key}: a step sent when a booking event happens takes no offset")
    default_until = START if on == START and offset < timedelta(0) else (END if on != END else "24h")
    until = raw.get("until", default_until)
    if until not in (START, END):
        try:
            if parse_duration(until) <= timedelta(0):
                raise ValueError("must be positive")
        except ValueError as exc:
            raise _fail(path, f"{key}.until: start, end or a duration after the due moment ({exc})") from exc
    modes = tuple(raw.get("modes", MODES))
    if not modes or any(m not in MODES for m in modes):
        raise _fail(path, f"{key}.modes: one or more of {', '.join(MODES)}")
    attachments = []
    for item in raw.get("attachments", []):
        if not isinstance(item, dict) or set(item) != {"template", "filename"}:
            raise _fail(path, f"{key}.attachments: each is {{template = ..., filename = ...}}")
        attachments.append(Attachment(template=item["template"], filename=item["filename"]))
    if attachments and EMAIL not in channels:
        raise _fail(path, f"{key}: attachments need the email channel")
    calendar = raw.get("calendar", on in EVENT_ANCHORS and EMAIL in channels)
    if not isinstance(calendar, bool) or (calendar and EMAIL not in channels):
        raise _fail(path, f"{key}.calendar: true or false, and true needs the email channel")
    return Step(
        key=key,
        on=on,
        channels=channels,
        template=raw["template"],
        subject=raw.get("subject", ""),
        offset=offset,
        urgent=bool(raw.get("urgent", False)),
        always=bool(raw.get("always", False)),
        join_link=bool(raw.get("join_link", False)),
        until=until,
        modes=modes,
        attachments=tuple(attachments),
        calendar=calendar,
    )


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
    )


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
        self.sms_names: dict[str, str] = {}
        self.invite_summaries: dict[str, str] = {}
        clinics = self.directory / CLINICS_FILE
        if clinics.exists():
            try:
                data = tomllib.loads(clinics.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{clinics}: {exc}") from exc
            unknown = set(data) - {"sms_names", "invite_summaries"}
            if unknown:
                raise ConfigError(f"{clinics}: unknown tables {sorted(unknown)}")
            for table in ("sms_names", "invite_summaries"):
                values = data.get(table, {})
                if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                    raise ConfigError(f"{clinics}: [{table}] maps clinic slugs to text")
            self.sms_names = dict(data.get("sms_names", {}))
            self.invite_summaries = dict(data.get("invite_summaries", {}))

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

    def invite_summary(self, clinic_slug: str) -> str | None:
        """The clinic's template for provider calendar titles (its own, else the ``"*"`` one), if set."""
        return self.invite_summaries.get(clinic_slug, self.invite_summaries.get(INVITE_SUMMARY_DEFAULT))

    def template_names(self) -> set[str]:
        """Every template file the protocols refer to (for checks)."""
        names: set[str] = set()
        for protocol in self.protocols.values():
            for step in protocol.steps:
                for channel in step.channels:
                    names.update(step.template + suffix for suffix in TEMPLATE_SUFFIXES[channel])
                names.update(a.template for a in step.attachments)
        return names
