"""The provider's calendar entry of a booking: one VEVENT, the same in the invites and the feed."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from icalendar import Event, vCalAddress
from icalendar.enums import CLASS, STATUS, TRANSP
from jinja2 import Environment, StrictUndefined, Template, TemplateError, select_autoescape

from services.notify.config import NotifyConfig
from services.notify.models import CANCELLED, BookingCopy
from services.notify.protocols import ProtocolBook
from shared import ical, links
from shared.config import ConfigError
from shared.events import VIDEO
from shared.timeutil import day_bounds_utc, format_local, local_date

DEFAULT_SUMMARY = "{{ visit.mode_label }}: {{ patient.first_name }} {{ patient.last_initial }}"
MODE_LABELS = {VIDEO: "Video appointment", "in_person": "In-clinic appointment"}
LINK_TO_FOLLOW = "Video call: the join link follows in an updated invitation"
CANCELLED_VIDEO = "Video call (cancelled: no link will follow)"  # a cancelled entry promises nothing
# Titles are plain text (escaped by icalendar, not as HTML).
_ENV = Environment(undefined=StrictUndefined, autoescape=select_autoescape((), default_for_string=False))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@lru_cache(maxsize=64)
def _template(source: str) -> Template:
    return _ENV.from_string(source)


def short_name(name: str) -> tuple[str, str]:
    """(first name, last initial with a dot) of a patient's name: "Zoë O'Brien" -> ("Zoë", "O.")."""
    parts = name.split()
    if not parts:
        return "", ""
    return parts[0], (parts[-1][0] + "." if len(parts) > 1 else "")


def summary_context(snapshot: dict[str, Any], *, sms_name: str) -> dict[str, Any]:
    """What a clinic's title template may use (nothing about health)."""
    first, initial = short_name(snapshot["patient"]["name"])
    kind = snapshot["appointment_type"]
    return {
        "patient": {"first_name": first, "last_initial": initial, "name": snapshot["patient"]["name"]},
        "visit": {"mode_label": MODE_LABELS.get(kind["mode"], "Appointment"), "name": kind["name"]},
        "provider": {"name": snapshot["provider"]["name"]},
        "clinic": {"name": snapshot["clinic"]["name"], "sms_name": sms_name},
    }


def summary(snapshot: dict[str, Any], book: ProtocolBook) -> str:
    """The provider's title of a booking, from its clinic's template (or the default)."""
    clinic = snapshot["clinic"]
    source = book.invite_summary(clinic["slug"]) or DEFAULT_SUMMARY
    context = summary_context(snapshot, sms_name=book.sms_name(clinic["slug"], clinic["name"]))
    return " ".join(_template(source).render(context).split()) or "Appointment"


def check_summaries(book: ProtocolBook, sample: dict[str, Any]) -> None:
    """Render every configured title template with ``sample``; ConfigError names the broken one."""
    for slug, source in book.invite_summaries.items():
        try:
            _template(source).render(summary_context(sample, sms_name="Clinic"))
        except TemplateError as exc:
            raise ConfigError(f"clinics.toml [invite_summaries] {slug!r}: {exc}") from exc


def _cn(name: str) -> str:
    # A parameter value cannot hold a double quote (RFC 5545); RFC 6868's escape is not read by every client.
    return _CONTROL.sub(" ", name).replace('"', "'").strip()


def address(email: str, name: str, **params: Any) -> vCalAddress:
    """A ``mailto:`` calendar user with a display name."""
    return vCalAddress.new(f"mailto:{email}", cn=_cn(name) or None, **params)


def location(copy: BookingCopy, join_url: str | None) -> str:
    """Where the provider goes: the join link of a video visit, or the clinic's address."""
    kind = copy.snapshot["appointment_type"]
    if kind["mode"] == VIDEO:
        return CANCELLED_VIDEO if copy.status == CANCELLED else join_url or LINK_TO_FOLLOW
    return str(kind.get("location") or copy.snapshot["clinic"].get("address", ""))


def day_sheet_url(copy: BookingCopy, *, signer: links.LinkSigner, base_url: str) -> str | None:
    """The provider's day sheet of the visit's day (booking's ``/staff/day/<token>``), valid until that day
    ends in the clinic's zone; None for a cancelled visit or an event from before the clinic's id."""
    snap = copy.snapshot
    clinic_id = snap["clinic"].get("id")
    if clinic_id is None or copy.status == CANCELLED:
        return None
    tz = snap["clinic"]["time_zone"]
    day = local_date(copy.start_at, tz)
    token = links.day_sheet_token(
        signer,
        clinic_id=int(clinic_id),
        day=day.isoformat(),
        provider_id=int(snap["provider"]["id"]),
        expires_at=day_bounds_utc(day, tz)[1],
    )
    return links.day_sheet_url(base_url, token)


def description(
    copy: BookingCopy,
    *,
    config: NotifyConfig,
    book: ProtocolBook,
    join_url: str | None,
    day_sheet: str | None = None,
) -> str:
    """The entry's notes: what, where, the booking's staff link and (in an invite) the day sheet's."""
    snap = copy.snapshot
    first, initial = short_name(snap["patient"]["name"])
    clinic = book.sms_name(snap["clinic"]["slug"], snap["clinic"]["name"])
    mode = MODE_LABELS.get(snap["appointment_type"]["mode"], "Appointment")
    lines = [
        f"{mode} with {' '.join(p for p in (first, initial) if p)}, {clinic}.",
        f"Time: {format_local(copy.start_at, snap['provider']['time_zone'])}.",
    ]
    if snap["appointment_type"]["mode"] == VIDEO:
        lines.append(f"Join the video call: {join_url}" if join_url else location(copy, None) + ".")
    else:
        lines.append(f"Where: {location(copy, None)}.")
    lines += [
        f"Booking {copy.id} (staff): {config.staff_url(str(copy.id))}",
        *([f"Who is ready that day (your day sheet): {day_sheet}"] if day_sheet else []),
        "This entry follows the booking: it moves when the booking moves and is removed if it is cancelled.",
    ]
    return "\n".join(lines)


def provider_event(
    copy: BookingCopy,
    *,
    config: NotifyConfig,
    book: ProtocolBook,
    join_url: str | None,
    sequence: int,
    stamp: datetime,
    scheduling: bool,
    day_sheet: str | None = None,
) -> Event:
    """The provider's VEVENT of ``copy``'s current version.

    ``scheduling`` (an invite) adds ORGANIZER and the provider (and, if the clinic asks, the patient) as
    ATTENDEEs. The feed leaves them out: a subscribed calendar
    is read-only, attendees there make clients offer replies that cannot work, and a feed URL is fetched and
    stored by calendar services, so it carries no patient email address. A cancelled entry in the feed is
    titled "Cancelled: ..." and shows as free, for clients that ignore STATUS.
    """
    snap = copy.snapshot
    tz = snap["provider"]["time_zone"]
    cancelled = copy.status == CANCELLED
    title = summary(snap, book)
    if cancelled and not scheduling:
        title = f"Cancelled: {title}"
    event = Event.new(
        uid=ical.event_uid(copy.id, config.booking_public_url),
        sequence=sequence,
        stamp=stamp,
        start=ical.local(copy.start_at, tz),
        end=ical.local(copy.end_at, tz),
        summary=title,
        location=location(copy, join_url),
        description=description(copy, config=config, book=book, join_url=join_url, day_sheet=day_sheet),
        status=STATUS.CANCELLED if cancelled else STATUS.CONFIRMED,
        classification=CLASS.PRIVATE,
        transparency=TRANSP.TRANSPARENT if cancelled and not scheduling else TRANSP.OPAQUE,
    )
    if scheduling:
        organizer_name, organizer_email = config.organizer
        event.add("organizer", address(organizer_email, organizer_name))
        # The booking is already confirmed against the provider's published hours: no reply is asked for
        # (a decline in a calendar would not cancel it), so attendees take part as ACCEPTED with RSVP=FALSE.
        people = [snap["provider"]]
        if book.invites_patient(snap["clinic"]["slug"]):
            people.append(snap["patient"])
        for person in people:
            event.add(
                "attendee",
                address(
                    person["email"],
                    person["name"],
                    cutype="INDIVIDUAL",
                    role="REQ-PARTICIPANT",
                    partstat="ACCEPTED",
                    rsvp=False,
                ),
            )
    else:
        event.add("last-modified", stamp)
    return event
