"""Re-planning a booking's reminders (``flask --app services.notify replan``): adds what is missing, once."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select

from services.booking import relay
from services.notify.models import Message
from shared import queues
from shared.db import get_db
from tests.booking.factories import booking_body, make_setup
from tests.ops.conftest import STAFF, Suite, work


def _steps(suite: Suite, booking_id: str) -> list[tuple[str, str, str]]:
    with suite.notify.app_context(), get_db().transaction() as session:
        rows = session.execute(
            select(Message.step, Message.channel, Message.status)
            .where(Message.booking_id == uuid.UUID(booking_id))
            .order_by(Message.step, Message.channel)
        ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_replan_restores_a_missing_reminder_and_changes_nothing_else(suite: Suite, clock: object) -> None:
    setup = make_setup(suite.booking)
    client = suite.booking.test_client()
    booking = client.post(
        "/api/v1/bookings", json=booking_body(setup, "2026-03-05T10:00:00-05:00"), headers=STAFF
    ).json
    relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis)
    work(suite.notify, queues.NOTIFY_QUEUE)
    planned = _steps(suite, booking["id"])
    assert ("reminder-24h", "email", "planned") in planned
    # A reminder row lost (or a step added to the protocol after the booking was planned).
    with suite.notify.app_context(), get_db().transaction() as session:
        session.execute(
            delete(Message).where(
                Message.booking_id == uuid.UUID(booking["id"]),
                Message.step == "reminder-24h",
                Message.channel == "email",
            )
        )

    runner = suite.notify.test_cli_runner()
    first = runner.invoke(args=["replan", booking["id"]])
    assert first.exit_code == 0, first.output
    assert '"reminders_added": 1' in first.output
    assert _steps(suite, booking["id"]) == planned
    again = runner.invoke(args=["replan", booking["id"]])
    assert '"reminders_added": 0' in again.output
    assert _steps(suite, booking["id"]) == planned

    unknown = runner.invoke(args=["replan", str(uuid.uuid4())])
    assert unknown.exit_code == 1
    assert "notify has not seen booking" in unknown.output
