"""What the checkins service reports on /metrics: due and unpublished check-ins, alerts, its delivery ledger."""

from __future__ import annotations

from datetime import timedelta

import redis
import time_machine
from flask import Flask

from tests.checkins.conftest import FIRST, booking_event, checkin_token, checkins, deliver, schedule
from tests.ops.conftest import samples


def _metrics(app: Flask) -> str:
    return app.test_client().get("/metrics").get_data(as_text=True)


def test_due_check_ins_and_unacknowledged_alerts_are_counted(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    clock.move_to(FIRST - timedelta(hours=47))
    body = _metrics(app)
    assert samples(body, "suite_checkins_due") == 2  # the two questionnaires, not yet sent
    assert samples(body, "suite_scrape_ok", collector="checkins") == 1
    assert samples(body, "suite_events_unhandled", producer="checkin", consumer="notify") == 0
    schedule(app)
    (phq9,) = checkins(app, plan_step="phq9-before-first")
    app.test_client().post(f"/c/{checkin_token(app, phq9)}", data={"item": 9, "value": 1})
    body = _metrics(app)
    assert samples(body, "suite_checkins_due") == 0
    assert samples(body, "suite_checkins_alerts_unacknowledged") == 1
    assert samples(body, "suite_checkins_alerts_unpublished") == 0  # published with the answer
    # Nobody acknowledged the three events for longer than the bound: the ledger says so.
    clock.shift(timedelta(minutes=5))
    assert samples(_metrics(app), "suite_events_unhandled", producer="checkin", consumer="notify") == 3
