"""The operations commands: queue status, failed jobs and their replay, a booking's timeline over the APIs."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from rq import Retry
from sqlalchemy import update

from deploy.suitectl.cli import cli
from services.booking import relay
from services.booking.models import OutboxDelivery
from shared import queues
from shared.db import get_db
from shared.timeutil import utcnow
from tests.booking.factories import PATIENT, booking_body, make_setup
from tests.ops.conftest import STAFF, Suite, work
from tests.support.http import serve
from tests.support.servers import RedisServer, free_port

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _enqueue_failing(suite: Suite, n: int) -> None:
    queues.queue(queues.CONSULT_QUEUE, suite.redis).enqueue_call(
        "tests.ops.handlers.fail",
        args=({"n": n, "patient": {"email": PATIENT["email"]}},),
        description=f"booking.confirmed test-{n}",
        job_id=f"consult-test-{n}",
        retry=Retry(max=1),
        failure_ttl=3600,
    )


def _weekday() -> str:
    day = datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=5)
    while day.weekday() > 4:
        day += timedelta(days=1)
    return datetime.combine(day, time(10), tzinfo=ZoneInfo("America/New_York")).isoformat()


@sqlite_only
def test_status_lists_every_queue(suite: Suite, redis_server: RedisServer) -> None:
    queues.queue(queues.NOTIFY_QUEUE, suite.redis).enqueue_call(
        "tests.ops.handlers.succeed", args=({"n": 1},)
    )
    # A booking event published an hour ago that no consumer has handled: the relay's pass counts it.
    setup = make_setup(suite.booking)
    booked = suite.booking.test_client().post(
        "/api/v1/bookings", json=booking_body(setup, _weekday()), headers=STAFF
    )
    assert booked.status_code == 201
    relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis)
    suite.redis.delete("rq:queue:consult")
    suite.redis.delete("rq:queue:checkins")
    an_hour_ago = utcnow() - timedelta(hours=1)
    with suite.booking.app_context(), get_db().transaction() as session:
        session.execute(update(OutboxDelivery).values(first_sent_at=an_hour_ago, last_sent_at=an_hour_ago))
    relay.reconcile_once(db=suite.booking.extensions["db"], redis=suite.redis, grace=45, bound=120)
    result = _invoke("status", "--redis-url", redis_server.url, "--json")
    assert result.exit_code == 0
    answer = json.loads(result.output)
    states = {s["name"]: s for s in answer["queues"]}
    assert set(states) == set(queues.ALL_QUEUES)
    assert states["notify"]["queued"] == 3  # the job above, the event's job and its redelivery
    assert states["consult"]["queued"] == 1  # published again
    assert states["checkins"]["queued"] == 1
    overdue = {(d["producer"], d["consumer"]): d["overdue"] for d in answer["deliveries"]}
    assert overdue == {("booking", "notify"): 1, ("booking", "consult"): 1, ("booking", "checkins"): 1}
    text = _invoke("status", "--redis-url", redis_server.url).output
    assert text.splitlines()[0].split()[:3] == ["queue", "queued", "started"]
    assert "booking > notify" in text


@sqlite_only
def test_failed_jobs_are_listed_without_their_data_and_replayed(
    suite: Suite, redis_server: RedisServer
) -> None:
    for n in (1, 2):
        _enqueue_failing(suite, n)
    work(suite.consult, queues.CONSULT_QUEUE)

    listed = _invoke("jobs", "failed", "--queue", "consult", "--redis-url", redis_server.url, "--json")
    found = json.loads(listed.output)
    assert [f["job_id"] for f in found] == ["consult-test-1", "consult-test-2"]
    assert {f["error"] for f in found} == {"RuntimeError"}
    assert found[0]["description"] == "booking.confirmed test-1"
    assert PATIENT["email"] not in listed.output
    assert "provider unavailable" not in listed.output, "only the exception's type is shown"

    assert _invoke("jobs", "replay", "--queue", "consult", "--redis-url", redis_server.url).exit_code == 2
    replayed = _invoke(
        "jobs", "replay", "--queue", "consult", "consult-test-1", "--redis-url", redis_server.url
    )
    assert replayed.exit_code == 0
    assert "requeued 1 job(s) on consult" in replayed.output
    consult = queues.queue(queues.CONSULT_QUEUE, suite.redis)
    assert consult.job_ids == ["consult-test-1"]

    unknown = CliRunner().invoke(
        cli, ["jobs", "replay", "--queue", "consult", "no-such-job", "--redis-url", redis_server.url]
    )
    assert unknown.exit_code == 1
    assert "not in the failed registry: no-such-job" in unknown.output

    everything = _invoke("jobs", "replay", "--queue", "consult", "--all", "--redis-url", redis_server.url)
    assert "requeued 1 job(s)" in everything.output
    assert sorted(consult.job_ids) == ["consult-test-1", "consult-test-2"]
    assert json.loads(_invoke("jobs", "failed", "--redis-url", redis_server.url, "--json").output) == []


def test_a_bookings_timeline_from_the_staff_apis(suite: Suite, clock: object) -> None:
    setup = make_setup(suite.booking)
    client = suite.booking.test_client()
    created = client.post(
        "/api/v1/bookings",
        json=booking_body(setup, "2026-03-03T10:00:00-05:00"),
        headers={**STAFF, "X-Request-ID": "req-timeline-0001"},
    ).json
    booking_id = created["id"]
    relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis)
    moved = client.post(
        f"/api/v1/bookings/{booking_id}/reschedule",
        json={"start": "2026-03-03T11:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200
    work(suite.consult, queues.CONSULT_QUEUE)
    # Notify plans v1's messages and sends the confirmation (its console senders), and gets the join links.
    work(suite.notify, queues.NOTIFY_QUEUE)

    with (
        serve(suite.booking) as booking_url,
        serve(suite.notify) as notify_url,
        serve(suite.consult) as consult_url,
    ):
        args = [
            "timeline",
            booking_id,
            "--booking-url",
            booking_url,
            "--notify-url",
            notify_url,
            "--consult-url",
            consult_url,
            "--api-key",
            "dev-api-key",
        ]
        result = _invoke(*args, "--json")
        text = _invoke(*args).output
    assert result.exit_code == 0
    timeline = json.loads(result.output)
    assert timeline["summary"]["status"] == "confirmed"
    assert timeline["summary"]["version"] == 2
    whats = [(e["source"], e["what"]) for e in timeline["entries"]]
    assert ("booking", "booking.confirmed v1") in whats
    assert ("relay", "queued booking.confirmed v1") in whats
    assert ("booking", "booking.rescheduled v2") in whats
    assert whats.index(("booking", "booking.confirmed v1")) < whats.index(
        ("booking", "booking.rescheduled v2")
    )
    # Notify: v1's confirmation went by SMS and email; its reminders wait for their moment.
    assert ("notify", "sent confirmation by sms v1") in whats
    assert ("notify", "sent confirmation by email v1") in whats
    assert ("notify", "planned reminder-24h by email v1") in whats
    assert timeline["summary"]["notify_version"] == 1
    # The reschedule is not relayed yet: the timeline says so rather than hiding it.
    assert "not yet on a queue" in timeline["gaps"]["relay"]
    # Consult saw v1 (v2 is still in the outbox): links issued and sent for v1.
    assert ("consult", "join links v1 issued") in whats
    assert ("consult", "join links v1 sent to notify") in whats
    assert timeline["summary"]["consult_version"] == 1
    confirmed = next(e for e in timeline["entries"] if e["what"] == "booking.confirmed v1")
    assert confirmed["detail"]["correlation_id"] == "req-timeline-0001"
    assert booking_id in text
    for private in (PATIENT["name"], PATIENT["email"], PATIENT["phone"]):
        assert private not in result.output
        assert private not in text


@sqlite_only
def test_the_timeline_names_what_it_could_not_read(suite: Suite) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    missing = str(uuid.uuid4())
    with serve(suite.booking) as booking_url:
        unknown = CliRunner().invoke(
            cli,
            ["timeline", missing, "--booking-url", booking_url, "--notify-url", down, "--consult-url", down],
        )
        wrong_key = CliRunner().invoke(
            cli, ["timeline", missing, "--booking-url", booking_url, "--api-key", "wrong", "--json"]
        )
    assert unknown.exit_code == 1
    assert "(no booking entries: 404 from" in unknown.output
    assert "(no consult entries: unreachable ([Errno 111] Connection refused))" in unknown.output
    assert "(no notify entries: unreachable ([Errno 111] Connection refused))" in unknown.output
    assert json.loads(wrong_key.output)["gaps"]["booking"].startswith("401 from")
