"""The patient's course page: every session through one signed link, cancelling some or all of them."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.booking.models import OutboxEvent
from shared import links
from shared.db import get_db
from shared.links import current_signer
from tests.booking.conftest import STAFF
from tests.booking.courses.test_courses import EXPECTED, _book, _template
from tests.booking.factories import make_chair_setup
from tests.booking.factories import table_counts as _counts
from tests.booking.pages_support import form_action, hidden, text
from tests.booking.pages_support import links as page_links

BASE = "http://127.0.0.1:8001"


def _course(client: FlaskClient, app: Flask, *, cutoff: int = 0) -> dict[str, Any]:
    setup = make_chair_setup(app, providers=1, chairs=1, change_cutoff_hours=cutoff)
    template = _template(client, setup)
    sessions = [{"start": s, "provider_id": setup.provider_ids[0]} for s in EXPECTED]
    answer = _book(client, template, sessions)
    assert answer.status_code == 201, answer.json
    assert answer.json["course_url"].startswith(f"{BASE}/course/")
    return dict(answer.json)


def _course_events(app: Flask) -> list[dict[str, Any]]:
    with app.app_context(), get_db().transaction() as session:
        rows = session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "course.changed"))
        return [dict(row.payload) for row in rows]


def _statuses(client: FlaskClient, course: dict[str, Any]) -> list[str]:
    staff = client.get(f"/api/v1/courses/{course['id']}", headers=STAFF).json
    return [s["status"] for s in staff["sessions"]]


def test_the_course_page_lists_every_session_in_the_clinics_zone(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    course = _course(pages_client, pages_app)
    page = pages_client.get(course["course_url"].removeprefix(BASE))
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    body = text(page.text)
    for n in range(1, 7):
        assert f"Session {n} of 6" in body
    # In-clinic visits are told in the clinic's time (New York), whatever the patient's own zone (London).
    assert "Tuesday 3 March 2026, 10:00 AM" in body
    assert "Monday 9 March 2026, 10:00 AM" in body  # wall-clock time kept across the DST change
    assert "Booked" in body
    # Each session's own manage link, at its current version, opens that session.
    for session in course["sessions"]:
        manage = session["manage_url"].removeprefix(BASE)
        assert f'href="{manage}"' in page.text
    assert "Cancel the whole course" in body


def test_bad_expired_and_wrong_purpose_links_are_answered_not_crashed(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    course = _course(pages_client, pages_app)
    token = course["course_url"].rsplit("/", 1)[1]
    forged = pages_client.get("/course/" + token[:-3] + "abc")
    assert forged.status_code == 404
    assert "This link does not work" in text(forged.text)
    manage_token = course["sessions"][0]["manage_url"].rsplit("/", 1)[1]
    wrong = pages_client.get("/course/" + manage_token)  # a manage token is no course token
    assert wrong.status_code == 404
    assert "This link does not work" in text(wrong.text)
    assert pages_client.get("/manage/" + token).status_code == 404  # nor the other way round
    assert pages_client.post(f"/course/{token[:-3]}abc/cancel").status_code in (400, 404)
    assert pages_client.get("/c/not-a-code").status_code == 404
    with pages_app.test_request_context():
        unknown = links.course_token(
            current_signer(), course_id="00000000-0000-4000-8000-000000000000", ends_at=datetime.now(UTC)
        )
    assert pages_client.get("/course/" + unknown).status_code == 404
    # A week after the last session the link has expired; its short form too.
    with pages_app.test_request_context():
        last_end = datetime.fromisoformat(course["sessions"][-1]["end"])
        short = links.short_course_url(current_signer().keys, BASE, course_id=course["id"], ends_at=last_end)
    short = short.removeprefix(BASE)
    landed = pages_client.get(short)
    assert landed.status_code == 302
    assert pages_client.get(landed.headers["Location"]).status_code == 200
    clock.shift(timedelta(days=40))
    expired = pages_client.get("/course/" + token)
    assert expired.status_code == 410
    page = text(expired.text)
    assert "This link has expired" in page
    # The way on: book again at the clinic, or have the course's current link sent (test_course_relink.py).
    assert "Book again" in page
    assert "Send my course link again" in page
    assert "Session 1" not in page
    assert "10:00" not in page
    again = pages_client.get(short)
    assert again.status_code == 302
    assert pages_client.get(again.headers["Location"]).status_code == 410
    tampered = pages_client.get(short[:-2] + ("A" if short[-2] != "A" else "B") + short[-1])
    assert tampered.status_code == 404
    asked = pages_client.get("/course/" + token, headers={"Accept": "application/problem+json"})
    assert asked.status_code == 410
    assert asked.json["type"].endswith("/link-expired")


def test_a_garbled_cancelled_notice_is_ignored_not_crashed(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    course = _course(pages_client, pages_app)
    path = course["course_url"].removeprefix(BASE)
    # "²" and "٣" pass str.isdigit; int() refuses the first and 5,000 digits: neither may be a 500.
    for raw in ("\u00b2", "\u0663", "9" * 5000, "2,\u00b2,x,,-1"):
        assert pages_client.get(path, query_string={"cancelled": raw}).status_code == 200, raw
    assert pages_client.get(path, query_string={"cancelled": "\x00"}).status_code == 400
    page = pages_client.get(path, query_string={"cancelled": "2,\u00b2,x,,-1," + "9" * 5000})
    assert page.status_code == 200
    assert "We have cancelled session 2 and let the clinic know." in text(page.text)
    assert _statuses(pages_client, course) == ["confirmed"] * 6  # a notice only: nothing was cancelled


def _cancel_page(client: FlaskClient, course: dict[str, Any], query: str = "") -> Any:
    page = client.get(course["course_url"].removeprefix(BASE) + "/cancel" + query)
    assert page.status_code == 200, page.text
    return page


def test_cancel_this_and_the_following_cancels_exactly_those(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    course = _course(pages_client, pages_app)
    path = course["course_url"].removeprefix(BASE)
    ask = _cancel_page(pages_client, course, "?from=4")
    body = text(ask.text)
    assert "Cancel these 3 sessions?" in body
    assert "Session 4 of 6" in body
    assert "Session 6 of 6" in body
    assert "Session 3 of 6" not in body
    assert _statuses(pages_client, course) == ["confirmed"] * 6  # asking changes nothing
    done = pages_client.post(
        path + "/cancel",
        data={"csrf_token": hidden(ask.text, "csrf_token"), "from": hidden(ask.text, "from")},
    )
    assert done.status_code == 303
    assert _statuses(pages_client, course) == ["confirmed"] * 3 + ["cancelled"] * 3
    answer = text(pages_client.get(done.headers["Location"]).text)
    assert "We have cancelled these 3 sessions (4, 5, 6)" in answer
    assert "Stopped" in answer
    (change,) = [e for e in _course_events(pages_app) if e["change"] == "cancelled"]
    assert change["cancelled_by"] == "patient"
    assert [s["index"] for s in change["sessions"]] == [4, 5, 6]
    # The same link still works, and the earlier sessions can still go one by one or together.
    assert "Cancel the whole course" in text(pages_client.get(path).text)


def test_cancel_the_whole_course_and_a_replayed_form_changes_nothing_more(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    course = _course(pages_client, pages_app)
    path = course["course_url"].removeprefix(BASE)
    ask = _cancel_page(pages_client, course)
    assert "Cancel the whole course?" in text(ask.text)
    form = {"csrf_token": hidden(ask.text, "csrf_token")}
    done = pages_client.post(path + "/cancel", data=form)
    assert done.status_code == 303
    assert _statuses(pages_client, course) == ["cancelled"] * 6
    assert "We have cancelled these 6 sessions (1, 2, 3, 4, 5, 6)" in text(
        pages_client.get(done.headers["Location"]).text
    )
    events = len(_course_events(pages_app))
    again = pages_client.post(path + "/cancel", data=form)  # the form sent twice
    assert again.status_code == 303
    assert "Nothing was cancelled" in text(pages_client.get(again.headers["Location"]).text)
    assert len(_course_events(pages_app)) == events
    # Nothing is left to cancel, so the page offers no cancel and its GET leads back to the course.
    assert "Cancel the whole course" not in text(pages_client.get(path).text)
    assert pages_client.get(path + "/cancel").status_code == 302


def test_cancel_refuses_bad_input_and_sessions_past_their_deadline(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    course = _course(pages_client, pages_app, cutoff=24)
    path = course["course_url"].removeprefix(BASE)
    ask = _cancel_page(pages_client, course)
    token = hidden(ask.text, "csrf_token")
    for bad in ("0", "99", "x"):
        answer = pages_client.post(path + "/cancel", data={"csrf_token": token, "from": bad})
        assert answer.status_code in (302, 404), bad
    assert _statuses(pages_client, course) == ["confirmed"] * 6
    assert pages_client.post(path + "/cancel", data={"from": "2"}).status_code == 400  # no CSRF token
    # Within a day of session 1, it can no longer be cancelled online: the whole course cannot go either.
    clock.move_to(datetime(2026, 3, 2, 16, 0, tzinfo=UTC))
    page = text(pages_client.get(path).text)
    assert "Cancel the whole course" not in page
    assert "Cancel Session 2 of 6 and the following" in page
    refused = pages_client.post(path + "/cancel", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "can no longer be changed online" in text(refused.text)
    assert _statuses(pages_client, course) == ["confirmed"] * 6


# --- booking a whole course from the clinic's link ------------------------------------------------------------

FORM = {
    "name": "Jordan Example",
    "email": "jordan@example.com",
    "phone": "+14155552671",
    "sms_consent": "yes",
}


def _schedule(page: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(r'<input type="hidden" name="s" value="([^"]+)"', page)]


def _post(client: FlaskClient, page: str, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "csrf_token": hidden(page, "csrf_token"),
        "idempotency_key": hidden(page, "idempotency_key"),
        "s": _schedule(page),
        **FORM,
        **fields,
    }
    return client.post(form_action(page), data=data)


def test_book_a_whole_course_with_one_session_swapped_in_one_request(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    template = _template(pages_client, setup)
    staff_plan = pages_client.post(
        "/api/v1/courses/plan", json={"template_id": template["id"]}, headers=STAFF
    ).json
    page = pages_client.get("/book/clinic-infusion/course/induction?tz=Europe/London")
    assert page.status_code == 200
    body = text(page.text)
    assert "Book your course: Induction" in body
    assert "Session 6 of 6" in body
    proposed = _schedule(page.text)
    # The page proposes the planner's earliest schedule (times in the clinic's zone).
    assert [s.split("@")[0] for s in proposed] == [
        datetime.fromisoformat(s["start"]).astimezone(UTC).isoformat() for s in staff_plan["sessions"]
    ]
    assert "Monday 9 March 2026, 9:00 AM" in body  # New York wall-clock time after the DST change
    # Swap the last session for its first alternative: the page now proposes that schedule.
    swap = next(link for link in page_links(page.text, "alt") if link.endswith("#session-6"))
    swapped = pages_client.get(swap)
    assert swapped.status_code == 200
    chosen = _schedule(swapped.text)
    assert chosen[:5] == proposed[:5]
    assert chosen[5] != proposed[5]
    assert _counts(pages_app)["courses"] == 0  # looking books nothing

    done = _post(pages_client, swapped.text)
    assert done.status_code == 303, text(done.text)
    assert "/course/" in done.headers["Location"]
    landed = pages_client.get(done.headers["Location"])
    assert "Your 6 sessions are booked" in text(landed.text)
    counts = _counts(pages_app)
    assert counts["courses"] == 1
    assert counts["bookings"] == 6
    # The same form sent twice (a double tap, a retry): the same course, nothing more.
    again = _post(pages_client, swapped.text)
    assert again.status_code == 303
    assert again.headers["Location"] == done.headers["Location"]
    assert _counts(pages_app) == counts
    token = done.headers["Location"].split("/course/")[1].split("?")[0]
    with pages_app.test_request_context():
        course_id = current_signer().verify(token, purpose=links.COURSE).subject
    staff = pages_client.get(f"/api/v1/courses/{course_id}", headers=STAFF).json
    booked = [(datetime.fromisoformat(s["start"]), str(s["provider"]["id"])) for s in staff["sessions"]]
    assert booked == [(datetime.fromisoformat(c.split("@")[0]), c.split("@")[1]) for c in chosen]
    assert staff["patient"]["language"] == "en"


def test_course_booking_refuses_bad_input_and_books_nothing(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    _template(pages_client, setup)
    assert pages_client.get("/book/clinic-infusion/course/nothing-here").status_code == 404
    assert pages_client.get("/book/no-clinic/course/induction").status_code == 404
    page = pages_client.get("/book/clinic-infusion/course/induction?tz=Europe/London")
    before = _counts(pages_app)
    missing = _post(pages_client, page.text, email="")
    assert missing.status_code == 422
    assert "Email address: enter your email address" in text(missing.text)
    assert _schedule(missing.text) == _schedule(page.text)  # the schedule and the answers are kept
    assert 'value="Jordan Example"' in missing.text
    # A hand-made schedule that breaks the spacing rules: a new schedule is shown, nothing is booked.
    crammed = _schedule(page.text)
    first, provider = crammed[0].split("@")
    crammed[1] = f"{(datetime.fromisoformat(first) + timedelta(hours=2)).isoformat()}@{provider}"
    refused = _post(pages_client, page.text, s=crammed)
    assert refused.status_code == 409
    assert "Here is a new schedule" in text(refused.text)
    assert (
        pages_client.post(form_action(page.text), data={"s": _schedule(page.text), **FORM}).status_code == 400
    )
    garbled = _post(pages_client, page.text, s=["not-a-time@x"])
    assert garbled.status_code == 409
    assert _counts(pages_app) == before


def test_an_invitation_books_a_course_and_is_spent(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    _template(pages_client, setup)
    invitation = pages_client.post(
        "/api/v1/invitations",
        json={"clinic_id": setup.clinic_id, "appointment_type_id": setup.type_id},
        headers=STAFF,
    )
    assert invitation.status_code == 201, invitation.json
    path = invitation.json["url"].removeprefix(BASE) + "/course/induction?tz=Europe/London"
    page = pages_client.get(path)
    assert page.status_code == 200, text(page.text)
    done = _post(pages_client, page.text)
    assert done.status_code == 303, text(done.text)
    spent = pages_client.get(path)
    assert spent.status_code in (409, 410)
    assert "This invitation has already been used" in text(spent.text)
