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
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from sqlalchemy import update

from services.notify.models import SENDING, SENT, Message
from services.notify.runtime import SEND_QUEUE, URGENT_QUEUE
from shared.queues import queue
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


def _worker(app: Flask, standin: StandIn) -> subprocess.Popen[bytes]:
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
