"""One booking's correlation id, followed from the HTTP request through the outbox and the queues into notify
and consult, in JSON log lines that carry no patient data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from rq.job import Job

from services.booking import relay
from shared import queues
from tests.booking.factories import PATIENT, booking_body, make_setup
from tests.ops.conftest import STAFF, Suite, work

REQUEST_ID = "req-ops-trace-0001"
PRIVATE = (PATIENT["name"], PATIENT["email"], PATIENT["phone"], PATIENT["phone"][1:], "Jordan")


@pytest.fixture
def logs(suite: Suite) -> Iterator[io.StringIO]:
    """What the suite's JSON handler writes, from here on (the apps configured logging when built)."""
    stream = io.StringIO()
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_suite_handler", False))
    assert isinstance(handler, logging.StreamHandler)
    old = handler.setStream(stream)
    # RQ gives its loggers their own handlers (and stops propagation) when a worker starts where no handler
    # is in effect, as an earlier test in this process may have done; a worker process of the suite starts
    # with ours in effect, so its RQ lines reach the JSON handler. Start from that state.
    saved = {}
    for name in ("rq.worker", "rq.job", "rq.scheduler"):
        rq_logger = logging.getLogger(name)
        saved[name] = (list(rq_logger.handlers), rq_logger.propagate, rq_logger.level)
        rq_logger.handlers.clear()
        rq_logger.propagate = True
        rq_logger.setLevel(logging.NOTSET)
    yield stream
    handler.setStream(old)
    for name, (handlers, propagate, level) in saved.items():
        rq_logger = logging.getLogger(name)
        rq_logger.handlers[:] = handlers
        rq_logger.propagate = propagate
        rq_logger.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _jobs(suite: Suite, name: str) -> list[Job]:
    return queues.queue(name, suite.redis).get_jobs()


def test_a_booking_is_traceable_end_to_end_and_its_logs_hold_no_patient_data(
    suite: Suite, logs: io.StringIO, clock: object
) -> None:
    setup = make_setup(suite.booking)
    client = suite.booking.test_client()
    answer = client.post(
        "/api/v1/bookings",
        json=booking_body(setup, "2026-03-03T10:00:00-05:00"),
        headers={**STAFF, "X-Request-ID": REQUEST_ID},
    )
    assert answer.status_code == 201
    assert answer.headers["X-Request-ID"] == REQUEST_ID
    booking_id = answer.json["id"]

    # The outbox keeps it with the event (the staff API shows booking's part of the timeline).
    (event,) = client.get(f"/api/v1/bookings/{booking_id}/events", headers=STAFF).json
    assert event["correlation_id"] == REQUEST_ID
    assert event["published_at"] is None

    # The relay stamps it on each consumer's job.
    assert relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis) == 1
    for name in (queues.NOTIFY_QUEUE, queues.CONSULT_QUEUE):
        (job,) = _jobs(suite, name)
        assert job.meta["correlation_id"] == REQUEST_ID
        assert "Jordan" not in (job.description or "")

    # Consult handles it and publishes the join links under the same id, for notify.
    work(suite.consult, queues.CONSULT_QUEUE)
    links = [j for j in _jobs(suite, queues.NOTIFY_QUEUE) if j.args[0]["type"] == "consult.links_ready"]
    (links_job,) = links
    assert links_job.args[0]["correlation_id"] == REQUEST_ID
    assert links_job.meta["correlation_id"] == REQUEST_ID

    # Notify plans the booking's messages, stores the join links, and sends the confirmation by SMS and email.
    work(suite.notify, queues.NOTIFY_QUEUE)

    lines = _lines(logs)
    traced = [line for line in lines if line.get("correlation_id") == REQUEST_ID]
    loggers = {line["logger"] for line in traced}
    # The request, the relay, consult's handler and publisher, notify's handler, and RQ's own job lines.
    assert {
        "suite.request",
        "services.booking.relay",
        "services.consult.bookings",
        "services.consult.publishing",
        "services.notify.sending",
        "rq.worker",
    } <= loggers, loggers
    messages = [line["message"] for line in traced]
    assert "POST /api/v1/bookings 201" in messages
    assert "published booking.confirmed" in messages
    assert "join links published" in messages
    sent = [line for line in traced if line["message"] == "message sent"]
    # The confirmation by SMS and by email, and the provider's invite (the join links were in before it went).
    assert sorted((line["step"], line["channel"]) for line in sent) == [
        ("confirmation", "email"),
        ("confirmation", "sms"),
        ("provider-invite", "email"),
    ]
    assert {line["booking_id"] for line in sent} == {booking_id}
    assert not [line for line in lines if line["level"] == "ERROR"], "nothing failed on the way"

    text = logs.getvalue()
    for private in PRIVATE:
        assert private not in text, f"{private!r} reached the logs"


def test_a_failed_job_logs_no_arguments(suite: Suite, logs: io.StringIO) -> None:
    # RQ logs a failing job's arguments as an extra field; a booking event carries contact details.
    queues.queue(queues.CONSULT_QUEUE, suite.redis).enqueue_call(
        "tests.ops.handlers.fail",
        args=({"patient": {"name": PATIENT["name"], "email": PATIENT["email"], "phone": PATIENT["phone"]}},),
        description="test job",
    )
    work(suite.consult, queues.CONSULT_QUEUE)
    lines = _lines(logs)
    failures = [line for line in lines if line["logger"] == "rq.worker" and line["level"] == "ERROR"]
    assert failures, "the failure was logged"
    assert all("arguments" not in line and "kwargs" not in line for line in failures)
    text = logs.getvalue()
    for private in PRIVATE:
        assert private not in text
