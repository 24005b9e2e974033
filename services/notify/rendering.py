"""Message texts from Jinja2 templates: SMS text, email text and HTML, attachments."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notify.protocols import Protocol, Step
from shared import ical
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
    previous_start: datetime | None = None
    cancelled_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _clock(moment: datetime) -> str:
    hour = moment.strftime("%I").lstrip("0")
    return f"{hour}:{moment:%M %p} {moment.tzname()}"


def _day(moment: datetime) -> str:
    return f"{moment:%A} {moment.day} {moment:%B}"


def _shown_zone(snap: dict[str, Any]) -> str:
    """An in-clinic visit is told in the clinic's time, a video visit in the patient's (issue 17)."""
    if snap["appointment_type"]["mode"] == VIDEO:
        return str(snap["patient"]["time_zone"])
    return str(snap["clinic"]["time_zone"])


def _moment(protocol: Protocol, snap: dict[str, Any], start: datetime) -> dict[str, Any]:
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
        "patient_when": format_local(start, patient_tz) if differs else None,
        "patient_clock": _clock(theirs) if differs else None,
    }


def _sms_text(raw: str) -> str:
    # Templates are laid out for reading; an SMS keeps its line breaks but no indentation or blank runs.
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in raw.splitlines()]
    text = "\n".join(line for line in lines if line)
    return text


class Renderer:
    """Renders the templates of one protocols folder."""

    def __init__(self, protocols_dir: str | Path, *, opt_out_hint: str) -> None:
        self.env = Environment(
            loader=FileSystemLoader(str(Path(protocols_dir) / "templates")),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["when"] = lambda m: format_local(m, str(m.tzinfo))
        self.env.filters["clock"] = _clock
        self.env.filters["day"] = _day
        self.env.globals["minutes"] = lambda n: timedelta(minutes=int(n))
        self.opt_out_hint = opt_out_hint

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
        return {
            **_moment(protocol, snap, start),
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
            "patient": {"first_name": (snap["patient"]["name"].split() or [""])[0]},
            "start": start,
            "end": end,
            "when": format_local(start, tz),
            "previous_when": format_local(message.previous_start, tz) if message.previous_start else None,
            "cancelled_by": message.cancelled_by,
            "manage_url": message.manage_url,
            "sms_manage_url": message.short_manage_url or message.manage_url,
            "join_url": message.join_url,
            "opt_out_hint": self.opt_out_hint,
            "protocol": dict(protocol.vars),
            **message.extra,
        }

    def sms(self, step: Step, context: dict[str, Any]) -> str:
        """The SMS text of ``step``."""
        return _sms_text(self.env.get_template(f"{step.template}.sms.txt").render(context))

    def reply(self, template: str, context: dict[str, Any]) -> str:
        """The answer to an inbound SMS, from ``<template>.sms.txt``."""
        return _sms_text(self.env.get_template(f"{template}.sms.txt").render(context))

    def email(self, step: Step, context: dict[str, Any]) -> RenderedEmail:
        """The email of ``step``: subject, text, HTML and attachments."""
        subject = " ".join(self.env.from_string(step.subject).render(context).split())
        text = self.env.get_template(f"{step.template}.email.txt").render(context).strip() + "\n"
        html = self.env.get_template(f"{step.template}.email.html").render(context)
        attachments = []
        for spec in step.attachments:
            data = self.env.get_template(spec.template).render(context).strip() + "\n"
            content_type = mimetypes.guess_type(spec.filename)[0] or "application/octet-stream"
            attachments.append(FileAttachment(spec.filename, content_type, data.encode("utf-8")))
        return RenderedEmail(subject=subject, text=text, html=html, attachments=tuple(attachments))


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
    message = EmailMessage()
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


def _course(course: dict[str, Any] | None) -> dict[str, Any] | None:
    """A course session's place, for templates: "session 3 of 6", or "booster session" after the course."""
    if not course:
        return None
    index, sessions = int(course["index"]), int(course["sessions"])
    label = f"session {index} of {sessions}" if index <= sessions else "booster session"
    return {"index": index, "of": sessions, "label": label}
