"""Every protocol step rendered for sample bookings: behind ``flask ... protocols`` and the template tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notify.course_messages import session_entry
from services.notify.link_messages import BUILT_IN_STEPS, COURSE_LINK_AGAIN
from services.notify.models import EMAIL, SMS
from services.notify.protocols import (
    COURSE_ANCHORS,
    DEFAULT_PROTOCOL,
    ESCORT,
    ESCORT_REPLY_TEMPLATES,
    REPLY_TEMPLATES,
    Protocol,
    Step,
)
from services.notify.rendering import MessageContext
from services.notify.runtime import Runtime
from shared import links

SAMPLE_START = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


SAMPLE_COURSE_ID = str(uuid.UUID(int=3))
SAMPLE_COURSE = {"id": SAMPLE_COURSE_ID, "index": 3, "sessions": 6}


def sample_course_extra(step: Step) -> dict[str, Any]:
    """What a whole-course step's templates see: six sessions, across a daylight-saving change."""
    if step.on not in COURSE_ANCHORS:
        return {}
    starts = [SAMPLE_START + timedelta(days=d) for d in (-7, -6, -5, -1, 0, 1)]
    sessions = [
        session_entry(
            start_at=at,
            tz="America/New_York",
            index=n,
            count=6,
            previous_start=at - timedelta(days=1),
            cancelled=False,
        )
        for n, at in enumerate(starts, start=1)
    ]
    return {"course_change": step.on.removeprefix("course-"), "course_sessions": sessions}


def sample_course_links(runtime: Runtime, step: Step) -> tuple[str | None, str | None]:
    """The sample course's page link and its short SMS form, for a whole-course step or a course's link sent
    again (else None, None)."""
    if step.on not in COURSE_ANCHORS and step is not COURSE_LINK_AGAIN:
        return None, None
    base, ends_at = runtime.config.booking_public_url, SAMPLE_START + timedelta(days=1, hours=1)
    token = links.course_token(runtime.signer, course_id=SAMPLE_COURSE_ID, ends_at=ends_at)
    short = links.short_course_url(runtime.signer.keys, base, course_id=SAMPLE_COURSE_ID, ends_at=ends_at)
    return links.course_url(base, token), short


def sample_snapshot(
    *,
    mode: str,
    protocol: str,
    clinic_slug: str = "demo-clinic",
    course: dict[str, Any] | None = None,
    language: str = "en",
) -> dict[str, Any]:
    """A booking snapshot (as notify stores it) with made-up people, for previews; ``course``: a session."""
    return {
        "course": course,
        "id": str(uuid.UUID(int=1)),
        "version": 2,
        "status": "confirmed",
        "start": SAMPLE_START.isoformat(),
        "end": (SAMPLE_START + timedelta(minutes=60)).isoformat(),
        "clinic": {
            "slug": clinic_slug,
            "name": "Demo Ketamine Clinic",
            "time_zone": "America/New_York",
            "address": "200 Demo Avenue, Suite 3, Brooklyn, NY 11201",
            "phone": "+17185550100",
        },
        "appointment_type": {
            "id": 1,
            "slug": protocol,
            "name": "In-clinic infusion session" if mode == "in_person" else "Video consultation",
            "mode": mode,
            "duration_minutes": 60,
            "reminder_protocol": protocol,
            "location": "200 Demo Avenue, Suite 3, Brooklyn, NY 11201" if mode == "in_person" else "",
        },
        "provider": {
            "id": 1,
            "name": "Dr. Maya Chen",
            "email": "maya@example.com",
            "time_zone": "America/New_York",
        },
        "patient": {
            "id": str(uuid.UUID(int=2)),
            "name": "Alex Demo",
            "email": "alex@example.com",
            "phone": "+14155552671",
            "time_zone": "Europe/London",
            "sms_consent": True,
            "language": language,
        },
        "escort": {
            "id": str(uuid.UUID(int=4)),
            "first_name": "Sam",
            "phone": "+14155552672",
            "patient_first_name": "Alex",
            "agreed_at": (SAMPLE_START - timedelta(days=3)).isoformat(),
            # The session's end plus an hour's recovery.
            "pickup_at": (SAMPLE_START + timedelta(minutes=120)).isoformat(),
            "confirmed_at": None,
            "confirmed_how": None,
        },
        "previous_start": (SAMPLE_START - timedelta(days=1)).isoformat(),
        "cancelled_by": "patient",
    }


def preview(
    runtime: Runtime,
    protocol: Protocol,
    step: Step,
    mode: str,
    course: dict[str, Any] | None = None,
    language: str = "en",
) -> dict[str, str]:
    """The SMS and email texts of ``step`` for a sample booking of ``mode`` (a course session: ``course``)."""
    snap = sample_snapshot(mode=mode, protocol=protocol.slug, course=course, language=language)
    token = links.manage_token(
        runtime.signer, booking_id=snap["id"], version=2, ends_at=SAMPLE_START + timedelta(hours=1)
    )
    course_url, short_course_url = sample_course_links(runtime, step)
    context = runtime.renderer.context(
        protocol=protocol,
        step=step,
        message=MessageContext(
            snapshot=snap,
            course_url=course_url,
            short_course_url=short_course_url,
            manage_url=links.manage_url(runtime.config.booking_public_url, token),
            short_manage_url=links.short_manage_url(
                runtime.signer.keys,
                runtime.config.booking_public_url,
                booking_id=snap["id"],
                version=2,
                ends_at=SAMPLE_START + timedelta(hours=1),
            ),
            safety_check_url=links.short_day_check_url(
                runtime.signer.keys,
                runtime.config.booking_public_url,
                booking_id=snap["id"],
                version=2,
                ends_at=SAMPLE_START + timedelta(hours=1),
            )
            if step.safety_check
            else None,
            join_url=f"{runtime.config.consult_public_url}/join/sample-token" if step.join_link else None,
            previous_start=SAMPLE_START - timedelta(days=1),
            cancelled_by="patient",
            extra=sample_course_extra(step),
        ),
        sms_name=runtime.book.sms_name(snap["clinic"]["slug"], snap["clinic"]["name"]),
    )
    out: dict[str, str] = {}
    if SMS in step.channels:
        out[SMS] = runtime.renderer.sms(step, context)
    if EMAIL in step.channels:
        email = runtime.renderer.email(step, context)
        out[EMAIL] = f"Subject: {email.subject}\n\n{email.text}"
        out["html"] = email.html
        for attachment in email.attachments:
            out[f"attachment:{attachment.filename}"] = attachment.data.decode()
    if step.asks_reply:
        names = ESCORT_REPLY_TEMPLATES if step.to == ESCORT else REPLY_TEMPLATES
        out.update(_reply_previews(runtime, protocol, context, names))
    return out


def _reply_previews(
    runtime: Runtime, protocol: Protocol, context: dict[str, Any], names: tuple[str, ...]
) -> dict[str, str]:
    """The answers to a reply to ``protocol``'s asking step (two visits to choose from for ``which``)."""
    context = {
        **context,
        "choices": [{"day": 10, "when": context["when"]}, {"day": 17, "when": context["when"]}],
        "reply_word": "C",
    }
    out = {f"reply:{name}": runtime.renderer.reply(f"{protocol.replies}/{name}", context) for name in names}
    default = runtime.book.get(DEFAULT_PROTOCOL)
    out["reply:unmatched"] = runtime.renderer.reply(f"{default.replies}/unmatched", {})
    return out


def all_steps(runtime: Runtime) -> Iterator[tuple[Protocol, Step]]:
    """Every step of every protocol, then the built-in steps (under the default protocol)."""
    for protocol in runtime.book.protocols.values():
        for step in protocol.steps:
            yield protocol, step
    for step in BUILT_IN_STEPS:
        yield runtime.book.get(DEFAULT_PROTOCOL), step


def preview_all(runtime: Runtime, language: str = "en") -> Iterator[tuple[Protocol, Step, str, str]]:
    """(protocol, step, channel, text) for every step, in each visit mode it applies to."""
    for protocol, step in all_steps(runtime):
        for mode in step.modes:
            for channel, text in preview(runtime, protocol, step, mode, language=language).items():
                yield protocol, step, f"{channel}" if len(step.modes) == 1 else f"{channel}/{mode}", text
            course = preview(runtime, protocol, step, mode, SAMPLE_COURSE, language=language)
            for channel, text in course.items():
                yield protocol, step, f"{channel}/course-session", text
