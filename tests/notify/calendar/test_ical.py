"""The shared iCalendar builder: one UID per booking, SEQUENCE from the version, zones with their VTIMEZONE,
RFC 5545 folding and escaping, read back by icalendar and, independently, by vobject."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import ical
from tests.notify.calendar.support import parse, physical_lines

AWKWARD = "Zoë Ødegård-Núñez, Jr.; PhD: «ça va» 東京"


def visit(**changes: object) -> ical.PatientVisit:
    values: dict[str, object] = {
        "booking_id": "6f1c2d9e-0000-4000-8000-000000000001",
        "version": 1,
        "cancelled": False,
        "start": datetime(2026, 3, 9, 14, 0, tzinfo=UTC),
        "end": datetime(2026, 3, 9, 14, 45, tzinfo=UTC),
        "time_zone": "America/New_York",
        "visit_name": "Consultation",
        "video": True,
        "location": "200 Demo Avenue, Suite 3; Brooklyn",
        "clinic_name": "Clinic",
        "clinic_phone": "+17185550100",
        "provider_name": "Dr. Maya Chen",
        "manage_url": "https://booking.example.test/manage/abc.def",
    }
    values.update(changes)
    return ical.PatientVisit(**values)  # type: ignore[arg-type]


def build(**changes: object) -> bytes:
    return ical.patient_calendar(
        visit(**changes),
        booking_public_url="https://booking.example.test/",
        stamp=datetime(2026, 3, 2, 12, tzinfo=UTC),
    )


def test_uid_is_the_booking_on_the_booking_host_for_every_version() -> None:
    first = parse(build())
    moved = parse(
        build(version=3, start=datetime(2026, 3, 9, 15, tzinfo=UTC), end=datetime(2026, 3, 9, 16, tzinfo=UTC))
    )
    assert first.uid == moved.uid == "booking-6f1c2d9e-0000-4000-8000-000000000001@booking.example.test"
    assert (first.sequence, moved.sequence) == (0, 2)
    assert ical.event_uid("x", "not a url") == "booking-x@booking.invalid"


def test_patient_file_is_publish_with_the_zone_and_its_vtimezone() -> None:
    cal = parse(build())
    assert str(cal.calendar["METHOD"]) == "PUBLISH"
    assert str(cal.event["STATUS"]) == "CONFIRMED"
    assert str(cal.event["CLASS"]) == "PRIVATE"
    assert b"DTSTART;TZID=America/New_York:20260309T100000" in cal.raw
    (zone,) = cal.calendar.timezones
    assert zone.tz_name == "America/New_York"
    # Small: a few observances around the visit, not icalendar's 1970-2038 default.
    assert len(cal.raw) < 2500
    assert str(parse(build(cancelled=True)).event["STATUS"]) == "CANCELLED"


@pytest.mark.parametrize(
    ("tz", "start_utc", "local"),
    [
        # Booked on 2 March (EST, -05:00) for Monday 9 March, the day after the change to EDT (-04:00).
        ("America/New_York", datetime(2026, 3, 9, 14, 0, tzinfo=UTC), "20260309T100000"),
        # Booked in winter (GMT) for the Monday after the clocks go forward on 29 March (BST).
        ("Europe/London", datetime(2026, 3, 30, 8, 0, tzinfo=UTC), "20260330T090000"),
        # Southern hemisphere, leaving daylight time on 5 April.
        ("Australia/Sydney", datetime(2026, 4, 6, 23, 0, tzinfo=UTC), "20260407T090000"),
        # No daylight time at all.
        ("Asia/Tokyo", datetime(2026, 3, 9, 1, 0, tzinfo=UTC), "20260309T100000"),
    ],
)
def test_a_visit_after_a_daylight_saving_change_keeps_its_local_time(
    tz: str, start_utc: datetime, local: str
) -> None:
    raw = build(time_zone=tz, start=start_utc, end=start_utc + timedelta(minutes=45))
    cal = parse(raw)
    assert f"DTSTART;TZID={tz}:{local}".encode() in cal.raw
    # vobject computes the instant from the VTIMEZONE we sent (not from its own zone data): same instant.
    assert cal.other.vevent.dtstart.value.astimezone(UTC) == start_utc
    assert cal.other.vevent.dtstart.value.strftime("%Y%m%dT%H%M%S") == local


def test_lines_are_folded_at_75_octets_and_text_is_escaped() -> None:
    long_place = f"{AWKWARD}, " * 6
    raw = build(
        visit_name=AWKWARD, clinic_name=AWKWARD, provider_name=AWKWARD, location=long_place, video=False
    )
    lines = physical_lines(raw)
    assert max(len(line) for line in lines) <= 75
    assert any(line.startswith(b" ") for line in lines)  # something long enough to fold
    for line in lines:
        line.decode("utf-8")  # no line break splits a multi-byte character
    assert b"Jr.\\; PhD" in raw.replace(b"\r\n ", b"")  # ; and , escaped in TEXT values
    cal = parse(raw)
    assert str(cal.event["SUMMARY"]) == f"{AWKWARD}, {AWKWARD}"
    assert str(cal.event["LOCATION"]) == long_place
    assert cal.other.vevent.summary.value == f"{AWKWARD}, {AWKWARD}"


def test_method_and_content_type_agree() -> None:
    raw = build()
    assert ical.method_of(raw) == "PUBLISH"
    assert ical.content_type("CANCEL") == "text/calendar; charset=utf-8; method=CANCEL"
    assert ical.method_of(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nMETHOD:X\r\n") is None
    with pytest.raises(ValueError, match="unknown iTIP method"):
        ical.new_calendar(method="REPLY-ALL", events=[])


def test_a_video_entry_carries_the_join_link_and_a_reminder_and_a_cancelled_one_no_alarm() -> None:
    join = "https://consult.example.test/join/tok.en"
    cal = parse(build(join_url=join))
    assert str(cal.event["LOCATION"]) == join
    assert f"Join the video call: {join}" in str(cal.event["DESCRIPTION"])
    (alarm,) = cal.event.walk("VALARM")
    assert str(alarm["ACTION"]) == "DISPLAY"
    assert alarm["TRIGGER"].dt == -timedelta(hours=1)
    assert not parse(build(cancelled=True)).event.walk("VALARM")
    assert str(parse(build(video=False)).event["LOCATION"]) == "200 Demo Avenue, Suite 3; Brooklyn"


def test_web_calendar_links_compose_the_same_entry() -> None:
    from urllib.parse import parse_qs, urlsplit

    links = ical.add_to_calendar_links(visit(join_url="https://consult.example.test/join/x"))
    google = urlsplit(links["google"])
    assert (google.netloc, google.path) == ("calendar.google.com", "/calendar/render")
    query = parse_qs(google.query)
    assert query["action"] == ["TEMPLATE"]
    assert query["dates"] == ["20260309T140000Z/20260309T144500Z"]
    assert query["ctz"] == ["America/New_York"]
    assert query["text"] == ["Consultation, Clinic"]
    assert "https://booking.example.test/manage/abc.def" in query["details"][0]
    for name, host in (("outlook", "outlook.live.com"), ("office365", "outlook.office.com")):
        parts = urlsplit(links[name])
        assert parts.netloc == host
        fields = parse_qs(parts.query)
        assert fields["startdt"] == ["2026-03-09T14:00:00+00:00"]
        assert fields["location"] == ["https://consult.example.test/join/x"]


@pytest.mark.parametrize("method", [None, "PUBLISH", "REQUEST", "CANCEL"])
def test_a_calendar_written_piece_by_piece_is_the_calendar_icalendar_writes(method: str | None) -> None:
    stamp = datetime(2026, 3, 2, 12, tzinfo=UTC)
    events = [
        ical.patient_event(
            visit(time_zone=tz, visit_name=AWKWARD * 3), booking_public_url="https://b.test/", stamp=stamp
        )
        for tz in ("Europe/London", "America/New_York", "Europe/London", "UTC")
    ]
    properties = [("x-wr-calname", AWKWARD), ("x-wr-timezone", "Europe/London")]
    for some in (events[:1], events, events[3:], []):
        whole = ical.new_calendar(method=method, events=some, properties=properties).to_ical()
        assert ical.calendar_ical(method=method, events=some, properties=properties) == bytes(whole)
    assert ical.vtimezone_ical("Europe/London", 2026, 2028) is ical.vtimezone_ical(
        "Europe/London", 2026, 2028
    )


def test_ascii_lines_fold_where_icalendar_folds_them_escapes_kept_whole() -> None:
    stamp = datetime(2026, 3, 2, 12, tzinfo=UTC)
    for pad in range(160):
        # An escaped ; , or \ lands on every column once, and a line ends on every length around a fold.
        where = "x" * pad + "Suite 3; Brooklyn, NY\\ 11201; " * 4
        event = ical.patient_event(
            visit(video=False, location=where), booking_public_url="https://b.test/", stamp=stamp
        )
        whole = ical.new_calendar(method="PUBLISH", events=[event]).to_ical()
        assert ical.calendar_ical(method="PUBLISH", events=[event]) == bytes(whole)
