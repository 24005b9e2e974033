"""The provider's timeline: sessions as markers, scores as server-drawn SVG, latest answers, flags, alerts."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import time_machine
from flask import Flask

from shared import events
from tests.checkins.conftest import (
    FIRST,
    NOW,
    PATIENT,
    SESSION,
    STAFF,
    booking_event,
    checkin_token,
    checkins,
    deliver,
    schedule,
)


def _answer_all(app: Flask, step: str, values: list[int]) -> None:
    (checkin,) = checkins(app, plan_step=step)
    token = checkin_token(app, checkin)
    for item, value in enumerate(values, start=1):
        assert app.test_client().post(f"/c/{token}", data={"item": item, "value": value}).status_code == 303


def _history(app: Flask, clock: time_machine.Coordinates) -> None:
    deliver(app, booking_event())
    second = FIRST + timedelta(days=7)
    deliver(app, booking_event(start=second))
    clock.move_to(FIRST - timedelta(hours=47))
    schedule(app)
    _answer_all(app, "phq9-before-first", [2, 2, 2, 2, 1, 1, 1, 1, 0])  # 12
    _answer_all(app, "gad7-before-first", [2, 2, 2, 1, 1, 1, 1])  # 10
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    mood = [c for c in checkins(app, plan_step="mood-day-after") if c.status == "sent"]
    pain = [c for c in checkins(app, plan_step="pain-day-after") if c.status == "sent"]
    for checkin, value in ((mood[0], 4), (pain[0], 6)):
        token = checkin_token(app, checkin)
        app.test_client().post(f"/c/{token}", data={"item": 1, "value": value})
    clock.move_to(second + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    for step, value in (("mood-day-after", 7), ("pain-day-after", 3)):
        (checkin,) = [c for c in checkins(app, plan_step=step) if c.status == "sent"]
        app.test_client().post(f"/c/{checkin_token(app, checkin)}", data={"item": 1, "value": value})


def test_the_staff_api_and_the_signed_page_show_the_same_timeline(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    _history(app, clock)
    client = app.test_client()
    data = client.get(f"/api/v1/patients/{PATIENT}/timeline", headers=STAFF).json
    assert [p["value"] for p in data["series"]["mood"]] == [4, 7]
    assert [p["value"] for p in data["series"]["pain"]] == [6, 3]
    assert [p["value"] for p in data["series"]["phq9"]] == [12]
    assert [p["value"] for p in data["series"]["gad7"]] == [10]
    assert len(data["sessions"]) == 2
    latest = {entry["instrument"]: entry for entry in data["latest"]}
    assert (latest["PHQ-9"]["score"], latest["PHQ-9"]["band"]) == (12, "moderate")
    assert latest["PHQ-9"]["answers"][0] == {
        "question": "Little interest or pleasure in doing things",
        "answer": "More than half the days",
        "value": 2,
    }
    assert data["flags"] == []
    assert data["timeline_url"].startswith("http://checkins.test/timeline/")

    page = client.get(data["timeline_url"].removeprefix("http://checkins.test"))
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    html = page.text
    assert html.count("<svg") == 4
    # Two sessions drawn as markers on each chart, a line through the two mood answers.
    assert html.count('class="session"') == 8
    assert re.search(r'<polyline points="[\d.]+,[\d.]+ [\d.]+,[\d.]+" class="line"/>', html)
    assert "More than half the days" in html
    assert "PHQ-9: 12 (moderate)" in html
    # Nothing from outside: every src and href is this service's own or a same-page link.
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/"), url


def test_flags_and_a_stop_show_on_the_timeline(app: Flask, clock: time_machine.Coordinates) -> None:
    deliver(app, booking_event())
    clock.move_to(FIRST - timedelta(hours=47))
    schedule(app)
    client = app.test_client()
    url = client.get(f"/api/v1/patients/{PATIENT}/timeline", headers=STAFF).json["timeline_url"]
    path = url.removeprefix("http://checkins.test")
    assert "No open flags." in client.get(path).text
    _answer_all(app, "phq9-before-first", [0, 0, 0, 0, 0, 0, 0, 0, 1])
    # The page a provider had open is built again once it changes (it is kept per revision).
    assert "No open flags." not in client.get(path).text
    (checkin,) = checkins(app, plan_step="gad7-before-first")
    app.test_client().post(f"/c/{checkin_token(app, checkin)}/stop")
    data = client.get(f"/api/v1/patients/{PATIENT}/timeline", headers=STAFF).json
    assert [f["kind"] for f in data["flags"]] == ["self-harm"]
    assert data["stopped_at"] is not None
    assert len(data["alerts"]) == 1
    html = client.get(data["timeline_url"].removeprefix("http://checkins.test")).text
    assert "Self-harm" in html
    assert "not acknowledged" in html
    assert "The patient stopped check-ins" in html


def test_timeline_links_and_ids_that_name_nothing(app: Flask, clock: time_machine.Coordinates) -> None:
    client = app.test_client()
    missing = client.get(f"/api/v1/patients/{uuid.uuid4()}/timeline", headers=STAFF)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert client.get("/timeline/not-a-token").status_code == 404
    assert (
        client.post(f"/api/v1/alerts/{uuid.uuid4()}/acks", headers=STAFF, json={"by": "A"}).status_code == 404
    )
    bad = client.post(f"/api/v1/alerts/{uuid.uuid4()}/acks", headers=STAFF, json={"by": ""})
    assert bad.status_code == 422
    assert "by" in str(bad.json["invalid_params"])


def test_the_timeline_lists_attendance_and_escort_history_from_booking_events(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking_id = uuid.uuid4()
    deliver(app, booking_event(booking_id=booking_id))
    moved = FIRST + timedelta(days=1)
    escort = events.EscortRef(
        id=uuid.uuid4(),
        first_name="Sam",
        phone="+14155550123",
        patient_first_name="Jordan",
        agreed_at=NOW,
        pickup_at=moved + timedelta(hours=2),
        confirmed_at=NOW,
        confirmed_how="sms",
    )
    deliver(
        app,
        booking_event(
            events.BOOKING_RESCHEDULED,
            booking_id=booking_id,
            version=2,
            start=moved,
            previous=FIRST,
            escort=escort,
        ),
    )
    other = uuid.uuid4()
    deliver(app, booking_event(booking_id=other, start=FIRST + timedelta(days=14)))
    deliver(
        app,
        booking_event(
            events.BOOKING_CANCELLED, booking_id=other, version=2, start=FIRST + timedelta(days=14)
        ),
    )
    client = app.test_client()
    data = client.get(f"/api/v1/patients/{PATIENT}/timeline", headers=STAFF).json
    assert sorted((h["kind"], h["escort"], h["escort_confirmed_how"]) for h in data["history"]) == [
        ("booked", "none", None),
        ("booked", "none", None),
        ("cancelled", "none", None),
        ("rescheduled", "confirmed", "sms"),
    ]
    page = client.get("/timeline/" + data["timeline_url"].rsplit("/", 1)[1])
    assert "Attendance and escort history" in page.text
    assert "Moved from Thu 5 Mar 2026, 10:00 AM EST to Fri 6 Mar 2026, 10:00 AM EST" in page.text
    assert "confirmed (by SMS)" in page.text
    assert "Cancelled by the patient" in page.text
    # Whether there is an escort, never who.
    assert "Sam" not in page.text
    assert "4155550123" not in page.text
    assert "Sam" not in str(data)
