"""Message texts from Jinja2 templates: SMS text, email text and HTML, attachments."""

from __future__ import annotations

import mimetypes
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy as email_policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    select_autoescape,
)

from services.notify.protocols import Protocol, Step
from shared import ical
from shared.cache import Lru
from shared.config import ConfigError
from shared.events import VIDEO
from shared.timeutil import format_local, to_zone, utcnow


@dataclass(frozen=True)
class FileAttachment:
    """A file attached to an email (``params``: Content-Type parameters, e.g. a calendar's method)."""

    filename: str
    content_type: str
    data: bytes
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RenderedEmail:
    """Subject, text and HTML of one email, and its attachments."""

    subject: str
    text: str
    html: str
    attachments: tuple[FileAttachment, ...] = ()


@dataclass(frozen=True)
class MessageContext:
    """What a template may say about one booking version (built from notify's booking copy)."""

    snapshot: dict[str, Any]
    manage_url: str
    join_url: str | None = None
    short_manage_url: str | None = None  # the same page through the booking host's short path, for SMS
    safety_check_url: str | None = None  # the day-before safety check (steps with ``safety_check``)
    course_url: str | None = None  # a course session's course page (whole-course messages)
    short_course_url: str | None = None  # the same through the booking host's short path, for SMS
    previous_start: datetime | None = None
    cancelled_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


DEFAULT_LANGUAGE = "en"
LANGUAGES_FOLDER = "languages"


def _clock(moment: datetime) -> str:
    hour = moment.strftime("%I").lstrip("0")
    return f"{hour}:{moment:%M %p} {moment.tzname()}"


def _day(moment: datetime) -> str:
    return f"{moment:%A} {moment.day} {moment:%B}"


@dataclass(frozen=True)
class Formats:
    """How one language words a time: CLDR patterns from its ``formats.toml`` (None: the English wording)."""

    locale: str = DEFAULT_LANGUAGE
    when_pattern: str | None = None
    clock_pattern: str | None = None
    day_pattern: str | None = None

    def _format(self, moment: datetime, pattern: str) -> str:
        # CLDR puts no-break spaces in "p. m."; messages are plain text (an SMS is billed by character set).
        text = format_datetime(moment, pattern, locale=self.locale)
        return re.sub(r"[\u00a0\u202f]", " ", text)

    def when(self, moment: datetime, tz: str) -> str:
        """``Tue 10 Mar 2026, 9:00 AM EDT`` in ``tz``."""
        if self.when_pattern is None:
            return format_local(moment, tz)
        local = to_zone(moment, tz)
        return f"{self._format(local, self.when_pattern)} {local.tzname()}"

    def clock(self, moment: datetime) -> str:
        """``9:00 AM EDT`` for a local time."""
        if self.clock_pattern is None:
            return _clock(moment)
        return f"{self._format(moment, self.clock_pattern)} {moment.tzname()}"

    def day(self, moment: datetime) -> str:
        """``Tuesday 10 March`` for a local time."""
        return _day(moment) if self.day_pattern is None else self._format(moment, self.day_pattern)


def _formats(folder: Path) -> Formats:
    path = folder / "formats.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return Formats(folder.name, raw["when"], raw["clock"], raw["day"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: needs when, clock and day (CLDR patterns): {exc}") from exc


def _shown_zone(snap: dict[str, Any]) -> str:
    """An in-clinic visit is told in the clinic's time, a video visit in the patient's (issue 17)."""
    if snap["appointment_type"]["mode"] == VIDEO:
        return str(snap["patient"]["time_zone"])
    return str(snap["clinic"]["time_zone"])


def _moment(protocol: Protocol, snap: dict[str, Any], start: datetime, formats: Formats) -> dict[str, Any]:
    """What is true as the message is rendered: changes open, join link due now, the patient's own time."""
    now = utcnow()
    cutoff = timedelta(hours=int(snap["appointment_type"].get("change_cutoff_hours", 0)))
    leads = [-s.offset for s in protocol.steps if s.join_link]
    patient_tz = snap["patient"]["time_zone"]
    theirs = to_zone(start, patient_tz)
    differs = theirs.utcoffset() != start.utcoffset()
    return {
        "can_change": snap.get("status", "confirmed") == "confirmed" and now < start - cutoff,
        "link_now": bool(leads) and start - now <= max(leads),
        "patient_when": formats.when(start, patient_tz) if differs else None,
        "patient_clock": formats.clock(theirs) if differs else None,
    }


def sms_text(raw: str) -> str:
    """An SMS as sent: the template's lines without indentation or blank runs."""
    # Templates are laid out for reading; an SMS keeps its line breaks but no indentation or blank runs.
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in raw.splitlines()]
    text = "\n".join(line for line in lines if line)
    return text


def _environment(loader: BaseLoader, formats: Formats) -> Environment:
    env = Environment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["when"] = lambda m: formats.when(m, str(m.tzinfo))
    env.filters["clock"] = formats.clock
    env.filters["day"] = formats.day
    env.globals["minutes"] = lambda n: timedelta(minutes=int(n))
    return env


class Renderer:
    """Renders the templates of one protocols folder, in each patient's language."""

    def __init__(self, protocols_dir: str | Path, *, opt_out_hint: str) -> None:
        templates = FileSystemLoader(str(Path(protocols_dir) / "templates"))
        self.env = _environment(templates, Formats())
        self.envs = {DEFAULT_LANGUAGE: self.env}
        self.formats = {DEFAULT_LANGUAGE: Formats()}
        # A language's tree comes first; a template it lacks is the English one (tests check none is lacking).
        for folder in sorted((Path(protocols_dir) / LANGUAGES_FOLDER).glob("*/")):
            own = FileSystemLoader(str(folder))
            self.formats[folder.name] = _formats(folder)
            self.envs[folder.name] = _environment(ChoiceLoader([own, templates]), self.formats[folder.name])
        self.opt_out_hint = opt_out_hint
        self._subjects: dict[tuple[int, str], Template] = {}  # compiled once per (language, subject)

    def language(self, snapshot: dict[str, Any]) -> str:
        """The language the patient of ``snapshot`` is written to in (English if it has no templates)."""
        code = str(snapshot.get("patient", {}).get("language") or DEFAULT_LANGUAGE)
        return code if code in self.envs else DEFAULT_LANGUAGE

    def when(self, snapshot: dict[str, Any], moment: datetime, tz: str) -> str:
        """``moment`` in ``tz`` as the patient of ``snapshot`` reads a time, in their language."""
        return self.formats[self.language(snapshot)].when(moment, tz)

    def _env(self, context: dict[str, Any]) -> Environment:
        return self.envs[context.get("language", DEFAULT_LANGUAGE)]

    def context(
        self, *, protocol: Protocol, step: Step, message: MessageContext, sms_name: str
    ) -> dict[str, Any]:
        """The variables every template of ``step`` sees."""
        snap = message.snapshot
        kind = snap["appointment_type"]
        clinic = snap["clinic"]
        tz = _shown_zone(snap)
        start = to_zone(datetime.fromisoformat(snap["start"]), tz)
        end = to_zone(datetime.fromisoformat(snap["end"]), tz)
        language = self.language(snap)
        formats = self.formats[language]
        return {
            **_moment(protocol, snap, start, formats),
            "language": language,
            "step": step.key,
            "asks_reply": step.asks_reply,
            "clinic": {
                "name": clinic["name"],
                "sms_name": sms_name,
                "address": clinic.get("address", ""),
                "phone": clinic.get("phone", ""),
            },
            "visit": {
                "name": kind["name"],
                "mode": kind["mode"],
                "is_video": kind["mode"] == "video",
                "duration_minutes": kind["duration_minutes"],
                "location": kind.get("location") or clinic.get("address", ""),
                "sms_label": protocol.sms_label or "appointment",
            },
            "provider": {"name": snap["provider"]["name"]},
            "course": _course(snap.get("course")),
            "escort": _escort(snap.get("escort"), str(clinic["time_zone"]), formats),
            "patient": {"first_name": (snap["patient"]["name"].split() or [""])[0]},
            "start": start,
            "end": end,
            "when": formats.when(start, tz),
            "previous_when": formats.when(message.previous_start, tz) if message.previous_start else None,
            "cancelled": snap.get("status") == "cancelled",
            "cancelled_by": message.cancelled_by,
            "manage_url": message.manage_url,
            "sms_manage_url": message.short_manage_url or message.manage_url,
            "join_url": message.join_url,
            "safety_check_url": message.safety_check_url,
            "course_url": message.course_url,
            "sms_course_url": message.short_course_url or message.course_url,
            "opt_out_hint": self.opt_out_hint,
            "protocol": dict(protocol.vars),
            **message.extra,
        }

    def sms(self, step: Step, context: dict[str, Any]) -> str:
        """The SMS text of ``step``."""
        return sms_text(self._env(context).get_template(f"{step.template}.sms.txt").render(context))

    def reply(self, template: str, context: dict[str, Any]) -> str:
        """The answer to an inbound SMS, from ``<template>.sms.txt``."""
        return sms_text(self._env(context).get_template(f"{template}.sms.txt").render(context))

    def _subject(self, step: Step, env: Environment) -> str:
        """The step's subject: the language's ``<template>.subject.txt``, else the protocol's own (a built-in
        step has none: its English subject is a ``.subject.txt`` file too)."""
        if (step.subject and env is self.env) or env.loader is None:
            return step.subject
        try:
            return env.loader.get_source(env, f"{step.template}.subject.txt")[0]
        except TemplateNotFound:
            return step.subject

    def email(self, step: Step, context: dict[str, Any]) -> RenderedEmail:
        """The email of ``step``: subject, text, HTML and attachments."""
        env = self._env(context)
        source = self._subject(step, env)
        compiled = self._subjects.get((id(env), source))
        if compiled is None:
            compiled = self._subjects.setdefault((id(env), source), env.from_string(source))
        subject = " ".join(compiled.render(context).split())
        text = env.get_template(f"{step.template}.email.txt").render(context).strip() + "\n"
        html = env.get_template(f"{step.template}.email.html").render(context)
        attachments = []
        for spec in step.attachments:
            data = env.get_template(spec.template).render(context).strip() + "\n"
            content_type = mimetypes.guess_type(spec.filename)[0] or "application/octet-stream"
            attachments.append(FileAttachment(spec.filename, content_type, data.encode("utf-8")))
        return RenderedEmail(subject=subject, text=text, html=html, attachments=tuple(attachments))


class _HeaderFactory(HeaderRegistry):
    """email's header factory, made cheaper: each header class made once (the standard one makes a class for
    every header set) and the parsed MIME headers kept (the same few on every message, parsed at length)."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._mime = Lru(256)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes.setdefault(key, super().__getitem__(name))
        return found

    def __call__(self, name: str, value: str) -> BaseHeader:
        # Only the structure's headers (a type, a file name, an encoding), never a person's; parsed headers
        # do not change. A multipart's boundary is new for every message: not worth keeping.
        if not name.lower().startswith(("content-", "mime-")) or value.startswith("multipart/"):
            return self[name](name, value)
        found: BaseHeader | None = self._mime.get((name, value))
        if found is None:
            found = self[name](name, value)
            self._mime.put((name, value), found)
        return found


EMAIL_POLICY = email_policy.default.clone(header_factory=_HeaderFactory())


def compose_email(
    *,
    sender: str,
    to: str,
    rendered: RenderedEmail,
    message_id: str,
    calendar: bytes | None = None,
) -> EmailMessage:
    """Build the MIME message: text and HTML alternatives (plus an optional calendar invite), files.

    With ``calendar`` (an iTIP invite, issue 4) the message is laid out the way calendar clients expect one
    (as Google Calendar sends them)::

        multipart/mixed
          multipart/alternative
            text/plain
            text/html
            text/calendar; charset="utf-8"; method=REQUEST      <- clients act on this part
          application/ics; name="invite.ics"  (attachment)       <- the same calendar, for clients that don't
          ...other attachments

    The ``method`` parameter is read from the calendar's own METHOD line, so the two always agree.
    """
    message = EmailMessage(policy=EMAIL_POLICY)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    # RFC 3834: an automatic message; out-of-office responders should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    attachments = list(rendered.attachments)
    if calendar is not None:
        method = ical.method_of(calendar)
        if method not in (ical.REQUEST, ical.CANCEL):
            raise ValueError(f"an invite needs METHOD:REQUEST or METHOD:CANCEL, not {method}")
        message.add_alternative(
            calendar.decode("utf-8"), subtype="calendar", params={"method": method}, charset="utf-8"
        )
        attachments.insert(0, FileAttachment("invite.ics", "application/ics", calendar))
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
            params=dict(attachment.params) or None,
        )
    return message


def message_key(message_id: int) -> str:
    """The idempotency key of a planned message (console outbox key, email Message-ID local part)."""
    return f"notify-{message_id}"


def message_id_for(key: str, sender: str) -> str:
    """A stable Message-ID for planned message ``key``, so a resend is recognisably the same message."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{key}@{domain}>"


def _escort(escort: dict[str, Any] | None, clinic_tz: str, formats: Formats) -> dict[str, Any] | None:
    """What templates may say of the escort: first names and the pick-up time, in the clinic's zone."""
    if not escort:
        return None
    pickup = to_zone(datetime.fromisoformat(escort["pickup_at"]), clinic_tz)
    return {
        "first_name": escort["first_name"],
        "patient_first_name": escort["patient_first_name"],
        "pickup_when": formats.when(pickup, clinic_tz),
        "pickup_clock": formats.clock(pickup),
        "confirmed": escort.get("confirmed_at") is not None,
    }


def _course(course: dict[str, Any] | None) -> dict[str, Any] | None:
    """A course session's place, for templates: "session 3 of 6", or "booster session" after the course."""
    if not course:
        return None
    index, sessions = int(course["index"]), int(course["sessions"])
    label = f"session {index} of {sessions}" if index <= sessions else "booster session"
    return {"index": index, "of": sessions, "label": label}
