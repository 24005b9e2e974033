"""SIGKILL at every named point of the event path, then prove from the databases that nothing was lost or doubled.

Real processes (relay, notify worker and dispatcher, consult worker and sweeper, checkins worker and scheduler)
run while bookings are made; one process at a time is started with ``SUITE_KILL_AT`` and kills itself at that
point (shared/killpoints.py), then is started again without it. SMS go to the Twilio stand-in, which can answer
503 once so that a message is retried through the dispatcher. At the end, every event the outbox (and consult)
published must be in each consumer's inbox exactly once, every delivery settled, every booking's notices sent, and
no SMS sent twice.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from services.booking.models import OutboxDelivery, OutboxEvent
from services.checkins.models import ProcessedEvent as CheckinsProcessed
from services.consult.models import LinksDelivery
from services.consult.models import ProcessedEvent as ConsultProcessed
from services.notify.models import SENT, Message
from services.notify.models import ProcessedEvent as NotifyProcessed
from shared.db import get_db
from shared.timeutil import utcnow
from tests.booking.factories import booking_body, make_setup
from tests.notify.doubles import ACCOUNT_SID, MESSAGING_SERVICE_SID
from tests.ops.conftest import STAFF, Suite
from tests.support.twilio_standin import StandIn, running_standin

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {
    "relay": ("booking", "relay"),
    "notify-worker": ("notify", "worker"),
    "notify-dispatcher": ("notify", "dispatcher"),
    "consult-worker": ("consult", "worker"),
    "consult-sweeper": ("consult", "sweep"),
    "checkins-worker": ("checkins", "worker"),
    "checkins-scheduler": ("checkins", "scheduler"),
}
# (process, point, on which arrival): every place a death could lose or double something.
POINTS = (
    ("relay", "relay.published", 1),
    ("consult-worker", "worker.dequeued", 1),
    ("consult-worker", "handler.recorded", 1),
    ("consult-worker", "worker.before_done", 1),
    ("checkins-worker", "handler.recorded", 1),
    ("notify-worker", "worker.dequeued", 2),
    ("notify-worker", "handler.recorded", 1),
    ("notify-worker", "worker.before_done", 2),
    # A booking event claims its confirmation in its own transaction: its first death point after the commit is
    # send.claimed (whichever of it and the invite's send job comes first, then the other). send.inline (a
    # links_ready batch committed queued) is not reached here: these visits are days away, so links_ready has
    # nothing urgent; tests/notify/test_crash_recovery.py kills a worker there.
    ("notify-worker", "send.claimed", 1),
    ("notify-worker", "send.claimed", 2),
    ("notify-worker", "send.recorded", 1),
    ("notify-dispatcher", "dispatch.pushed", 1),
)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with running_standin() as server:
        yield server


@dataclass
class Processes:
    """The suite's background processes, one of each, restartable."""

    env: dict[str, str]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, kill_at: str = "") -> subprocess.Popen[bytes]:
        service, command = COMMANDS[name]
        env = {**self.env, "SUITE_KILL_AT": kill_at} if kill_at else self.env
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "flask"), "--app", f"services.{service}", command],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        self.running[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def _env(suite: Suite, standin: StandIn) -> dict[str, str]:
    return {
        **os.environ,
        "BOOKING_DATABASE_URL": suite.booking.extensions["db"].url,
        "NOTIFY_DATABASE_URL": suite.notify.extensions["db"].url,
        "CONSULT_DATABASE_URL": suite.consult.extensions["db"].url,
        "CHECKINS_DATABASE_URL": suite.checkins.extensions["db"].url,
        "CHECKINS_SCHEDULER_SECONDS": "1",
        "REDIS_URL": suite.booking.extensions["suite_config"].redis_url,
        "CONSULT_PUBLIC_URL": "http://consult.test",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "ERROR",
        "NOTIFY_SMS_BACKEND": "twilio",
        "NOTIFY_EMAIL_BACKEND": "console",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": "x" * 32,
        "TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID,
        "TWILIO_API_BASE_URL": standin.url,
        "TWILIO_TIMEOUT_SECONDS": "1",
        "SMTP_TIMEOUT_SECONDS": "1",
        "NOTIFY_SEND_BATCH_SIZE": "4",
        "NOTIFY_SEND_CONCURRENCY": "4",
        "NOTIFY_SENDING_STALE_SECONDS": "36",
        "NOTIFY_QUEUED_STALE_SECONDS": "2",
        "NOTIFY_DISPATCH_INTERVAL_SECONDS": "0.5",
        "NOTIFY_RETRY_BACKOFF_SECONDS": "1,1,1,1",
        "NOTIFY_QUIET_HOURS": "",
        "OUTBOX_POLL_SECONDS": "0.05",
        "CONSULT_SWEEP_SECONDS": "1",
        "EVENT_REDELIVER_SECONDS": "3",
        "WORKER_MAINTENANCE_SECONDS": "1",
    }


class Clinic:
    """Books, moves and cancels visits through the booking API, each patient with a phone of their own."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.setup = make_setup(app)
        self.count = 0
        self.phones: list[str] = []
        self.last_id = ""

    def _start(self, n: int) -> str:
        day = datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=4)
        for _ in range(n // 8 + 1):  # the (n // 8)-th weekday from then on
            day += timedelta(days=1)
            while day.weekday() > 4:
                day += timedelta(days=1)
        at = datetime.combine(day, clock(9), tzinfo=ZoneInfo("America/New_York"))
        return (at + timedelta(hours=n % 8)).isoformat()

    def book(self) -> str:
        phone = f"+1415555{3000 + self.count:04d}"
        body = booking_body(
            self.setup, self._start(self.count), phone=phone, email=f"p{self.count}@example.com"
        )
        self.count += 1
        answer = self.client.post("/api/v1/bookings", json=body, headers=STAFF)
        assert answer.status_code == 201, (body["start"], answer.json)
        self.phones.append(phone)
        self.last_id = answer.json["id"]
        return phone

    def cancel_last(self) -> None:
        booking_id = self.last_id
        cancelled = self.client.post(f"/api/v1/bookings/{booking_id}/cancel", json={}, headers=STAFF)
        assert cancelled.status_code == 200, cancelled.json


def _count(app: Flask, model: type, *where: object) -> int:
    with app.app_context(), get_db().transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _ids(app: Flask, column: object) -> list[str]:
    with app.app_context(), get_db().transaction() as session:
        return [str(v) for v in session.scalars(select(column))]  # type: ignore[call-overload]


def _missing(suite: Suite) -> dict[str, object]:
    """What is not yet done, by kind (empty when every event is applied and every message settled)."""
    events = set(_ids(suite.booking, OutboxEvent.event_id))
    found = {
        "events notify has not handled": len(events - set(_ids(suite.notify, NotifyProcessed.event_id))),
        "events consult has not handled": len(events - set(_ids(suite.consult, ConsultProcessed.event_id))),
        "events checkins has not handled": len(
            events - set(_ids(suite.checkins, CheckinsProcessed.event_id))
        ),
        "booking deliveries unsettled": _count(
            suite.booking, OutboxDelivery, OutboxDelivery.outcome.is_(None)
        ),
        "links deliveries unsettled": _count(suite.consult, LinksDelivery, LinksDelivery.outcome.is_(None)),
        "messages not settled": _count(
            suite.notify,
            Message,
            Message.status.in_(("planned", "queued", "sending")),
            Message.due_at < utcnow(),
        ),
    }
    return {k: v for k, v in found.items() if v}


def _kill(processes: Processes, clinic: Clinic, standin: StandIn, name: str, point: str, nth: int) -> None:
    processes.stop(name)
    doomed = processes.start(name, kill_at=f"{point}@{nth}")
    deadline = time.monotonic() + 60
    while doomed.poll() is None and time.monotonic() < deadline:
        phone = clinic.book()
        if point == "dispatch.pushed":
            standin.rules(busy_once=[phone])  # its confirmation is retried through the dispatcher
        # A busy machine starts processes slowly: give this one a moment before the next booking.
        pause = time.monotonic() + 1.5
        while doomed.poll() is None and time.monotonic() < pause:
            time.sleep(0.1)
    assert doomed.poll() == -signal.SIGKILL, f"{name} never reached {point}"
    processes.start(name)


def _run(suite: Suite, standin: StandIn, rounds: int) -> None:
    processes = Processes(_env(suite, standin))
    clinic = Clinic(suite.booking)
    try:
        for name in COMMANDS:
            processes.start(name)
        kills = 0
        for _ in range(rounds):
            for name, point, nth in POINTS:
                _kill(processes, clinic, standin, name, point, nth)
                kills += 1
            clinic.cancel_last()
        assert kills == rounds * len(POINTS)
        # Sends cut short wait NOTIFY_SENDING_STALE_SECONDS before they are checked with the stand-in.
        deadline = time.monotonic() + 150
        while _missing(suite) and time.monotonic() < deadline:
            time.sleep(1)
        assert not _missing(suite)
    finally:
        processes.stop_all()
    _assert_nothing_doubled(suite, standin, clinic)


def _assert_nothing_doubled(suite: Suite, standin: StandIn, clinic: Clinic) -> None:
    events = _ids(suite.booking, OutboxEvent.event_id)
    for app, model in (
        (suite.notify, NotifyProcessed),
        (suite.consult, ConsultProcessed),
        (suite.checkins, CheckinsProcessed),
    ):
        handled = collections.Counter(_ids(app, model.event_id))
        assert all(handled[e] == 1 for e in events)
    sms = collections.Counter((m["to"], m["body"]) for m in standin.messages())
    assert max(sms.values()) == 1, [k for k, v in sms.items() if v > 1]
    confirmed = {m["to"] for m in standin.messages()}
    assert set(clinic.phones) <= confirmed  # every patient got at least their confirmation
    assert _count(suite.notify, Message, Message.status == SENT) >= 2 * len(clinic.phones)


@pytest.mark.slow
def test_kills_at_every_point_lose_and_double_nothing(suite: Suite, standin: StandIn, backend: str) -> None:
    _run(suite, standin, rounds=3 if backend == "postgresql" else 1)
