"""A worker killed in the middle of sending, and Redis restarted empty: nothing is lost, nothing is doubled.

The worker is a real ``flask --app services.notify worker`` process, killed with SIGKILL while its calls to a
Twilio stand-in hang: two messages were taken and answered (and recorded as sent while the others hung), one was
taken but never answered, one never reached Twilio, and a second job still waited in Redis. Redis then restarts
with nothing in it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select, update

from services.notify.models import QUEUED, SENDING, SENT, Message, ProcessedEvent
from services.notify.runtime import SEND_QUEUE, URGENT_QUEUE
from shared.queues import publish, queue
from shared.timeutil import utcnow
from tests.notify.conftest import AUTH_TOKEN, by_step, deliver, dispatch, messages, work
from tests.notify.doubles import ACCOUNT_SID, MESSAGING_SERVICE_SID
from tests.notify.factories import Booking
from tests.support.servers import RedisServer, wait_until
from tests.support.twilio_standin import StandIn, running_standin

ROOT = Path(__file__).resolve().parents[2]
PHONES = [f"+1415555{n:04d}" for n in range(2671, 2677)]  # A .. F
A, B, C, D, E, F = PHONES


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with running_standin() as server:
        yield server


def _settings(standin: StandIn) -> dict[str, object]:
    return {
        "sms_backend": "twilio",
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_messaging_service_sid": MESSAGING_SERVICE_SID,
        "twilio_api_base_url": standin.url,
        # Long enough for the answered sends to be recorded while the other two calls hang.
        "twilio_timeout_seconds": 5.0,
        "smtp_timeout_seconds": 2.0,
        "send_batch_size": 4,
        "send_concurrency": 4,
        "sending_stale_seconds": 60,
        # The worker process runs on the real clock: without this, from 21:00 in the patients' zone the
        # reminders wait for morning and the test waits for calls that never come.
        "quiet_hours_raw": "",
    }


def _worker(app: Flask, standin: StandIn, kill_at: str = "") -> subprocess.Popen[bytes]:
    config = app.extensions["notify"].config
    env = {
        **os.environ,
        "NOTIFY_DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "NOTIFY_SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID,
        "TWILIO_API_BASE_URL": standin.url,
        "TWILIO_TIMEOUT_SECONDS": "5",
        "SMTP_TIMEOUT_SECONDS": "2",
        "NOTIFY_SEND_BATCH_SIZE": "4",
        "NOTIFY_SEND_CONCURRENCY": "4",
        "NOTIFY_SENDING_STALE_SECONDS": "60",
        "NOTIFY_QUIET_HOURS": "",
        "NOTIFY_PUBLIC_URL": config.notify_public_url,
        "BOOKING_PUBLIC_URL": config.booking_public_url,
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
        **({"SUITE_KILL_AT": kill_at} if kill_at else {}),
    }
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "flask"),
            "--app",
            "services.notify",
            "worker",
            "--name",
            "doomed",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


@pytest.mark.slow
def test_worker_killed_mid_send_and_redis_restarted_lose_and_double_nothing(
    make_app: Callable[..., Flask], standin: StandIn, redis_server: RedisServer
) -> None:
    app = make_app(**_settings(standin))
    now = utcnow()
    for phone in PHONES:
        booking = Booking(start=now + timedelta(hours=25), phone=phone, sms_consent=True)
        deliver(app, booking.confirmed(at=now))
    work(app)  # the confirmations
    # An hour passes for the database (the worker process runs on the real clock, so the rows move instead).
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        session.execute(
            update(Message).where(Message.step == "reminder-24h", Message.channel == "sms").values(due_at=now)
        )
    sent_before = len(standin.messages())
    standin.rules(hang_after_record=[C], hang_before_record=[D])
    assert dispatch(app).jobs == 2  # A-D in one job, E-F in another
    worker = _worker(app, standin)
    try:
        wait_until(lambda: sorted(standin.pending()) == [C, D], timeout=60, what="the worker's hung calls")
        # What Twilio answered is recorded while the other calls of the job still hang.
        wait_until(
            lambda: (
                {m.recipient for m in messages(app, step="reminder-24h", channel="sms", status=SENT)}
                == {A, B}
            ),
            timeout=3,
            what="the answered sends to be recorded",
        )
        recorded = {m["to"] for m in standin.messages(since=sent_before)}
        assert recorded == {A, B, C}
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # no goodbye: C and D are never recorded
        worker.wait(timeout=10)
    standin.release()
    assert {m.recipient for m in messages(app, step="reminder-24h", channel="sms", status=SENDING)} == {C, D}

    redis_server.stop()
    redis_server.start()  # empty: both jobs are gone
    assert all(queue(q, redis_server.client()).count == 0 for q in (SEND_QUEUE, URGENT_QUEUE))

    # Ninety seconds after the worker died (not after the test began, however long the worker took to start):
    # every claim and every queued job is then older than a send can take.
    with time_machine.travel(utcnow() + timedelta(seconds=90), tick=False):
        report = dispatch(app)
        assert report.reconciling == 2  # C, D: left "sending" longer than a send job can take
        assert report.requeued == 2  # E, F: queued, but their job is gone
        work(app)  # reconcile C and D with Twilio, send E and F
        assert dispatch(app).enqueued == 1  # D never reached Twilio: it goes again
        work(app)

    rows = {m.recipient: m for m in messages(app, step="reminder-24h", channel="sms")}
    assert {phone: row.status for phone, row in rows.items()} == dict.fromkeys(PHONES, SENT)
    assert rows[C].reason == "sent (confirmed with the provider after an interrupted send)"
    assert rows[A].reason == rows[B].reason == ""  # recorded by the send job itself, before the kill
    bodies = standin.messages(since=sent_before)
    assert sorted(m["to"] for m in bodies) == sorted(PHONES)  # each reminder exactly once
    assert {m["sid"] for m in bodies} == {row.provider_ref for row in rows.values()}
    assert by_step(app, recipient=A)[("reminder-24h", "sms")].attempts == 1


@pytest.mark.slow
@pytest.mark.parametrize("point", ["send.inline", "send.claimed"])
def test_worker_killed_sending_at_once_in_its_event_job_sends_it_once(
    make_app: Callable[..., Flask],
    standin: StandIn,
    redis_server: RedisServer,
    point: str,
) -> None:
    """An event job sends its urgent messages itself (no send job). A booking event claims its confirmation
    in its own transaction, so a death after that commit (``send.claimed``) leaves it sending; links_ready
    commits its join messages queued and claims them after (killed at ``send.inline``, they stay queued).
    Either way each goes exactly once."""
    app = make_app(**_settings(standin))
    now = utcnow()
    booking = Booking(start=now + timedelta(minutes=30 if point == "send.inline" else 25 * 60), phone=A)
    if point == "send.inline":
        deliver(app, booking.confirmed(at=now))  # the confirmation, sent here; the join steps wait
        event, step = booking.links_ready(at=now), "join-1h"
    else:
        event, step = booking.confirmed(at=now), "confirmation"
    sent_before = len(standin.messages())
    publish(redis_server.client(), event, only="notify")
    worker = _worker(app, standin, kill_at=point)
    try:
        assert worker.wait(timeout=60) == -signal.SIGKILL  # it reached the point and died there
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
    row = by_step(app, booking_id=booking.id)[(step, "sms")]
    assert row.status == (QUEUED if point == "send.inline" else SENDING)
    assert len(standin.messages()) == sent_before  # killed before the call
    assert queue(URGENT_QUEUE, redis_server.client()).count == 0  # no send job was queued for it

    with time_machine.travel(utcnow() + timedelta(seconds=90), tick=False):
        report = dispatch(app)
        # Queued under a job Redis never had: planned again and queued; sending: checked with Twilio.
        assert (report.requeued, report.reconciling) == ((2, 0) if point == "send.inline" else (0, 2))
        work(app)
        dispatch(app)  # "sending" and absent at Twilio: planned again, queued now
        work(app)
    row = by_step(app, booking_id=booking.id)[(step, "sms")]
    assert row.status == SENT
    sent = [m for m in standin.messages()[sent_before:] if m["to"] == A]
    assert len(sent) == 1  # exactly once
    assert sent[0]["sid"] == row.provider_ref
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        handled = session.scalar(
            select(func.count())
            .select_from(ProcessedEvent)
            .where(ProcessedEvent.event_id == uuid.UUID(event["event_id"]))
        )
    assert handled == 1


def test_confirmation_is_sent_by_its_event_job(
    make_app: Callable[..., Flask], standin: StandIn, redis_server: RedisServer
) -> None:
    """No send job for a confirmation: the event job that planned it sends it; the provider's invite and
    the rest still go through notify-send."""
    app = make_app(**_settings(standin))
    now = utcnow()
    booking = Booking(start=now + timedelta(hours=25), phone=B, sms_consent=True)
    deliver(app, booking.confirmed(at=now))
    assert queue(URGENT_QUEUE, redis_server.client()).count == 0
    rows = by_step(app, booking_id=booking.id)
    assert rows[("confirmation", "sms")].status == SENT
    assert rows[("confirmation", "email")].status == SENT
    assert [m["to"] for m in standin.messages()] == [B]
