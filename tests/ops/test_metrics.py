"""/metrics on the services: latency by route template, booking counts on commit, outbox and queue gauges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
import time_machine
from rq import Queue, Retry

from services.booking import relay
from shared import queues
from tests.booking.factories import Setup, booking_body, make_setup
from tests.ops.conftest import STAFF, Suite, samples, work
from tests.support.servers import RedisServer


def _metrics(app: Any) -> str:
    answer = app.test_client().get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain; version=0.0.4")
    return str(answer.get_data(as_text=True))


def _book(
    suite: Suite, start: str = "2026-03-03T10:00:00-05:00", setup: Setup | None = None, **patient: Any
) -> dict[str, Any]:
    setup = setup or make_setup(suite.booking)
    answer = suite.booking.test_client().post(
        "/api/v1/bookings", json=booking_body(setup, start, **patient), headers=STAFF
    )
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def test_every_service_serves_metrics(suite: Suite) -> None:
    for app in suite.apps():
        app.test_client().get("/healthz")
        body = _metrics(app)
        service = app.config["SERVICE_NAME"]
        assert (
            samples(body, "suite_http_request_duration_seconds_count", service=service, endpoint="/healthz")
            >= 1
        )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_latency_is_labelled_by_route_template_never_by_path(suite: Suite, clock: object) -> None:
    booking = _book(suite)
    token = booking["manage_url"].rsplit("/", 1)[1]
    client = suite.booking.test_client()
    before = _metrics(suite.booking)
    assert client.get(f"/manage/{token}").status_code == 200
    assert client.get("/manage/not-a-token").status_code in {404, 410}
    body = _metrics(suite.booking)

    def served(status: str) -> float:
        labels = {"service": "booking", "endpoint": "/manage/<token>", "method": "GET", "status": status}
        return samples(body, "suite_http_request_duration_seconds_count", **labels) - samples(
            before, "suite_http_request_duration_seconds_count", **labels
        )

    assert served("200") == 1
    assert served("404") + served("410") == 1
    assert token not in body
    assert booking["id"] not in body
    assert "jordan" not in body.lower()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_made_up_method_or_path_adds_no_label_values(suite: Suite) -> None:
    client = suite.booking.test_client()
    client.open("/api/v1/bookings", method="BREW")
    client.get("/no/such/page/8c1f")
    body = _metrics(suite.booking)
    assert "BREW" not in body
    assert "8c1f" not in body
    assert samples(body, "suite_http_request_duration_seconds_count", method="other") >= 1
    assert (
        samples(body, "suite_http_request_duration_seconds_count", endpoint="<unmatched>", status="404") >= 1
    )


def test_bookings_are_counted_when_they_commit(suite: Suite, clock: object) -> None:
    def count(change: str) -> float:
        return samples(_metrics(suite.booking), "suite_bookings_total", change=change)

    before = {c: count(c) for c in ("created", "rescheduled", "cancelled")}
    setup = make_setup(suite.booking)
    booking = _book(suite, setup=setup)
    client = suite.booking.test_client()
    # The same slot again: 409, rolled back, not counted.
    taken = client.post(
        "/api/v1/bookings",
        json=booking_body(setup, "2026-03-03T10:00:00-05:00", email="second@example.com"),
        headers=STAFF,
    )
    assert taken.status_code == 409, taken.json
    moved = client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule",
        json={"start": "2026-03-03T11:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    assert client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={}, headers=STAFF).status_code == 200
    assert {c: count(c) - before[c] for c in before} == {"created": 1, "rescheduled": 1, "cancelled": 1}


def test_the_outbox_backlog_and_its_age(suite: Suite, clock: time_machine.Coordinates) -> None:
    setup = make_setup(suite.booking)
    _book(suite, setup=setup)
    _book(suite, start="2026-03-03T11:00:00-05:00", setup=setup, email="other@example.com")
    clock.shift(timedelta(seconds=90))
    body = _metrics(suite.booking)
    assert samples(body, "suite_outbox_pending_events") == 2
    assert 90 <= samples(body, "suite_outbox_oldest_pending_age_seconds") < 120
    assert samples(body, "suite_scrape_ok", collector="outbox") == 1

    assert relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis) == 2
    body = _metrics(suite.booking)
    assert samples(body, "suite_outbox_pending_events") == 0
    assert samples(body, "suite_outbox_oldest_pending_age_seconds") == 0


def _enqueue(connection: redis.Redis, handler: str, *args: Any, retry: Retry | None = None) -> None:
    queues.queue(queues.CONSULT_QUEUE, connection).enqueue_call(
        handler, args=args, retry=retry, description="test job", failure_ttl=3600
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_queue_depth_age_failures_and_workers(suite: Suite, clock: time_machine.Coordinates) -> None:
    _enqueue(suite.redis, "tests.ops.handlers.succeed", {"n": 1})
    _enqueue(suite.redis, "tests.ops.handlers.fail", {"n": 2})
    clock.shift(timedelta(seconds=45))
    body = _metrics(suite.consult)
    assert samples(body, "suite_queue_jobs", queue="consult", state="queued") == 2
    assert 45 <= samples(body, "suite_queue_oldest_job_age_seconds", queue="consult") < 60
    assert samples(body, "suite_queue_workers", queue="consult") == 0
    # Notify reports its own queue, consult its own: each backlog comes from one service.
    assert samples(body, "suite_queue_jobs", queue="notify") == 0
    assert not [
        line
        for line in body.splitlines()
        if line.startswith(("suite_queue_jobs{", "suite_queue_workers{", "suite_queue_oldest"))
        and 'queue="notify"' in line
    ]

    work(suite.consult, queues.CONSULT_QUEUE)
    body = _metrics(suite.consult)
    assert samples(body, "suite_queue_jobs", queue="consult", state="queued") == 0
    assert samples(body, "suite_queue_jobs", queue="consult", state="failed") == 1
    assert samples(body, "suite_queue_oldest_job_age_seconds", queue="consult") == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_job_taken_by_a_worker_but_not_started_is_counted(suite: Suite) -> None:
    _enqueue(suite.redis, "tests.ops.handlers.succeed", {"n": 1})
    _enqueue(suite.redis, "tests.ops.handlers.succeed", {"n": 2})
    # What a worker killed between taking a job and starting it leaves: the job in neither the queue nor the
    # started registry, but in RQ's intermediate list until a maintenance round fails and retries it.
    consult = queues.queue(queues.CONSULT_QUEUE, suite.redis)
    taken = Queue.dequeue_any([consult], timeout=None, connection=suite.redis, serializer=consult.serializer)
    assert taken is not None
    body = _metrics(suite.consult)
    assert samples(body, "suite_queue_jobs", queue="consult", state="queued") == 1
    assert samples(body, "suite_queue_jobs", queue="consult", state="dequeued") == 1
    assert samples(body, "suite_queue_jobs", queue="consult", state="started") == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unreachable_redis_is_reported_not_fatal(suite: Suite, redis_server: RedisServer) -> None:
    redis_server.stop()
    try:
        answer = suite.consult.test_client().get("/metrics")
        assert answer.status_code == 200
        body = answer.get_data(as_text=True)
        assert samples(body, "suite_scrape_ok", collector="queues") == 0
        assert samples(body, "suite_scrape_ok", collector="consult") == 1
        assert "suite_http_request_duration_seconds" in body
    finally:
        redis_server.start()


def test_consult_reports_rooms_and_pending_links(suite: Suite) -> None:
    body = _metrics(suite.consult)
    for name in (
        "suite_consult_rooms_open",
        "suite_consult_rooms_overdue",
        "suite_consult_links_pending",
        "suite_consult_links_pending_oldest_age_seconds",
    ):
        assert samples(body, name) == 0
    assert samples(body, "suite_scrape_ok", collector="consult") == 1


def test_notify_counts_sends_and_reports_what_is_due_but_unsent(
    suite: Suite, clock: time_machine.Coordinates
) -> None:
    def accepted(channel: str) -> float:
        return samples(
            _metrics(suite.notify), "suite_notify_messages_total", channel=channel, outcome="accepted"
        )

    before = {c: accepted(c) for c in ("sms", "email")}
    _book(suite)  # Tuesday 10:00 in New York, booked on Monday at noon UTC
    relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis)
    work(suite.notify, queues.NOTIFY_QUEUE)
    # Counted in this process: the worker ran here. The confirmation went by SMS and email, and the provider's
    # calendar invite by email.
    assert {c: accepted(c) - before[c] for c in before} == {"sms": 1, "email": 2}
    body = _metrics(suite.notify)
    assert samples(body, "suite_notify_due_messages") == 0
    assert samples(body, "suite_notify_oldest_due_age_seconds") == 0

    # A day on, the 24-hour reminder's moment has passed and no dispatcher has run: due against sent shows it.
    clock.shift(timedelta(hours=20))
    body = _metrics(suite.notify)
    assert samples(body, "suite_notify_due_messages", channel="email") == 1
    assert samples(body, "suite_notify_oldest_due_age_seconds") > 0
    assert samples(body, "suite_scrape_ok", collector="notify") == 1
    # Notify reports both of its queues.
    assert samples(body, "suite_queue_jobs", queue="notify-send", state="queued") == 0
    assert 'suite_queue_workers{queue="notify-send"}' in body
