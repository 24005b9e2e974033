"""From a reminder that asks (sent through Twilio's contract mock) to the booking's attendance: the patient's
signed reply reaches notify, its event the booking service's worker, and the acknowledgement notify's ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from redis import Redis
from sqlalchemy import select

from services.notify.models import SENT, ReplyDelivery
from services.notify.replies import publishing
from shared.db import get_db
from shared.queues import BOOKING_QUEUE
from shared.worker import SuiteWorker, make_worker
from tests.booking.factories import booking_body, make_setup
from tests.notify.conftest import (
    MONDAY_NOON,
    STAFF,
    Upstream,
    by_step,
    tick,
    twilio_sender,
    use_senders,
)
from tests.notify.replies.test_replies import reply
from tests.support.twilio_mock import PrismServer


class AckingBurstWorker(SuiteWorker):
    """The suite's worker (it acknowledges events to their producer), minus its command channel."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def booking_work(upstream: Upstream) -> None:
    """Run the booking worker's queued jobs (notify's reply events) in a burst, as ``flask worker`` would."""
    with upstream.app.app_context():
        template = make_worker([BOOKING_QUEUE])
        worker = AckingBurstWorker(
            template.queues, connection=template.connection, serializer=template.serializer
        )
        worker.work(burst=True, logging_level="WARNING")


@pytest.mark.slow
def test_a_patient_confirms_by_sms_and_staff_see_it(
    backend: str,
    make_app: Callable[..., Flask],
    upstream: Upstream,
    redis_client: Redis,
    twilio_api_mock: PrismServer,
) -> None:
    notify = make_app()
    staff = upstream.staff
    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        use_senders(notify, sms=twilio_sender(base_url=twilio_api_mock.url))
        setup = make_setup(upstream.app, reminder_protocol="video-consultation")
        created = staff.post(
            "/api/v1/bookings", json=booking_body(setup, "2026-03-04T10:00:00-05:00"), headers=STAFF
        )
        assert created.status_code == 201, created.json
        booking_id = created.json["id"]
        upstream.relay()
        clock.move_to(MONDAY_NOON + timedelta(days=1, hours=4))  # Tuesday 16:00 UTC: the day before
        tick(notify)
        reminder = by_step(notify, booking_version=1)[("reminder-24h", "sms")]
        assert reminder.status == SENT
        assert reminder.provider_ref.startswith("SM")  # type: ignore[union-attr]  # Prism answered as Twilio
        assert "Reply C to confirm, R to change" in (reminder.body or "")

        answer = reply(notify.test_client(), "Confirm ✅")
        assert "is confirmed" in answer
        booking_work(upstream)
        attendance = staff.get(f"/api/v1/bookings/{booking_id}/attendance", headers=STAFF).json
        assert (attendance["state"], attendance["source"], attendance["booking_version"]) == (
            "confirmed",
            "sms",
            1,
        )

        # The booking worker acknowledged the event: notify's next pass settles its ledger.
        with notify.app_context():
            publishing.relay_once(notify.extensions["notify"])
            with get_db().transaction() as session:
                (ledger,) = session.scalars(select(ReplyDelivery))
        assert (ledger.consumer, ledger.outcome, ledger.sends) == ("booking", "handled", 1)

        # Staff move the visit: the confirmation was for the old time.
        moved = staff.post(
            f"/api/v1/bookings/{booking_id}/reschedule",
            json={"start": "2026-03-05T11:00:00-05:00"},
            headers=STAFF,
        )
        assert moved.status_code == 200, moved.json
        assert (
            staff.get(f"/api/v1/bookings/{booking_id}/attendance", headers=STAFF).json["state"]
            == "unconfirmed"
        )
