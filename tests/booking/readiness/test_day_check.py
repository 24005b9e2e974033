"""The day-before safety check: the patient's page from the reminder's link, its flag, and what never leaks."""

from __future__ import annotations

import io
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from services.booking.readiness.checklists import load_checklists
from shared import links
from shared.timeutil import utcnow
from tests.booking.conftest import STAFF
from tests.booking.factories import (
    ChairSetup,
    booking_body,
    chair_body,
    make_chair_setup,
    make_setup,
    table_counts,
)
from tests.booking.pages_support import hidden, text

TUESDAY_10 = "2026-03-03T10:00:00-05:00"
ALL_YES = {
    "no-substances": "yes",
    "medications-reviewed": "yes",
    "eating-drinking": "yes",
    "escort-arranged": "yes",
}
QUESTIONS = [item.text["en"] for item in load_checklists()["infusion-session"].items]


def _book(client: FlaskClient, setup: ChairSetup, start: str = TUESDAY_10, **patient: Any) -> dict[str, Any]:
    created = client.post("/api/v1/bookings", json=chair_body(setup, start, **patient), headers=STAFF)
    assert created.status_code == 201, created.json
    return dict(created.json)


def _path(app: Flask, booking: dict[str, Any]) -> str:
    """The path of the link notify puts in the day-before reminder of this booking version."""
    url = links.short_day_check_url(
        app.extensions["booking"].signer.keys,
        "https://booking.example.test",
        booking_id=booking["id"],
        version=booking["version"],
        ends_at=datetime.fromisoformat(booking["end"]),
    )
    return url.removeprefix("https://booking.example.test")


def _answer(client: FlaskClient, path: str, answers: dict[str, str]) -> Any:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": hidden(page.text, "csrf_token"), **answers})


def _readiness(client: FlaskClient, clinic_id: int) -> list[dict[str, Any]]:
    listed = client.get(f"/api/v1/readiness?clinic_id={clinic_id}&day=2026-03-03", headers=STAFF)
    assert listed.status_code == 200, listed.json
    return list(listed.json)


def test_all_clear_then_a_changed_answer_flags_the_booking_for_a_call(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app)
    booking = _book(pages_client, setup)
    path = _path(pages_app, booking)
    first = pages_client.get(path)
    assert first.status_code == 200
    shown = text(first.text)
    assert "Before your visit: a safety check" in shown
    assert all(question in shown for question in QUESTIONS)
    assert first.headers["Cache-Control"] == "no-store"
    assert first.headers["Referrer-Policy"] == "no-referrer"
    assert _readiness(pages_client, setup.clinic_id)[0]["checklist"] == "unanswered"

    sent = _answer(pages_client, path, ALL_YES)
    assert sent.status_code == 303
    done = pages_client.get(sent.headers["Location"])
    assert "You're all set" in text(done.text)
    assert 'value="yes" checked' in done.text  # the patient sees their own answers, to change one
    row = _readiness(pages_client, setup.clinic_id)[0]
    assert (row["checklist"], row["chair"], row["escort"]["state"]) == ("clear", "Chair 1", "not_needed")

    # Sending the same answers again changes nothing, not even the day sheet's order.
    assert _answer(pages_client, path, ALL_YES).status_code == 303
    assert _readiness(pages_client, setup.clinic_id)[0]["changed_at"] == row["changed_at"]

    changed = _answer(pages_client, path, {**ALL_YES, "no-substances": "no"})
    assert changed.status_code == 303
    page = text(pages_client.get(changed.headers["Location"]).text)
    assert "The clinic will call you" in page
    again = _readiness(pages_client, setup.clinic_id)[0]
    assert again["checklist"] == "call"
    assert again["changed_at"] > row["changed_at"]
    assert "no-substances" not in str(again)
    assert "answers" not in again
    # Answering is not a change of the booking: its version and the patient's links stay.
    booking_now = pages_client.get(f"/api/v1/bookings/{booking['id']}", headers=STAFF).json
    assert booking_now["version"] == booking["version"]


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({k: v for k, v in ALL_YES.items() if k != "escort-arranged"}, "escort-arranged"),
        ({**ALL_YES, "medications-reviewed": "maybe"}, "medications-reviewed"),
        ({**ALL_YES, "eating-drinking": ""}, "eating-drinking"),
    ],
)
def test_an_unanswered_or_unknown_answer_is_explained_and_stores_nothing(
    pages_app: Flask, pages_client: FlaskClient, clock: object, answers: dict[str, str], field: str
) -> None:
    setup = make_chair_setup(pages_app)
    booking = _book(pages_client, setup)
    before = table_counts(pages_app)
    refused = _answer(pages_client, _path(pages_app, booking), answers)
    assert refused.status_code == 422
    assert "Choose yes or no." in text(refused.text)
    assert f'href="#{field}"' in refused.text  # the error summary leads to the question
    assert table_counts(pages_app) == before
    assert _readiness(pages_client, setup.clinic_id)[0]["checklist"] == "unanswered"


def test_bad_expired_and_wrong_purpose_links_get_the_link_pages_never_a_500(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_chair_setup(pages_app)
    booking = _book(pages_client, setup)
    path = _path(pages_app, booking)
    keys = pages_app.extensions["booking"].signer.keys
    manage_code = links.sign_short(
        keys, purpose=links.MANAGE, subject=booking["id"], version=1, expires_at=utcnow() + timedelta(days=3)
    )
    unknown = links.sign_short(
        keys,
        purpose=links.DAY_CHECK,
        subject=str(uuid.uuid4()),
        version=1,
        expires_at=utcnow() + timedelta(1),
    )
    for bad in (path[:-2] + "xx", "/d/not-a-code", "/d/" + "A" * 500, f"/d/{manage_code}", f"/d/{unknown}"):
        for response in (pages_client.get(bad), pages_client.post(bad, data=ALL_YES)):
            assert response.status_code in (400, 404), (bad, response.status_code)
        page = pages_client.get(bad)
        assert page.status_code == 404
        assert "This link does not work" in text(page.text)
    # A video consultation has no checklist: a day-check link for it opens nothing.
    consult = make_setup(pages_app, slug="consult")
    created = pages_client.post(
        "/api/v1/bookings", json=booking_body(consult, TUESDAY_10), headers=STAFF
    ).json
    assert pages_client.get(_path(pages_app, created)).status_code == 404

    clock.move_to(utcnow() + timedelta(days=3))
    expired = pages_client.get(path)
    assert expired.status_code == 410
    assert "This link has expired" in text(expired.text)


def test_an_old_link_after_a_reschedule_or_cancel_tells_the_truth_and_changes_nothing(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app)
    booking = _book(pages_client, setup)
    old = _path(pages_app, booking)
    assert _answer(pages_client, old, ALL_YES).status_code == 303
    page = pages_client.get(old)
    token = hidden(page.text, "csrf_token")
    moved = pages_client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule",
        json={"start": "2026-03-03T13:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    # The answers were about the old time: the moved visit's check is unanswered until the new link is used.
    assert _readiness(pages_client, setup.clinic_id)[0]["checklist"] == "unanswered"
    stale = pages_client.get(old)
    assert stale.status_code == 409
    assert "This appointment has changed" in text(stale.text)
    posted = pages_client.post(old, data={"csrf_token": token, **ALL_YES, "no-substances": "no"})
    assert posted.status_code == 409
    assert _readiness(pages_client, setup.clinic_id)[0]["checklist"] == "unanswered"

    new = _path(pages_app, moved.json)
    assert _answer(pages_client, new, {**ALL_YES, "escort-arranged": "no"}).status_code == 303
    assert _readiness(pages_client, setup.clinic_id)[0]["checklist"] == "call"

    pages_client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=STAFF)
    cancelled = pages_client.get(new)
    assert cancelled.status_code == 409
    assert "This appointment was cancelled" in text(cancelled.text)
    assert _readiness(pages_client, setup.clinic_id) == []


def test_a_form_without_its_csrf_token_is_refused(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app)
    path = _path(pages_app, _book(pages_client, setup))
    refused = pages_client.post(path, data=ALL_YES)
    assert refused.status_code == 400
    assert _readiness(pages_client, setup.clinic_id)[0]["checklist"] == "unanswered"


def test_the_page_speaks_the_patients_language(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app)
    booking = _book(pages_client, setup, language="es")
    path = _path(pages_app, booking)
    page = pages_client.get(path)
    assert page.headers["Content-Language"] == "es"
    shown = text(page.text)
    assert "Antes de su visita: un control de seguridad" in shown
    assert "¿Ha evitado el alcohol y las drogas recreativas en las últimas 24 horas?" in shown
    refused = pages_client.post(path, data={"csrf_token": hidden(page.text, "csrf_token")})
    assert "Elija sí o no." in text(refused.text)
    sent = _answer(pages_client, path, {**ALL_YES, "medications-reviewed": "no"})
    assert "La clínica le llamará" in text(pages_client.get(sent.headers["Location"]).text)
    english = pages_client.get(path + "?lang=en")
    assert "Have you avoided alcohol" in text(english.text)


def test_answers_reach_no_log_and_no_event(
    pages_app: Flask, pages_client: FlaskClient, clock: object, log_stream: io.StringIO, caplog: Any
) -> None:
    setup = make_chair_setup(pages_app)
    booking = _book(pages_client, setup)
    path = _path(pages_app, booking)
    events_before = table_counts(pages_app)["outbox"]
    with caplog.at_level(logging.DEBUG):
        _answer(pages_client, path, {**ALL_YES, "no-substances": "no", "escort-arranged": "no"})
        _answer(pages_client, path, {**ALL_YES, "medications-reviewed": "no"})
    assert table_counts(pages_app)["outbox"] == events_before  # nothing is announced to other services
    logged = log_stream.getvalue() + caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "day check answered" in logged
    for secret in (
        *ALL_YES,
        "alcohol",
        "medication",
        '"call"',
        "'call'",
        "needs a call",
        path.rsplit("/", 1)[1],
    ):
        assert secret not in logged, secret
