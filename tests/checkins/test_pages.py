"""The patient's check-in pages: one question per screen, resumable, bad input refused, safety first."""

from __future__ import annotations

from datetime import timedelta

import redis
import time_machine
from flask import Flask
from sqlalchemy import func, select

from services.checkins.models import CANCELLED, COMPLETED, SELF_HARM, Alert, Answer, Checkin, Flag, Patient
from shared import events
from shared.db import get_db
from tests.checkins.conftest import (
    FIRST,
    SESSION,
    booking_event,
    checkin_token,
    checkins,
    deliver,
    queued,
    schedule,
)

PHQ9_STEM = "Over the last 2 weeks, how often have you been bothered by any of the following problems?"


def _sent(app: Flask, step: str) -> tuple[Checkin, str]:
    (checkin,) = checkins(app, plan_step=step)
    return checkin, checkin_token(app, checkin)


def _before_first(app: Flask, clock: time_machine.Coordinates) -> None:
    deliver(app, booking_event())
    clock.move_to(FIRST - timedelta(hours=47))
    schedule(app)


def _count(app: Flask, model: type) -> int:
    with app.app_context(), get_db().transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _answer(app: Flask, token: str, item: int, value: int) -> str:
    answer = app.test_client().post(f"/c/{token}", data={"item": str(item), "value": str(value)})
    assert answer.status_code == 303, answer.text
    return answer.headers["Location"]


def test_one_question_per_screen_in_the_instruments_words_then_the_score(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    _before_first(app, clock)
    checkin, token = _sent(app, "phq9-before-first")
    client = app.test_client()
    page = client.get(f"/c/{token}")
    assert page.status_code == 200
    assert "Question 1 of 9" in page.text
    assert PHQ9_STEM in page.text
    assert "Little interest or pleasure in doing things" in page.text
    for label in ("Not at all", "Several days", "More than half the days", "Nearly every day"):
        assert label in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    for item, value in enumerate((2, 2, 2, 1, 1, 1, 1, 0, 0), start=1):
        assert _answer(app, token, item, value) == f"/c/{token}"
    done = client.get(f"/c/{token}")
    assert "Thank you" in done.text
    (checkin,) = checkins(app, plan_step="phq9-before-first")
    assert (checkin.status, checkin.score, checkin.band) == (COMPLETED, 10, "moderate")
    assert _count(app, Alert) == 0


def test_a_patient_can_leave_and_resume_and_go_back_to_change_an_answer(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    _before_first(app, clock)
    _, token = _sent(app, "gad7-before-first")
    _answer(app, token, 1, 1)
    _answer(app, token, 2, 2)
    client = app.test_client()
    assert "Question 3 of 7" in client.get(f"/c/{token}").text  # resumed where they left
    back = client.get(f"/c/{token}?item=1")
    assert "Question 1 of 7" in back.text
    assert 'value="1" required checked' in back.text
    _answer(app, token, 1, 3)
    assert "Question 3 of 7" in client.get(f"/c/{token}").text
    # Skipping ahead is not possible: the page asks the first unanswered item.
    assert "Question 3 of 7" in client.get(f"/c/{token}?item=6").text
    with app.app_context(), get_db().transaction() as session:
        assert dict(session.execute(select(Answer.item, Answer.value)).all()) == {1: 3, 2: 2}


def test_bad_answers_are_refused_with_the_field_and_change_nothing(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    _before_first(app, clock)
    _, token = _sent(app, "phq9-before-first")
    client = app.test_client()
    for data in (
        {"item": "1", "value": "4"},
        {"item": "1"},
        {"item": "x", "value": "1"},
        {"item": "99", "value": "1"},
    ):
        refused = client.post(f"/c/{token}", data=data)
        assert refused.status_code == 422, data
        assert "Choose one of the answers." in refused.text
    assert _count(app, Answer) == 0


def test_links_that_must_not_open_say_why(app: Flask, clock: time_machine.Coordinates) -> None:
    _before_first(app, clock)
    checkin, token = _sent(app, "phq9-before-first")
    client = app.test_client()
    assert client.get("/c/not-a-token").status_code == 404
    assert client.post("/c/not-a-token", data={"item": "1", "value": "1"}).status_code == 404
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/c/{tampered}").status_code == 404
    clock.move_to(checkin.expires_at + timedelta(seconds=1))
    assert client.get(f"/c/{token}").status_code == 410
    assert client.post(f"/c/{token}", data={"item": "1", "value": "1"}).status_code == 410
    assert _count(app, Answer) == 0


def test_self_harm_answer_shows_crisis_resources_and_raises_one_alert_at_once(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    _before_first(app, clock)
    _, token = _sent(app, "phq9-before-first")
    for item in range(1, 8):
        _answer(app, token, item, 0)
    assert _answer(app, token, 9, 1) == f"/c/{token}/support"
    support = app.test_client().get(f"/c/{token}/support")
    assert "988" in support.text
    assert "911" in support.text
    # The alert is on notify's queue already: no scheduler round was needed.
    (alert_payload,) = queued(redis_client, event_type=events.CHECKIN_ALERT)
    alert = events.load_checkin_alert(alert_payload)
    assert alert.sms_to == ["+14155550100"]
    assert alert.email_to == ["oncall@clinic.test"]
    assert alert.alert_url.startswith("http://checkins.test/alerts/")
    assert set(alert_payload) == {
        "event_id", "type", "schema_version", "occurred_at", "correlation_id",
        "alert_id", "booking_id", "alert_url", "sms_to", "email_to",
    }  # fmt: skip
    with app.app_context(), get_db().transaction() as session:
        (flag,) = session.scalars(select(Flag))
        assert flag.kind == SELF_HARM
    # Changing the answer raises no second alert; the last item completes it.
    _answer(app, token, 9, 2)
    _answer(app, token, 8, 0)
    assert _count(app, Alert) == 1
    assert len(queued(redis_client, event_type=events.CHECKIN_ALERT)) == 1
    (checkin,) = checkins(app, plan_step="phq9-before-first")
    assert (checkin.status, checkin.score) == (COMPLETED, 2)


def test_an_alert_waits_for_the_scheduler_when_redis_is_away(
    app: Flask, redis_client: redis.Redis, redis_server: object, clock: time_machine.Coordinates
) -> None:
    _before_first(app, clock)
    _, token = _sent(app, "phq9-before-first")
    redis_server.stop()  # type: ignore[attr-defined]
    try:
        assert _answer(app, token, 9, 3) == f"/c/{token}/support"
        assert _count(app, Alert) == 1
    finally:
        redis_server.start()  # type: ignore[attr-defined]
    assert schedule(app)["published"] >= 1
    assert len(queued(redis_server.client(), event_type=events.CHECKIN_ALERT)) == 1  # type: ignore[attr-defined]


def test_a_rise_past_the_threshold_flags_the_patient(app: Flask, clock: time_machine.Coordinates) -> None:
    _before_first(app, clock)
    for step in ("phq9-before-first", "gad7-before-first"):
        _, token = _sent(app, step)
        for item in range(1, 10 if step.startswith("phq9") else 8):
            _answer(app, token, item, 1 if item <= 4 else 0)  # 4 on both
    clock.move_to(FIRST + SESSION + timedelta(days=7, minutes=1))
    schedule(app)
    _, phq9 = _sent(app, "phq9-after-last")
    for item in range(1, 10):
        _answer(app, phq9, item, 1 if item <= 7 else (2 if item == 8 else 0))  # 9: up 5, the threshold
    _, gad7 = _sent(app, "gad7-after-last")
    for item in range(1, 8):
        _answer(app, gad7, item, 1 if item <= 6 else 2)  # 8: up 4, under the threshold
    with app.app_context(), get_db().transaction() as session:
        (flag,) = session.scalars(select(Flag))
    assert flag.kind == "rise"
    assert flag.detail == "PHQ-9 rose 5 points (from 4 to 9); consider a booster session."


def test_stopping_check_ins_cancels_them_but_not_appointment_messages(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    _before_first(app, clock)
    _, token = _sent(app, "phq9-before-first")
    stopped = app.test_client().post(f"/c/{token}/stop")
    assert stopped.status_code == 200
    assert "appointment confirmations and reminders still come" in stopped.text
    assert {c.status for c in checkins(app)} == {CANCELLED}
    with app.app_context(), get_db().transaction() as session:
        (patient,) = session.scalars(select(Patient))
        assert patient.stopped_at is not None
    # A later session plans nothing for this patient, and nothing was published to stop notify's messages.
    deliver(app, booking_event(start=FIRST + timedelta(days=7)))
    assert {c.status for c in checkins(app)} == {CANCELLED}
    assert queued(redis_client, event_type=events.CHECKIN_ALERT) == []


def test_a_spanish_patients_pages_are_in_spanish_the_questionnaires_in_their_original_wording(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event(language="es"))
    clock.move_to(FIRST - timedelta(hours=47))
    schedule(app)
    _, token = _sent(app, "phq9-before-first")
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en-US"  # the booking's language wins
    page = client.get(f"/c/{token}")
    assert '<html lang="es">' in page.text
    assert "Pregunta 1 de 9" in page.text
    assert "Siguiente" in page.text
    # No official Spanish PHQ-9 was found (docs/checkins.md#languages): its own words, marked as English.
    assert "redacción original en inglés" in page.text
    assert '<fieldset lang="en">' in page.text
    assert PHQ9_STEM in page.text
    assert "Not at all" in page.text
    assert "llame al 988 y oprima 2" in page.text
    bad = client.post(f"/c/{token}", data={"item": "1", "value": "9"})
    assert bad.status_code == 422
    assert "Elija una de las respuestas." in bad.text
    for item in range(1, 9):
        _answer(app, token, item, 0)
    assert _answer(app, token, 9, 2) == f"/c/{token}/support"
    support = client.get(f"/c/{token}/support")
    assert "Hay ayuda disponible ahora" in support.text
    assert "llame al 988 y oprima 2" in support.text
    assert "AYUDA" in support.text
    assert "Gracias" in client.get(f"/c/{token}").text


def test_a_spanish_patients_ratings_are_all_in_spanish(app: Flask, clock: time_machine.Coordinates) -> None:
    deliver(app, booking_event(language="es"))
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    _, token = _sent(app, "pain-day-after")
    page = app.test_client().get(f"/c/{token}")
    assert "¿Cuánto dolor tiene hoy?" in page.text
    assert "0 = ningún dolor" in page.text
    assert 'lang="en"' not in page.text
    assert "Dolor: pregunta 1 de 1" in page.text
    stopped = app.test_client().post(f"/c/{token}/stop")
    assert "Seguimientos detenidos" in stopped.text


def test_an_unknown_link_speaks_the_browsers_language(app: Flask) -> None:
    page = app.test_client().get("/c/not-a-token", headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert page.status_code == 404
    assert "Este enlace no se abre" in page.text
    assert "This link does not open" in app.test_client().get("/c/not-a-token").text


def test_a_rating_answered_on_its_page_tells_notify_it_closed_and_a_questionnaire_does_not(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    _before_first(app, clock)
    phq9 = next(c for c in checkins(app) if c.plan_step.startswith("phq9"))
    for item in range(1, 10):
        _answer(app, checkin_token(app, phq9), item, 0)
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    mood, token = _sent(app, "mood-day-after")
    _answer(app, token, 1, 6)
    schedule(app)
    closed = [events.load_checkin_closed(p) for p in queued(redis_client, event_type=events.CHECKIN_CLOSED)]
    assert [(e.checkin_id, e.booking_id) for e in closed] == [(mood.id, mood.booking_id)]
    # Its send is settled like any other: a second round publishes nothing new.
    assert schedule(app)["published"] == 0
    (mood,) = checkins(app, plan_step="mood-day-after")
    assert (mood.status, mood.score) == (COMPLETED, 6)
