"""End to end through real Redis and real workers: a check-in link reaches the patient through notify, a
self-harm answer reaches on-call staff at once, with an acknowledgement trail, and a rating asked by SMS is
answered by a signed reply."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis
import time_machine
from flask import Flask
from sqlalchemy import select

from services.checkins.models import CANCELLED, COMPLETED, Answer, Checkin, CheckinDelivery
from services.notify import create_app as create_notify
from services.notify.models import Message, OutboxMessage, ReplyDelivery, SmsReply
from services.notify.replies import publishing
from services.notify.runtime import worker_queues
from shared.db import get_db
from shared.delivery import HANDLED
from shared.queues import CHECKINS_QUEUE
from shared.worker import make_worker
from tests.checkins.conftest import FIRST, SESSION, STAFF, booking_event, checkins, queued, schedule
from tests.notify.conftest import notify_config, twilio_sender, use_senders
from tests.notify.replies.test_replies import reply
from tests.notify.test_sms_segments import segments
from tests.support.servers import RedisServer
from tests.support.twilio_mock import PrismServer

LINK = re.compile(r"http://checkins\.test/(c|alerts)/[^\s<\"]+")
HEALTH_WORDS = ("PHQ", "GAD", "depress", "self-harm", "suicid", "mood", "pain", "score", "hurting")
URL = re.compile(r"https?://\S+")


def _says_health(text: str) -> bool:
    """Whether the words of a message (not its links' random tokens, which can spell "PHQ") name health."""
    words = URL.sub(" ", text).lower()
    return any(word.lower() in words for word in HEALTH_WORDS)


@pytest.fixture
def notify(
    backend: str, make_database_url: Callable[[str, str], str], redis_server: RedisServer
) -> Iterator[Flask]:
    app = create_notify(notify_config(make_database_url("notify", backend), redis_server.url))
    app.config["TESTING"] = True
    yield app
    app.extensions["db"].dispose()


def _work_notify(app: Flask) -> None:
    with app.app_context():
        make_worker(worker_queues()).work(burst=True, logging_level="WARNING")


def _outbox(app: Flask) -> list[OutboxMessage]:
    with app.app_context(), get_db().transaction() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _path(url: str) -> str:
    return url.removeprefix("http://checkins.test")


def test_check_in_link_and_safety_alert_travel_through_notify_and_are_acknowledged(
    app: Flask, notify: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    booking = booking_event()
    with notify.app_context():
        from services.notify import jobs as notify_jobs

        notify_jobs.handle_booking_event(booking)
    from tests.checkins.conftest import deliver

    deliver(app, booking)
    _work_notify(notify)
    before = len(_outbox(notify))

    # Two days before the first infusion: the PHQ-9 and GAD-7 links go out by SMS and email.
    clock.move_to(FIRST - timedelta(hours=47))
    assert schedule(app)["published"] == 2
    _work_notify(notify)
    sent = [m for m in _outbox(notify)[before:] if "checkins.test" in m.text]
    assert sorted((m.channel, m.recipient) for m in sent) == sorted(
        [("sms", "+14155552671"), ("email", "jordan@example.com")] * 2
    )
    for message in sent:
        text = f"{message.subject} {message.text}"
        assert LINK.search(text), text
        assert not _says_health(text), text
    # notify acknowledged both events: the next round settles the ledger.
    schedule(app)
    with app.app_context(), get_db().transaction() as session:
        assert {d.outcome for d in session.scalars(select(CheckinDelivery))} == {HANDLED}

    # The patient opens the PHQ-9 from the SMS and reports thoughts of self-harm.
    links = {LINK.search(m.text).group(0) for m in sent if m.channel == "sms"}  # type: ignore[union-attr]
    patient = app.test_client()
    phq9 = next(url for url in links if "Little interest" in patient.get(_path(url)).text)
    answer = patient.post(_path(phq9), data={"item": "9", "value": "2"})
    assert answer.status_code == 303
    support = patient.get(answer.headers["Location"])
    assert "Call or text" in support.text
    assert "988" in support.text

    # On-call staff get an urgent SMS and email at once, with the alert's link and nothing else.
    count = len(_outbox(notify))
    _work_notify(notify)
    alerts = [m for m in _outbox(notify)[count:] if "checkins.test" in m.text]
    assert sorted((m.channel, m.recipient) for m in alerts) == [
        ("email", "oncall@clinic.test"),
        ("sms", "+14155550100"),
    ]
    for message in alerts:
        text = f"{message.subject} {message.text}"
        assert "URGENT" in text
        assert not _says_health(text), text
    (alert_url,) = {LINK.search(m.text).group(0) for m in alerts}  # type: ignore[union-attr]

    # The staff list shows it open; the on-call clinician acknowledges it from the link.
    staff = app.test_client()
    (listed,) = staff.get("/api/v1/alerts", headers=STAFF).json
    assert listed["acknowledged_at"] is None
    page = staff.get(_path(alert_url))
    assert "Nobody has acknowledged this alert yet." in page.text
    refused = staff.post(_path(alert_url), data={"by": "", "note": ""})
    assert refused.status_code == 422
    acked = staff.post(_path(alert_url), data={"by": "Dr. Maya Chen", "note": "Called the patient; safe."})
    assert acked.status_code == 303
    trail = staff.get(_path(alert_url)).text
    assert "Dr. Maya Chen (link): Called the patient; safe." in trail
    assert staff.get("/api/v1/alerts", headers=STAFF).json == []
    (closed,) = staff.get("/api/v1/alerts?open=false", headers=STAFF).json
    assert [(a["by"], a["via"]) for a in closed["acks"]] == [("Dr. Maya Chen", "link")]
    # A second acknowledgement (the staff API) joins the trail.
    second = staff.post(
        f"/api/v1/alerts/{closed['id']}/acks",
        headers=STAFF,
        json={"by": "Nurse Lee", "note": "Follow-up booked"},
    )
    assert second.status_code == 201
    (closed,) = staff.get("/api/v1/alerts?open=false", headers=STAFF).json
    assert [a["by"] for a in closed["acks"]] == ["Dr. Maya Chen", "Nurse Lee"]


def _work_checkins(app: Flask) -> None:
    """Run the checkins worker's queued jobs (notify's ``reply.rating``) in a burst; it acknowledges them."""
    with app.app_context():
        make_worker([CHECKINS_QUEUE]).work(burst=True, logging_level="WARNING")


def _answers(app: Flask) -> list[tuple[str, int, str]]:
    with app.app_context(), get_db().transaction() as session:
        rows = session.execute(
            select(Checkin.instrument, Answer.value, Answer.source).join(
                Checkin, Checkin.id == Answer.checkin_id
            )
        )
        return sorted((str(i), int(v), str(s)) for i, v, s in rows)


@pytest.mark.slow
def test_a_rating_asked_by_sms_is_answered_by_a_signed_reply_and_recorded_once(
    app: Flask,
    notify: Flask,
    redis_client: redis.Redis,
    clock: time_machine.Coordinates,
    twilio_api_mock: PrismServer,
) -> None:
    use_senders(notify, sms=twilio_sender(base_url=twilio_api_mock.url))
    booking = booking_event()
    with notify.app_context():
        from services.notify import jobs as notify_jobs

        notify_jobs.handle_booking_event(booking)
    from tests.checkins.conftest import deliver

    deliver(app, booking)
    _work_notify(notify)

    # The day after the first infusion: the mood and pain ratings go as SMS questions (through Prism).
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    _work_notify(notify)
    with notify.app_context(), get_db().transaction() as session:
        asked = [
            m
            for m in session.scalars(select(Message).where(Message.channel == "sms").order_by(Message.id))
            if m.step.startswith("checkin:")
        ]
    assert len(asked) == 2
    for message in asked:
        text = message.body or ""
        assert (message.status, (message.provider_ref or "")[:2]) == (
            "sent",
            "SM",
        )  # Prism answered as Twilio
        assert "Reply with a number from 0" in text
        assert not LINK.search(text), text  # the link goes by email
        assert not _says_health(text), text
        assert segments(text)[0] <= 2, text

    # The patient texts back "7": notify publishes reply.rating, the checkins worker records it.
    client = notify.test_client()
    sid = "SM" + "e" * 32
    assert reply(client, "7", sid=sid) == "Demo Clinic: thanks, we've received it. Next: " + (
        "How much physical discomfort have you had today? Reply with a number from 0 (none) to 10 (the worst)."
    )
    reply(client, "7", sid=sid)  # Twilio retried the webhook: handled once
    _work_checkins(app)
    assert _answers(app) == [("mood", 7, "sms")]
    (mood,) = checkins(app, plan_step="mood-day-after")
    assert (mood.status, mood.score) == (COMPLETED, 7)
    # checkins acknowledged it to notify, whose next pass settles its ledger.
    with notify.app_context():
        publishing.relay_once(notify.extensions["notify"])
        with get_db().transaction() as session:
            (ledger,) = session.scalars(select(ReplyDelivery))
    assert (ledger.consumer, ledger.event_type, ledger.outcome) == ("checkins", "reply.rating", HANDLED)

    # The patient stops check-ins from the emailed link: checkins tells notify (checkin.closed, ids only), so a
    # number texted afterwards gets the truth, publishes nothing and records nothing.
    email = next(m for m in _outbox(notify) if m.channel == "email" and LINK.search(m.text))
    stop_path = _path(LINK.search(email.text).group(0)) + "/stop"  # type: ignore[union-attr]
    assert app.test_client().post(stop_path).status_code == 200
    closing = [p for p in queued(redis_client) if p["type"] == "checkin.closed"]
    assert closing == []  # published by the scheduler's next round
    schedule(app)
    (closing,) = [p for p in queued(redis_client) if p["type"] == "checkin.closed"]
    assert set(closing) - {"event_id", "type", "schema_version", "occurred_at", "correlation_id"} == {
        "booking_id",
        "checkin_id",
    }
    # Texted while checkin.closed is in flight (notify has not handled it): notify still holds the ask open and
    # says "received"; checkins, already closed, records nothing. When notify handles the closing it sees the
    # ask closed by that number, so the patient is told by SMS that the number was not recorded.
    assert reply(client, "3", sid="SM" + "f" * 32) == "Demo Clinic: thanks, we've received it."
    _work_checkins(app)
    assert _answers(app) == [("mood", 7, "sms")]
    _work_notify(notify)
    with notify.app_context(), get_db().transaction() as session:
        (told,) = session.scalars(select(Message).where(Message.step.like("checkin:%:not-recorded")))
        replies = {r.message_sid: r.outcome for r in session.scalars(select(SmsReply))}
    assert (told.status, told.channel, told.recipient, told.body) == (
        "sent",
        "sms",
        asked[0].recipient,
        "Demo Clinic: that question has closed, so this number was not recorded. Thank you.",
    )
    assert replies["SM" + "f" * 32] == "rating-not-recorded"
    assert not _says_health(told.body or "")
    # A number texted afterwards gets the truth at once, publishes nothing and records nothing.
    assert reply(client, "4") == (
        "Demo Clinic: that question has closed, so this number was not recorded. Thank you."
    )
    assert queued(redis_client, CHECKINS_QUEUE) == []
    assert _answers(app) == [("mood", 7, "sms")]
    (pain,) = checkins(app, plan_step="pain-day-after")
    assert pain.status == CANCELLED
