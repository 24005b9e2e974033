"""Treatment courses: templates, the earliest plan, booking all sessions or none, stopping and moving them."""

from __future__ import annotations

import contextlib
import random
import re
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from services.booking import search
from services.booking.courses import planner
from services.booking.courses import service as courses
from services.booking.courses.planner import ALL_DAY, Candidate, Preferences, merged
from services.booking.courses.rules import spacing_of
from services.booking.models import Booking, BookingResource, OutboxEvent, Provider
from shared.db import get_db
from shared.timeutil import utcnow
from tests.booking.conftest import STAFF
from tests.booking.factories import (
    PATIENT,
    ChairSetup,
    assert_refused,
    chair_body,
    make_chair_setup,
    table_counts,
)

FIRST = "2026-03-03T10:00:00-05:00"  # a Tuesday; the US clocks go forward on Sunday 8 March
# Three a week, a day apart, the whole course within 16 days: Tue, Wed, Thu, then Mon, Tue, Wed after the change.
EXPECTED = [
    "2026-03-03T10:00:00-05:00",
    "2026-03-04T10:00:00-05:00",
    "2026-03-05T10:00:00-05:00",
    "2026-03-09T10:00:00-04:00",
    "2026-03-10T10:00:00-04:00",
    "2026-03-11T10:00:00-04:00",
]


def _template(client: FlaskClient, setup: ChairSetup, **fields: Any) -> dict[str, Any]:
    body = {
        "clinic_id": setup.clinic_id,
        "slug": "induction",
        "name": "Induction",
        "session_type_id": setup.type_id,
        "sessions": 6,
        "min_hours_between": 24,
        "max_per_week": 3,
        "within_days": 16,
        "same_provider": "required",
        **fields,
    }
    answer = client.post("/api/v1/course-templates", json=body, headers=STAFF)
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def _plan(client: FlaskClient, template: dict[str, Any], **fields: Any) -> Any:
    return client.post("/api/v1/courses/plan", json={"template_id": template["id"], **fields}, headers=STAFF)


def _book(
    client: FlaskClient, template: dict[str, Any], sessions: list[dict[str, Any]], **headers: str
) -> Any:
    body = {"template_id": template["id"], "sessions": sessions, "patient": PATIENT}
    return client.post("/api/v1/courses", json=body, headers={**STAFF, **headers})


def _planned(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"start": s["start"], "provider_id": s["provider_id"]} for s in plan["sessions"]]


def _events(app: Flask) -> list[tuple[str, str, int]]:
    with app.app_context(), get_db().transaction() as session:
        return [
            (row.event_type, str(row.booking_id), row.payload["booking"]["version"])
            for row in session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))
            if row.event_type != "course.changed"
        ]


def _course_events(app: Flask) -> list[dict[str, Any]]:
    """The ``course.changed`` payloads, oldest first, each checked against the sessions' own events."""
    with app.app_context(), get_db().transaction() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)).all()
        found = []
        for row in rows:
            if row.event_type != "course.changed":
                continue
            assert str(row.booking_id) == row.payload["course_id"]  # the outbox row names the course
            covered = [
                (str(r.booking_id), r.payload["booking"]["version"])
                for r in rows
                if r.event_type != "course.changed"
                and r.payload.get("course_change") == row.payload["event_id"]
            ]
            # The sessions' events that carry its id are exactly the sessions it lists, at the same versions.
            assert sorted(covered) == sorted((s["booking_id"], s["version"]) for s in row.payload["sessions"])
            assert "patient" not in str(row.payload)
            found.append(dict(row.payload))
        return found


_counts = table_counts


def test_the_earliest_plan_keeps_every_rule_and_wall_clock_times_across_dst(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=2, chairs=2)
    template = _template(client, setup)
    answer = _plan(
        client, template, start=FIRST, provider_id=setup.provider_ids[0], earliest="10:00", latest="10:00"
    )
    assert answer.status_code == 200, answer.json
    plan = answer.json
    assert [s["start"] for s in plan["sessions"]] == EXPECTED
    assert {s["provider_id"] for s in plan["sessions"]} == {setup.provider_ids[0]}
    assert [s["index"] for s in plan["sessions"]] == [1, 2, 3, 4, 5, 6]
    # Each session has other times it could move to with the rest kept, e.g. the last one later that week.
    assert plan["sessions"][5]["alternatives"]
    assert "2026-03-12T10:00:00-04:00" in [a["start"] for a in plan["sessions"][5]["alternatives"]]
    # Without a preferred time of day each session takes the earliest start its rules allow.
    earliest = _plan(client, template, start=FIRST, provider_id=setup.provider_ids[0]).json
    assert earliest["sessions"][3]["start"] == "2026-03-09T09:00:00-04:00"
    # Preferences: Tuesdays and Thursdays, mornings only; at two a week a 15-day window is a day short.
    fortnight = _template(client, setup, slug="fortnight", within_days=15)
    short = _plan(client, fortnight, start=FIRST, weekdays=[1, 3], earliest="10:00", latest="11:00")
    assert short.status_code == 422, short.json
    assert short.json["blocked_by"] == {"rule": "within_days", "session": 6}
    roomy = _template(client, setup, slug="roomy", within_days=21)
    picky = _plan(client, roomy, weekdays=[1, 3], latest="11:00", provider_id=setup.provider_ids[0]).json
    assert len(picky["sessions"]) == 6
    for s in picky["sessions"]:
        local = datetime.fromisoformat(s["start"])
        assert local.weekday() in (1, 3)
        assert local.hour < 11 or (local.hour == 11 and local.minute == 0)


def test_a_plan_that_cannot_be_completed_names_the_rule(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    short = _template(client, setup, within_days=5)
    blocked = _plan(client, short, start=FIRST)
    assert blocked.status_code == 422
    assert blocked.json["blocked_by"] == {"rule": "within_days", "session": 4}
    # The type's booking horizon ends before the course could: availability blocks it.
    client.patch(f"/api/v1/appointment-types/{setup.type_id}", json={"horizon_days": 4}, headers=STAFF)
    weekly = _template(
        client, setup, slug="spaced", min_hours_between=48, max_per_week=None, within_days=None
    )
    ends = _plan(client, weekly, start=FIRST)
    assert ends.status_code == 422
    assert ends.json["blocked_by"] == {"rule": "availability", "session": 3}
    capped = _template(client, setup, slug="weekly", max_per_week=1, within_days=None)
    assert _plan(client, capped, start=FIRST).json["blocked_by"] == {"rule": "max_per_week", "session": 2}
    taken = _plan(client, weekly, start="2026-03-03T03:00:00-05:00")
    assert taken.status_code == 422
    assert [p["name"] for p in taken.json["invalid_params"]] == ["start"]


def test_book_a_whole_course_in_one_request(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_chair_setup(app, providers=2, chairs=2)
    template = _template(client, setup)
    plan = _plan(client, template, start=FIRST, provider_id=setup.provider_ids[0]).json
    created = _book(client, template, _planned(plan), **{"Idempotency-Key": "course-1"})
    assert created.status_code == 201, created.json
    course = created.json
    assert course["status"] == "planned"
    assert [s["index"] for s in course["sessions"]] == [1, 2, 3, 4, 5, 6]
    assert all(s["resource"]["id"] in setup.chair_ids for s in course["sessions"])
    assert all(s["manage_url"].startswith("http://") for s in course["sessions"])
    events = _events(app)
    assert [e[0] for e in events] == ["booking.confirmed"] * 6
    assert {e[1] for e in events} == {s["id"] for s in course["sessions"]}
    # Each event says which session it is, so reminders can say "session 3 of 6".
    with app.app_context(), get_db().transaction() as session:
        carried = [
            row.payload["booking"]["course"]
            for row in session.scalars(select(OutboxEvent))
            if row.event_type == "booking.confirmed"
        ]
    assert sorted(c["index"] for c in carried) == [1, 2, 3, 4, 5, 6]
    assert {(c["id"], c["sessions"]) for c in carried} == {(course["id"], 6)}
    # Each session is an ordinary booking, carrying the course and its index.
    one = client.get(f"/api/v1/bookings/{course['sessions'][2]['id']}", headers=STAFF).json
    assert one["status"] == "confirmed"
    with app.app_context(), get_db().transaction() as session:
        rows = session.scalars(select(Booking).order_by(Booking.course_index)).all()
        assert [(str(b.course_id), b.course_index) for b in rows] == [(course["id"], n) for n in range(1, 7)]
    # One course event, recorded with them, lists every session: the patient gets one confirmation.
    (booked,) = _course_events(app)
    assert booked["change"] == "booked"
    assert booked["course_id"] == course["id"]
    assert [(s["index"], s["version"]) for s in booked["sessions"]] == [(n, 1) for n in range(1, 7)]
    replay = _book(client, template, _planned(plan), **{"Idempotency-Key": "course-1"})
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json["id"] == course["id"]
    assert len(_events(app)) == 6
    assert len(_course_events(app)) == 1
    misuse = _book(client, template, _planned(plan)[::-1], **{"Idempotency-Key": "course-1"})
    assert misuse.status_code == 422


def test_all_sessions_or_none(app: Flask, client: FlaskClient, clock: object) -> None:
    # Another patient holds the provider at session 5's time: the course books nothing and the 409 carries a
    # fresh plan.
    setup = make_chair_setup(app, providers=1, chairs=2)
    template = _template(client, setup)
    plan = _plan(client, template, start=FIRST).json
    fifth = plan["sessions"][4]["start"]
    rival = client.post(
        "/api/v1/bookings", json=chair_body(setup, fifth, email="rival@example.com"), headers=STAFF
    )
    assert rival.status_code == 201
    before = _counts(app)
    refused = _book(client, template, _planned(plan))
    assert refused.status_code == 409, refused.json
    assert refused.json["plan"]["sessions"][4]["start"] != fifth
    assert len(refused.json["plan"]["sessions"]) == 6
    assert _counts(app) == before  # no course, no booking, no claim, no patient, no event


def test_a_schedule_that_breaks_a_rule_is_refused_by_name(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=2, chairs=2)
    template = _template(client, setup)
    sessions = [{"start": s, "provider_id": setup.provider_ids[0]} for s in EXPECTED]
    before = _counts(app)
    too_close = [sessions[0], {**sessions[1], "start": "2026-03-03T15:00:00-05:00"}, *sessions[2:]]
    answer = _book(client, template, too_close)
    assert answer.status_code == 422
    assert "sessions.1.start" in {p["name"] for p in answer.json["invalid_params"]}
    crowded = [*sessions[:3], {**sessions[3], "start": "2026-03-06T10:00:00-05:00"}, *sessions[4:]]
    assert "sessions.3.start" in {p["name"] for p in _book(client, template, crowded).json["invalid_params"]}
    two_providers = [*sessions[:5], {**sessions[5], "provider_id": setup.provider_ids[1]}]
    assert _book(client, template, two_providers).status_code == 422
    assert _book(client, template, sessions[:5]).status_code == 422
    assert _counts(app) == before


def test_cancel_all_remaining_never_touches_earlier_sessions(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    plan = _plan(client, template, start=FIRST).json
    course = _book(client, template, _planned(plan)).json
    clock.move_to(datetime(2026, 3, 4, 17, 0, tzinfo=UTC))  # sessions 1 and 2 are past
    assert client.get(f"/api/v1/courses/{course['id']}", headers=STAFF).json["status"] == "active"
    stopped = client.post(
        f"/api/v1/courses/{course['id']}/cancel", json={"reason": "moved away"}, headers=STAFF
    ).json
    assert stopped["status"] == "stopped"
    assert stopped["stop_reason"] == "moved away"
    assert [s["status"] for s in stopped["sessions"]] == ["confirmed"] * 2 + ["cancelled"] * 4
    assert [s["version"] for s in stopped["sessions"][:2]] == [1, 1]
    cancels = [e for e in _events(app) if e[0] == "booking.cancelled"]
    # Exactly one cancellation per cancelled session, none for the earlier ones.
    assert sorted(e[1] for e in cancels) == sorted(s["id"] for s in stopped["sessions"][2:])
    (_, stop) = _course_events(app)
    assert stop["change"] == "cancelled"
    assert stop["cancelled_by"] == "staff"
    assert [s["index"] for s in stop["sessions"]] == [3, 4, 5, 6]
    again = client.post(f"/api/v1/courses/{course['id']}/cancel", json={}, headers=STAFF)
    assert again.status_code == 200
    assert len([e for e in _events(app) if e[0] == "booking.cancelled"]) == 4
    assert len(_course_events(app)) == 2  # nothing changed, nothing to tell


def test_cancel_this_and_the_following(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    course = _book(client, template, _planned(_plan(client, template, start=FIRST).json)).json
    client.post(f"/api/v1/bookings/{course['sessions'][1]['id']}/cancel", headers=STAFF)  # one session alone
    after = client.post(f"/api/v1/courses/{course['id']}/cancel", json={"from_index": 4}, headers=STAFF).json
    assert [s["status"] for s in after["sessions"]] == ["confirmed", "cancelled", "confirmed"] + [
        "cancelled"
    ] * 3
    cancels = [e[1] for e in _events(app) if e[0] == "booking.cancelled"]
    assert sorted(cancels) == sorted(s["id"] for n, s in enumerate(after["sessions"]) if n in (1, 3, 4, 5))
    # The session cancelled alone gets its own notice; "this and the following" one for its three.
    assert [[s["index"] for s in e["sessions"]] for e in _course_events(app)[1:]] == [[4, 5, 6]]
    missing = client.post(f"/api/v1/courses/{course['id']}/cancel", json={"from_index": 9}, headers=STAFF)
    assert missing.status_code == 404


def test_reschedule_this_and_following_keeps_earlier_sessions(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    course = _book(client, template, _planned(_plan(client, template, start=FIRST).json)).json
    moved = client.post(
        f"/api/v1/courses/{course['id']}/sessions/4/reschedule",
        json={"start": "2026-03-10T10:00:00-04:00", "following": True},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    starts = [s["start"] for s in moved.json["sessions"]]
    assert starts[:3] == [c["start"] for c in course["sessions"][:3]]
    assert [datetime.fromisoformat(s).astimezone(UTC).day for s in starts[3:]] == [10, 11, 12]
    moves = [e for e in _events(app) if e[0] == "booking.rescheduled"]
    assert sorted(e[1] for e in moves) == sorted(s["id"] for s in course["sessions"][3:])
    (_, moved_together) = _course_events(app)

    assert moved_together["change"] == "rescheduled"
    assert [(s["index"], s["version"]) for s in moved_together["sessions"]] == [(4, 2), (5, 2), (6, 2)]
    # One session alone, too close to the one before: refused, naming the rule; nothing changes.
    before = _counts(app)
    refused = client.post(
        f"/api/v1/courses/{course['id']}/sessions/2/reschedule",
        json={"start": "2026-03-03T15:00:00-05:00"},
        headers=STAFF,
    )
    assert refused.status_code == 422
    assert "min_hours_between" in refused.json["invalid_params"][0]["reason"]
    assert _counts(app) == before
    one = client.post(
        f"/api/v1/courses/{course['id']}/sessions/6/reschedule",
        json={"start": "2026-03-12T14:00:00-04:00"},
        headers=STAFF,
    )
    assert one.status_code == 200, one.json
    assert len([e for e in _events(app) if e[0] == "booking.rescheduled"]) == 4
    assert len(_course_events(app)) == 2  # one session alone: its own notice, as for any booking


def test_a_booster_after_the_course(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup, booster_type_id=setup.type_id, booster_interval_days=28)
    course = _book(client, template, _planned(_plan(client, template, start=FIRST).json)).json
    boosted = client.post(
        f"/api/v1/courses/{course['id']}/boosters",
        json={"start": "2026-04-08T10:00:00-04:00", "provider_id": setup.provider_ids[0]},
        headers=STAFF,
    )
    assert boosted.status_code == 201, boosted.json
    assert [s["index"] for s in boosted.json["sessions"]] == [1, 2, 3, 4, 5, 6, 7]
    client.post(f"/api/v1/courses/{course['id']}/cancel", json={}, headers=STAFF)
    refused = client.post(
        f"/api/v1/courses/{course['id']}/boosters",
        json={"start": "2026-05-06T10:00:00-04:00", "provider_id": setup.provider_ids[0]},
        headers=STAFF,
    )
    assert refused.status_code == 409


def test_existing_sessions_stay_when_hours_change_but_new_plans_follow(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    course = _book(client, template, _planned(_plan(client, template, start=FIRST).json)).json
    closed = client.put(
        f"/api/v1/providers/{setup.provider_ids[0]}/overrides/2026-03-17",
        json={"closed": True},
        headers=STAFF,
    )
    assert closed.status_code == 200
    kept = client.get(f"/api/v1/courses/{course['id']}", headers=STAFF).json
    assert [s["status"] for s in kept["sessions"]] == ["confirmed"] * 6
    later = _plan(client, template, start="2026-03-16T10:00:00-04:00").json
    assert "2026-03-17" not in [s["start"][:10] for s in later["sessions"]]


def test_bad_course_input_is_a_problem_and_changes_nothing(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    good = {
        "clinic_id": setup.clinic_id,
        "slug": "x",
        "name": "X",
        "session_type_id": setup.type_id,
        "sessions": 3,
    }
    nobody = "00000000-0000-0000-0000-000000000000"
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/api/v1/course-templates", {**good, "sessions": 0}, 422, "sessions"),
        ("POST", "/api/v1/course-templates", {**good, "same_provider": "maybe"}, 422, "same_provider"),
        ("POST", "/api/v1/course-templates", {**good, "session_type_id": 999}, 422, "session_type_id"),
        (
            "POST",
            "/api/v1/course-templates",
            {**good, "booster_interval_days": 20},
            422,
            "booster_interval_days",
        ),
        ("POST", "/api/v1/course-templates", {**good, "slug": "induction"}, 409, ""),
        ("POST", "/api/v1/course-templates", {**good, "clinic_id": 999}, 404, ""),
        ("PATCH", f"/api/v1/course-templates/{template['id']}", {}, 422, ""),
        ("PATCH", "/api/v1/course-templates/999", {"name": "Y"}, 404, ""),
        (
            "PATCH",
            f"/api/v1/course-templates/{template['id']}",
            {"session_type_id": 999},
            422,
            "session_type_id",
        ),
        (
            "PATCH",
            f"/api/v1/course-templates/{template['id']}",
            {"booster_type_id": 999},
            422,
            "booster_type_id",
        ),
        ("POST", "/api/v1/courses/plan", {"template_id": 999}, 404, ""),
        ("POST", "/api/v1/courses/plan", {"template_id": template["id"], "weekdays": [7]}, 422, "weekdays.0"),
        ("POST", "/api/v1/courses/plan", {"template_id": template["id"], "weekdays": []}, 422, "weekdays"),
        (
            "POST",
            "/api/v1/courses/plan",
            {"template_id": template["id"], "earliest": "12:00", "latest": "09:00"},
            422,
            "latest",
        ),
        ("POST", "/api/v1/courses/plan", {"template_id": template["id"], "times": []}, 422, "times"),
        (
            "POST",
            "/api/v1/courses/plan",
            {
                "template_id": template["id"],
                "times": [{"earliest": "09:00", "latest": "10:00"}, {"earliest": "12:00", "latest": "09:00"}],
            },
            422,
            "times.1.latest",
        ),
        (
            "POST",
            "/api/v1/courses/plan",
            {"template_id": template["id"], "times": [{"earliest": "09:00"}]},
            422,
            "times.0.latest",
        ),
        (
            "POST",
            "/api/v1/courses/plan",
            {"template_id": template["id"], "times": [{"earliest": "09:00", "latest": "9pm"}]},
            422,
            "times.0.latest",
        ),
        (
            "POST",
            "/api/v1/courses/plan",
            {
                "template_id": template["id"],
                "latest": "11:00",
                "times": [{"earliest": "09:00", "latest": "10:00"}],
            },
            422,
            "times",
        ),
        (
            "POST",
            "/api/v1/courses/plan",
            {"template_id": template["id"], "provider_id": 999},
            422,
            "provider_id",
        ),
        ("POST", "/api/v1/courses", {"template_id": template["id"], "sessions": []}, 422, "sessions"),
        ("POST", "/api/v1/courses", {"template_id": template["id"], "sessions": [{"start": FIRST}]}, 422, ""),
        ("GET", f"/api/v1/courses/{nobody}", None, 404, ""),
        ("POST", f"/api/v1/courses/{nobody}/cancel", {}, 404, ""),
        ("POST", f"/api/v1/courses/{nobody}/sessions/1/reschedule", {"start": FIRST}, 404, ""),
        ("POST", f"/api/v1/courses/{nobody}/boosters", {"start": FIRST, "provider_id": 1}, 404, ""),
    ]
    assert_refused(app, client, cases)


def _window(earliest: Any, latest: Any) -> dict[str, Any]:
    return {"earliest": earliest, "latest": latest}


# Hostile ``times`` for a plan: (the body's times, the field the problem names).
HOSTILE_TIMES: list[tuple[Any, str]] = [
    ("09:00", "times"),
    (_window("09:00", "10:00"), "times"),
    (5, "times"),
    (True, "times"),
    ([None], "times.0"),
    ([["09:00", "10:00"]], "times.0._schema"),
    ([{}], "times.0.earliest"),
    ([_window("09:00", "10:00")] * 25, "times"),
    ([_window(f"{h:02d}:00", f"{h:02d}:55") for h in range(24)] * 400, "times"),
    ([_window("10:00", "09:55")], "times.0.latest"),
    ([_window("24:00", "24:00")], "times.0.earliest"),
    ([_window("09:00", "25:61")], "times.0.latest"),
    ([_window("23:60", "23:55")], "times.0.earliest"),
    ([_window("09:03", "10:00")], "times.0.earliest"),
    ([_window("9:00", "10:00")], "times.0.earliest"),
    ([_window("09:00:00", "10:00")], "times.0.earliest"),
    ([_window("09:00\n", "10:00")], "times.0.earliest"),
    ([_window("\u0660\u0669:\u0660\u0660", "10:00")], "times.0.earliest"),  # Arabic-Indic digits
    ([_window("\uff10\uff19:\uff10\uff10", "10:00")], "times.0.earliest"),  # full-width digits
    ([_window("0" * 100_000, "10:00")], "times.0.earliest"),
    ([_window(900, "10:00")], "times.0.earliest"),
    ([_window(None, "10:00")], "times.0.earliest"),
    ([_window("09:00", ["10:00"])], "times.0.latest"),
    ([{**_window("09:00", "10:00"), "note": "x"}], "times.0.note"),
]


def test_hostile_times_of_day_in_a_plan_are_refused_by_name(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/api/v1/courses/plan", {"template_id": template["id"], "times": times}, 422, field)
        for times, field in HOSTILE_TIMES
    ]
    # The single pair and `times` together are refused, however good each is.
    cases.append(
        (
            "POST",
            "/api/v1/courses/plan",
            {"template_id": template["id"], "earliest": "09:00", "times": [_window("09:00", "10:00")]},
            422,
            "times",
        )
    )
    assert_refused(app, client, cases)


def test_equal_overlapping_and_all_day_windows_plan_and_store_nothing(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    before = _counts(app)
    whole_day = _plan(client, template, start=FIRST)
    assert whole_day.status_code == 200, whole_day.json
    # 24 windows that fill the day, given in any order, are the whole day; so are overlapping ones.
    hours = [_window(f"{h:02d}:00", f"{h:02d}:55") for h in reversed(range(24))]
    for times in (hours, [_window("00:00", "23:55"), _window("00:00", "12:00"), _window("06:00", "23:55")]):
        answer = _plan(client, template, start=FIRST, times=times)
        assert answer.status_code == 200, answer.json
        assert answer.json["sessions"] == whole_day.json["sessions"]
    # A window of one start, given twice, and the null pair beside it: only that start.
    ten = _plan(
        client, template, start=FIRST, times=[_window("10:00", "10:00")] * 2, earliest=None, latest=None
    )
    assert ten.status_code == 200, ten.json
    assert [s["start"] for s in ten.json["sessions"]] == EXPECTED
    # No free start in any window: the planner's 422 naming the rule, not a 500.
    none_free = _plan(client, template, times=[_window("00:00", "00:00"), _window("23:55", "23:55")])
    assert none_free.status_code == 422
    assert none_free.json["blocked_by"]["rule"] == "availability"
    assert _counts(app) == before


def test_a_plan_keeps_to_several_times_of_day(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    # "Ten o'clock or two o'clock" (overlapping windows are fine): every start, alternatives included, in one.
    times = [{"earliest": "10:00", "latest": "10:00"}, {"earliest": "14:00", "latest": "14:00"}]
    answer = _plan(client, template, start=FIRST, times=[*times, {"earliest": "13:55", "latest": "14:00"}])
    assert answer.status_code == 200, answer.json
    starts = [s["start"] for s in answer.json["sessions"]]
    assert starts == EXPECTED  # ten o'clock is the earlier of the two every day
    offered = [a["start"] for s in answer.json["sessions"] for a in s["alternatives"]]
    hours = {(datetime.fromisoformat(at).hour, datetime.fromisoformat(at).minute) for at in starts + offered}
    assert hours == {(10, 0), (14, 0)}
    # A window with no free start leaves the other: before opening, or two o'clock.
    early = _plan(client, template, times=[{"earliest": "06:00", "latest": "07:00"}, times[1]]).json
    assert {datetime.fromisoformat(s["start"]).hour for s in early["sessions"]} == {14}
    # The single pair still works as one window, as before.
    single = _plan(client, template, earliest="14:00", latest="14:00").json
    assert {datetime.fromisoformat(s["start"]).hour for s in single["sessions"]} == {14}


def test_another_booking_the_same_day_does_not_block_a_course_elsewhere(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    # The patient already holds a consultation on the first session's day: the course is still planned and
    # booked (the clinic decides whether two visits a day suit the patient), and both stand.
    setup = make_chair_setup(app, providers=2, chairs=2)
    template = _template(client, setup)
    other = client.post(
        "/api/v1/bookings", json=chair_body(setup, "2026-03-03T14:00:00-05:00", 1), headers=STAFF
    ).json
    course = _book(client, template, _planned(_plan(client, template, start=FIRST).json))
    assert course.status_code == 201
    assert course.json["patient"]["id"] == other["patient"]["id"]
    assert client.get(f"/api/v1/bookings/{other['id']}", headers=STAFF).json["status"] == "confirmed"


def test_status_completed_after_the_last_session(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    course = _book(client, template, _planned(_plan(client, template, start=FIRST).json)).json
    clock.move_to(datetime(2026, 3, 11, 15, 0, tzinfo=UTC) + timedelta(hours=2))
    assert client.get(f"/api/v1/courses/{course['id']}", headers=STAFF).json["status"] == "completed"
    # A completed course is not a drop-out: stopping it is refused and it stays completed.
    refused = client.post(f"/api/v1/courses/{course['id']}/cancel", json={}, headers=STAFF)
    assert refused.status_code == 409
    assert client.get(f"/api/v1/courses/{course['id']}", headers=STAFF).json["status"] == "completed"


def test_a_plan_skips_a_date_the_chair_is_closed(app: Flask, client: FlaskClient, clock: object) -> None:
    # The clinic's one chair is closed for maintenance on Wednesday 4 March: the plan moves session 2 to the
    # next day a chair is open, and the rules still hold.
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    closed = client.put(f"/api/v1/resources/{setup.chair_ids[0]}/closures/2026-03-04", headers=STAFF)
    assert closed.status_code == 200
    plan = _plan(client, template, start=FIRST, earliest="10:00", latest="10:00").json
    days = [s["start"][:10] for s in plan["sessions"]]
    assert "2026-03-04" not in days
    assert days[:3] == ["2026-03-03", "2026-03-05", "2026-03-06"]


def test_every_route_that_moves_a_session_keeps_the_course_rules(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    # The booking's own reschedule (staff) and the patient's manage link check the course's spacing too.
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    course = _book(client, template, _planned(_plan(client, template, start=FIRST).json)).json
    second = course["sessions"][1]
    before = _counts(app)
    staff = client.post(
        f"/api/v1/bookings/{second['id']}/reschedule",
        json={"start": "2026-03-03T16:00:00-05:00"},
        headers=STAFF,
    )
    assert staff.status_code == 422
    assert "min_hours_between" in staff.json["invalid_params"][0]["reason"]
    token = second["manage_url"].rsplit("/", 1)[1]
    patient = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": "2026-03-03T16:00:00-05:00"})
    assert patient.status_code == 422
    assert _counts(app) == before
    last = course["sessions"][5]
    moved = datetime.fromisoformat(last["start"]) + timedelta(hours=3)
    token = last["manage_url"].rsplit("/", 1)[1]
    later = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": moved.isoformat()})
    assert later.status_code == 200, later.json


def test_moving_this_and_following_keeps_the_chairs_staff_pinned(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=1, chairs=2)
    template = _template(client, setup)
    course = _book(client, template, _planned(_plan(client, template, start=FIRST).json)).json
    other = (
        setup.chair_ids[1]
        if course["sessions"][3]["resource"]["id"] == setup.chair_ids[0]
        else setup.chair_ids[0]
    )
    for session in course["sessions"][3:]:
        pinned = client.put(
            f"/api/v1/bookings/{session['id']}/resource", json={"resource_id": other}, headers=STAFF
        )
        assert pinned.status_code == 200, pinned.json
    # Their claims are all released first, then taken again: each keeps the chair staff pinned it to.
    moved = client.post(
        f"/api/v1/courses/{course['id']}/sessions/4/reschedule",
        json={"start": "2026-03-10T10:00:00-04:00", "following": True},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    assert [s["resource"]["id"] for s in moved.json["sessions"][3:]] == [other] * 3


def test_a_course_reads_the_chair_calendar_once_and_each_offer_and_bump_once_per_provider(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    # Six sessions, two providers, two chairs: one read of the chairs (not one per session), one read of each
    # provider's offer and one bump of both providers' schedule versions at the end (not one per session);
    # the claims still hold every chair.
    setup = make_chair_setup(app, providers=2, chairs=2)
    template = _template(client, setup, same_provider="preferred")
    sessions = [{"start": s, "provider_id": setup.provider_ids[n % 2]} for n, s in enumerate(EXPECTED)]
    sent: list[tuple[str, Any]] = []
    with app.app_context():
        engine = get_db().engine
    versions = _schedule_versions(app)

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((" ".join(statement.split()), parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        created = _book(client, template, sessions)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert created.status_code == 201, created.json
    chair_reads = [
        s for s, _ in sent if re.search(r"^SELECT .* FROM resources\b.* resources.clinic_id = ", s)
    ]
    assert len(chair_reads) == 1, chair_reads
    bumps = [s for s, _ in sent if s.startswith("UPDATE providers SET schedule_version")]
    assert len(bumps) == 1, bumps
    offers = [s for s, _ in sent if re.search(r"^SELECT providers\..* JOIN appointment_types\b", s)]
    assert len(offers) == 2, offers
    # The answer reads the sessions just written and their chairs from the session, not the database.
    assert [s for s, _ in sent if s.startswith(("SELECT resources.", "SELECT bookings."))] == chair_reads
    assert _schedule_versions(app) == {p: v + 1 for p, v in versions.items()}
    with app.app_context(), get_db().transaction() as session:
        held = session.execute(select(BookingResource.resource_id, BookingResource.start_at)).all()
    assert len(held) == 6
    assert {r for r, _ in held} <= set(setup.chair_ids)
    # The database's claims still decide: the same schedule booked again is refused, whole.
    again = _book(client, template, sessions)
    assert again.status_code == 409


def _schedule_versions(app: Flask) -> dict[int, int]:
    with app.app_context(), get_db().transaction() as session:
        return {p.id: p.schedule_version for p in session.scalars(select(Provider))}


def test_a_plan_moves_its_first_session_on_until_the_whole_course_fits(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    # The clinic's one chair is closed for the two weeks after the first: from any first session in the week
    # of 2 March, sessions 4-6 fall past the 16-day window. The earliest full course starts on 23 March,
    # beyond the first search (a week past the window): the planner searches on rather than giving up.
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup)
    for day in [*range(9, 14), *range(16, 21)]:
        closed = client.put(
            f"/api/v1/resources/{setup.chair_ids[0]}/closures/2026-03-{day:02}", headers=STAFF
        )
        assert closed.status_code == 200
    answer = _plan(client, template, earliest="10:00", latest="10:00")
    assert answer.status_code == 200, answer.json
    assert [s["start"] for s in answer.json["sessions"]] == [
        "2026-03-23T10:00:00-04:00",
        "2026-03-24T10:00:00-04:00",
        "2026-03-25T10:00:00-04:00",
        "2026-03-30T10:00:00-04:00",
        "2026-03-31T10:00:00-04:00",
        "2026-04-01T10:00:00-04:00",
    ]
    # The planned course books as it stands.
    assert _book(client, template, _planned(answer.json)).status_code == 201
    # Anchored on a first session in the closed-off stretch's week, the window still blocks it.
    anchored = _plan(client, template, start="2026-03-03T10:00:00-05:00")
    assert anchored.json["blocked_by"] == {"rule": "within_days", "session": 4}
    # When the type's horizon ends before any first session could complete, the answer names the rule.
    client.patch(f"/api/v1/appointment-types/{setup.type_id}", json={"horizon_days": 20}, headers=STAFF)
    other = _template(client, setup, slug="other")
    blocked = _plan(client, other)
    assert blocked.status_code == 422
    assert blocked.json["blocked_by"] == {"rule": "within_days", "session": 4}


def _plan_per_provider(
    session: Any, template_id: int, provider_id: int | None, prefs: Preferences
) -> tuple[list[Candidate], list[list[Candidate]]]:
    """The plan as the planner made it before it searched the providers together: a slot search per
    provider (each reading the chairs), every candidate's preferences checked, every pool filtered apart, and
    every alternative tried start by start. Only the first search (no widening): the test's plans fit in it."""
    template = courses.get_template(session=session, template_id=template_id)
    spacing, tz = spacing_of(template), template.clinic.time_zone
    begin = utcnow()
    assert spacing.within is not None
    end = begin + spacing.within + timedelta(days=8)
    candidates = sorted(
        (
            Candidate(at, provider)
            for provider in courses._providers(session, template, provider_id)
            for at in search.find_slots(
                session=session,
                provider_id=provider,
                appointment_type_id=template.session_type_id,
                start=begin,
                end=end,
            )
            if prefs.allows(at, tz)
        ),
        key=lambda c: (c.start, c.provider_id),
    )
    firsts = [c for c in candidates if provider_id in (None, c.provider_id)]
    plans = []
    for only in sorted({c.provider_id for c in firsts}):
        pool = [c for c in candidates if c.provider_id == only]
        mine = [c for c in firsts if c.provider_id == only]
        with contextlib.suppress(planner.Blocked):
            plans.append(planner.earliest(spacing, mine, pool, tz, end, courses.FIRST_TRIES))
    if not plans:
        plans.append(planner.earliest(spacing, firsts, candidates, tz, end, courses.FIRST_TRIES))
    chosen = min(plans, key=lambda p: (p[-1].start, p[0].start))
    starts = [c.start for c in chosen]
    alternatives: list[list[Candidate]] = []
    for index, at in enumerate(starts):
        others: list[Candidate] = []
        for candidate in candidates:
            trial = [*starts[:index], candidate.start, *starts[index + 1 :]]
            taken = candidate.start == at or any(o.start == candidate.start for o in others)
            kept = sorted(trial) == trial and planner.violation(spacing, trial, tz, index) is None
            if not taken and kept and len(others) < 3:
                others.append(candidate)
        alternatives.append(others)
    return chosen, alternatives


def test_a_busy_clinic_plans_as_a_slot_search_per_provider_would(app: Flask, client: FlaskClient) -> None:
    # Six providers and two chairs, a tenth of every provider's free starts over four weeks booked: the plan
    # that reads the chairs once for every provider proposes what a slot search per provider proposed, with
    # the same alternatives, whether any provider, one provider or one time of day is asked for.
    with time_machine.travel(datetime(2026, 3, 2, 12, 10, tzinfo=UTC), tick=False):
        setup = make_chair_setup(app, providers=6, chairs=2)
        template = _template(client, setup, same_provider="preferred", within_days=21)
        rng = random.Random(18)
        with app.app_context(), get_db().transaction() as session:
            free = [
                (provider, at.isoformat())
                for provider in range(len(setup.provider_ids))
                for at in search.find_slots(
                    session=session,
                    provider_id=setup.provider_ids[provider],
                    appointment_type_id=setup.type_id,
                    start=utcnow(),
                    end=utcnow() + timedelta(days=28),
                )
            ]
        booked = 0
        for n, (provider, at) in enumerate(rng.sample(free, len(free) // 10)):
            answer = client.post(
                "/api/v1/bookings",
                json=chair_body(setup, at, provider, email=f"busy{n}@example.com"),
                headers=STAFF,
            )
            assert answer.status_code in (201, 409), answer.json
            booked += answer.status_code == 201
        assert booked > 50
        asked = [
            (None, Preferences()),
            (setup.provider_ids[3], Preferences()),
            (
                None,
                Preferences(weekdays=frozenset({0, 1, 3, 4}), windows=merged([(clock_time(14), ALL_DAY[1])])),
            ),
        ]
        with app.app_context(), get_db().transaction() as session:
            for provider_id, prefs in asked:
                plan = courses.plan_course(
                    session=session, template_id=template["id"], provider_id=provider_id, prefs=prefs
                )
                expected = _plan_per_provider(session, template["id"], provider_id, prefs)
                assert (plan.sessions, plan.alternatives) == expected
                assert any(plan.alternatives)  # the comparison covers alternatives found
