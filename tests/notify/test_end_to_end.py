"""From a real booking to the patient's phone and inbox: booking API, outbox relay, Redis, notify worker,
Twilio (the Prism contract mock) and SMTP (aiosmtpd). The links in the messages open the booking."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from redis import Redis

from services.notify.models import CANCELLED, SENT
from services.notify.senders.smtp_email import SmtpEmailSender
from tests.booking.factories import booking_body, make_setup
from tests.notify.conftest import MONDAY_NOON, STAFF, Upstream, by_step, twilio_sender, use_senders, work
from tests.notify.doubles import mail_server
from tests.support.twilio_mock import PrismServer

LINK = re.compile(r"https://booking\.example\.test/manage/(\S+)")


@pytest.mark.slow
def test_booking_to_sms_and_email_and_back(
    backend: str,
    make_app: Callable[..., Flask],
    upstream: Upstream,
    redis_client: Redis,
    twilio_api_mock: PrismServer,
    tmp_path: Path,
) -> None:
    notify = make_app()
    staff = upstream.staff

    with time_machine.travel(MONDAY_NOON, tick=True), mail_server(tmp_path) as mail:
        smtp = SmtpEmailSender(host=mail.host, port=mail.port, security="none", timeout=5)
        sms = twilio_sender(base_url=twilio_api_mock.url)
        use_senders(notify, sms=sms, email=smtp)
        setup = make_setup(upstream.app, reminder_protocol="video-consultation")

        created = staff.post(
            "/api/v1/bookings", json=booking_body(setup, "2026-03-04T10:00:00-05:00"), headers=STAFF
        )
        assert created.status_code == 201, created.json
        booking_id = created.json["id"]
        upstream.relay()
        work(notify)

        plan = by_step(notify, booking_version=1)
        assert plan[("confirmation", "sms")].status == SENT
        assert plan[("confirmation", "sms")].provider_ref.startswith("SM")  # Prism answered as Twilio would
        assert plan[("reminder-24h", "sms")].due_at.isoformat() == "2026-03-03T15:00:00+00:00"
        (confirmation,) = mail.handler.messages
        assert confirmation["To"] == "jordan@example.com"
        text = confirmation.get_body(preferencelist=("plain",)).get_content()
        assert "Wed 4 Mar 2026, 3:00 PM GMT" in text  # the patient's zone (London), not the clinic's
        token = LINK.search(text).group(1)  # type: ignore[union-attr]
        # The manage link in the email opens this booking on the booking service.
        opened = staff.get(f"/api/v1/manage/{token}")
        assert opened.status_code == 200, opened.json
        assert opened.json["id"] == booking_id

        moved = staff.post(
            f"/api/v1/bookings/{booking_id}/reschedule",
            json={"start": "2026-03-05T11:00:00-05:00"},
            headers=STAFF,
        )
        assert moved.status_code == 200, moved.json
        upstream.relay()
        work(notify)
        assert by_step(notify, booking_version=1)[("reminder-24h", "email")].status == CANCELLED
        assert by_step(notify, booking_version=2)[("rescheduled", "sms")].status == SENT
        notice = mail.handler.messages[-1].get_body(preferencelist=("plain",)).get_content()
        assert "New time: Thu 5 Mar 2026, 4:00 PM GMT" in notice
        new_token = LINK.search(notice).group(1)  # type: ignore[union-attr]
        assert staff.get(f"/api/v1/manage/{token}").status_code == 409  # the old link is outdated
        assert staff.get(f"/api/v1/manage/{new_token}").status_code == 200

        cancelled = staff.post(f"/api/v1/manage/{new_token}/cancel", json={})
        assert cancelled.status_code == 200, cancelled.json
        upstream.relay()
        work(notify)
        assert by_step(notify, booking_version=3)[("cancelled", "email")].status == SENT
        assert {
            m.status for (step, _), m in by_step(notify, booking_version=2).items() if step != "rescheduled"
        } == {CANCELLED}
        assert len(mail.handler.messages) == 3
        smtp.close()
        sms.close()
