"""Redis loses every queue (a failover to an empty replica): `suite recover-queues` has each service send again
what it had published, and consumers drop what they had already handled."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from services.booking import relay
from services.consult.models import ProcessedEvent as ConsultProcessed
from services.notify.models import ProcessedEvent as NotifyProcessed
from shared import queues
from shared.db import get_db
from shared.timeutil import utcnow
from tests.booking.factories import booking_body, make_setup
from tests.deploy.manifests import ROOT
from tests.ops.conftest import STAFF, Suite, work


def _processed(app: object, model: type) -> int:
    with app.app_context(), get_db().transaction() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _suite_cli(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BOOKING_DATABASE_URL": suite.booking.extensions["db"].url,
        "NOTIFY_DATABASE_URL": suite.notify.extensions["db"].url,
        "CONSULT_DATABASE_URL": suite.consult.extensions["db"].url,
        "REDIS_URL": suite.booking.extensions["suite_config"].redis_url,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "deploy.suitectl", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _next_weekday_at(hour: int) -> str:
    """A start on a weekday a few days ahead (the recovery commands run in other processes, on the real clock)."""
    day = datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=3)
    while day.weekday() > 4:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo("America/New_York")).isoformat()


@pytest.mark.slow
def test_queues_rebuilt_from_the_databases(suite: Suite) -> None:
    setup = make_setup(suite.booking)
    client = suite.booking.test_client()
    before_loss = utcnow() - timedelta(minutes=5)
    first = client.post("/api/v1/bookings", json=booking_body(setup, _next_weekday_at(10)), headers=STAFF)
    second = client.post(
        "/api/v1/bookings",
        json=booking_body(setup, _next_weekday_at(11), email="second@example.com"),
        headers=STAFF,
    )
    assert first.status_code == second.status_code == 201
    assert relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis) == 2
    # Consult got to its jobs (and published the join links); notify did not before Redis was lost.
    work(suite.consult, queues.CONSULT_QUEUE)
    assert _processed(suite.consult, ConsultProcessed) == 2
    suite.redis.flushall()

    recovered = _suite_cli(suite, "recover-queues", "--since", before_loss.isoformat())
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert '"events_to_resend": 2' in recovered.stdout
    assert '"links_to_resend": 2' in recovered.stdout

    assert relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis) == 2
    from services.consult import publishing

    with suite.consult.app_context():
        assert (
            publishing.publish_pending_links(
                db=get_db(),
                redis=suite.redis,
                signer=suite.consult.extensions["link_signer"],
                base_url="http://consult.test",
            )
            == 2
        )
    work(suite.consult, queues.CONSULT_QUEUE)
    # Consult drops the events it had handled; nothing doubles.
    assert _processed(suite.consult, ConsultProcessed) == 2
    notify_jobs = queues.queue(queues.NOTIFY_QUEUE, suite.redis).get_jobs()
    kinds = sorted(job.args[0]["type"] for job in notify_jobs)
    assert kinds == ["booking.confirmed", "booking.confirmed", "consult.links_ready", "consult.links_ready"]
    work(suite.notify, queues.NOTIFY_QUEUE)
    assert _processed(suite.notify, NotifyProcessed) >= 2
