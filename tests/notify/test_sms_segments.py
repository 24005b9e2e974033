"""Every SMS template fits in one or two segments (issue 17), with the links it really carries: the short manage
link on the booking host, a course message's short course link and a join link as consult mints it, in every
language the messages are written in (English and Spanish). The test prints the count per template and language."""

from __future__ import annotations

import math
from datetime import timedelta

from services.notify.models import SMS
from services.notify.preview import (
    SAMPLE_START,
    all_steps,
    sample_course_extra,
    sample_course_links,
    sample_snapshot,
)
from services.notify.rendering import MessageContext
from services.notify.runtime import Runtime
from shared import links
from tests.notify.test_protocols import GSM_7

# GSM 03.38's extension table: each costs two septets.
GSM_EXTENDED = set("^{}\\[~]|€\f")


def segments(text: str) -> tuple[int, str, int]:
    """(segments, encoding, units) of ``text`` as a carrier bills it (GSM-7 160/153, else UCS-2 70/67)."""
    if all(c in GSM_7 or c in GSM_EXTENDED for c in text):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        return (1 if units <= 160 else math.ceil(units / 153)), "GSM-7", units
    units = len(text.encode("utf-16-le")) // 2
    return (1 if units <= 70 else math.ceil(units / 67)), "UCS-2", units


def test_segment_counting() -> None:
    assert segments("a" * 160) == (1, "GSM-7", 160)
    assert segments("a" * 161) == (2, "GSM-7", 161)
    assert segments("€" * 80) == (1, "GSM-7", 160)
    assert segments("ü" * 160)[0] == 1
    assert segments("東" * 71) == (2, "UCS-2", 71)


def _texts(runtime: Runtime) -> list[tuple[str, str]]:
    return [text for language in runtime.renderer.envs for text in _texts_in(runtime, language)]


def _texts_in(runtime: Runtime, language: str) -> list[tuple[str, str]]:
    out = []
    for protocol, step in all_steps(runtime):  # the built-in ones (a link sent again) too
        if SMS not in step.channels:
            continue
        for mode in step.modes:
            snap = sample_snapshot(mode=mode, protocol=protocol.slug, language=language)
            join = links.join_token(
                runtime.signer,
                booking_id=snap["id"],
                version=2,
                participant=links.PATIENT,
                ends_at=SAMPLE_START + timedelta(hours=1),
                secret=links.new_secret(),
            )
            course_url, short_course_url = sample_course_links(runtime, step)
            message = MessageContext(
                snapshot=snap,
                course_url=course_url,
                short_course_url=short_course_url,
                manage_url="unused in SMS",
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
                join_url=links.join_url(runtime.config.consult_public_url, join) if step.join_link else None,
                previous_start=SAMPLE_START - timedelta(days=1),
                extra=sample_course_extra(step),
            )
            context = runtime.renderer.context(
                protocol=protocol, step=step, message=message, sms_name="Demo Clinic"
            )
            out.append(
                (
                    f"{language} {step.template}.sms.txt ({protocol.slug}, {mode})",
                    runtime.renderer.sms(step, context),
                )
            )
    return out


def test_every_sms_fits_in_two_segments(runtime: Runtime) -> None:
    rows = [(name, *segments(text)) for name, text in _texts(runtime)]
    report = "\n".join(
        f"{count} segment(s)  {units:3d} {encoding}  {name}" for name, count, encoding, units in rows
    )
    print("\nSMS segments per template\n" + report)
    assert rows
    assert "unused in SMS" not in "".join(text for _, text in _texts(runtime))
    # Every whole-course SMS leads to the course page by its short link (issue 18).
    course_texts = [text for name, text in _texts(runtime) if " course-" in name or "/course-" in name]
    assert len(course_texts) == 20  # with the course's link sent again (course-link-again)
    assert all("/c/" in text for text in course_texts), course_texts
    assert all(count <= 2 for _, count, _, _ in rows), report
