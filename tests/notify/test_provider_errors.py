"""What Twilio and the mail server say back: retried with bounded backoff, recorded for good, opt-outs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import requests
import time_machine
from flask import Flask

from services.notify.models import FAILED, PLANNED, SENDING, SENT, SKIPPED, Message
from services.notify.senders.smtp_email import SmtpEmailSender
from tests.notify.conftest import (
    MONDAY_NOON,
    by_step,
    deliver,
    dispatch,
    messages,
    outbox,
    tick,
    twilio_sender,
    use_senders,
    work,
)
from tests.notify.doubles import TwilioAccount, mail_server
from tests.notify.factories import Booking

START = MONDAY_NOON + timedelta(days=3, hours=3)
PHONE = "+14155552671"


@pytest.fixture
def twilio(app: Flask) -> TwilioAccount:
    account = TwilioAccount()
    use_senders(app, sms=twilio_sender(account))
    return account


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, None), (503, None)])
def test_rate_limits_and_server_errors_are_retried_with_backoff(
    app: Flask, twilio: TwilioAccount, clock: time_machine.Coordinates, status: int, code: int | None
) -> None:
    twilio.fail_next(status, code, times=2)
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.status == PLANNED
    assert row.attempts == 1
    assert row.reason.startswith("will retry")
    assert timedelta(seconds=30) <= row.due_at - MONDAY_NOON <= timedelta(seconds=33)

    clock.move_to(row.due_at)
    tick(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.attempts == 2
    assert (
        timedelta(seconds=120) <= row.due_at - MONDAY_NOON - timedelta(seconds=30) <= timedelta(seconds=136)
    )

    clock.move_to(row.due_at)
    tick(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.status == SENT
    assert row.attempts == 3
    assert row.provider_ref.startswith("SM")
    assert twilio.bodies_to(PHONE) == [twilio.creates[-1]["Body"]]  # accepted once, after two refusals
    assert len(twilio.creates) == 3


def test_retries_are_bounded(app: Flask, twilio: TwilioAccount, clock: time_machine.Coordinates) -> None:
    twilio.fail_next(503, times=10)
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    for _ in range(8):
        row = by_step(app)[("confirmation", "sms")]
        if row.status != PLANNED:
            break
        clock.move_to(row.due_at)
        tick(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.status == FAILED
    assert row.attempts == 5  # NOTIFY_RETRY_BACKOFF_SECONDS has four waits
    assert row.reason.startswith("gave up after 5 attempts")
    assert len(twilio.creates) == 5
    assert by_step(app)[("confirmation", "email")].status == SENT  # the email went regardless


@pytest.mark.parametrize(("code", "meaning"), [(21211, "invalid 'To'"), (21614, "not a mobile number")])
def test_permanent_errors_are_recorded_and_not_retried(
    app: Flask, twilio: TwilioAccount, clock: time_machine.Coordinates, code: int, meaning: str
) -> None:
    twilio.fail_next(400, code, message=meaning)
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.status == FAILED
    assert row.error_code == str(code)
    assert meaning in row.reason
    clock.shift(timedelta(hours=1))
    tick(app)
    assert len(twilio.creates) == 1


def test_21610_marks_the_number_opted_out(
    app: Flask, twilio: TwilioAccount, clock: time_machine.Coordinates
) -> None:
    twilio.fail_next(400, 21610, message="Attempt to send to unsubscribed recipient")
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.status == FAILED
    assert row.error_code == "21610"
    # Later SMS to that number are skipped on purpose; email still goes.
    clock.move_to(START - timedelta(hours=24))
    tick(app)
    reminders = by_step(app)
    assert reminders[("reminder-24h", "sms")].status == SKIPPED
    assert reminders[("reminder-24h", "sms")].reason == "the number opted out of SMS"
    assert reminders[("reminder-24h", "email")].status == SENT
    assert len(twilio.creates) == 1


def test_connection_refused_is_retried(
    app: Flask, twilio: TwilioAccount, clock: time_machine.Coordinates
) -> None:
    use_senders(app, sms=twilio_sender(base_url="http://127.0.0.1:9"))  # nothing listens on the discard port
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.status == PLANNED
    assert "could not connect to Twilio" in row.reason


def test_no_answer_is_not_guessed_but_checked_with_twilio(
    app: Flask, twilio: TwilioAccount, clock: time_machine.Coordinates
) -> None:
    # Twilio took the message but the answer never came back: the send is reconciled, not repeated.
    twilio.raise_next(requests.ReadTimeout("read timed out"))
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.status == SENDING
    assert row.reason.startswith("outcome unknown")
    assert dispatch(app).reconciling == 0  # not while a send could still be in flight

    clock.shift(timedelta(minutes=6))
    assert dispatch(app).reconciling == 1
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    assert row.status == PLANNED  # the double never accepted it, so it goes again
    assert row.reason == "sending again: the interrupted send never reached the provider"
    tick(app)
    assert by_step(app)[("confirmation", "sms")].status == SENT
    assert len(twilio.bodies_to(PHONE)) == 1
    assert twilio.lists[0]["To"] == PHONE


def test_smtp_refusals_temporary_and_permanent(
    app: Flask, clock: time_machine.Coordinates, tmp_path: Path
) -> None:
    with mail_server(tmp_path) as server:
        sender = SmtpEmailSender(host=server.host, port=server.port, security="none", timeout=5)
        use_senders(app, email=sender)
        deliver(app, Booking(start=START, email="reject-450@example.com").confirmed(at=MONDAY_NOON))
        deliver(app, Booking(start=START, email="reject-550@example.com").confirmed(at=MONDAY_NOON))
        deliver(app, Booking(start=START, email="alex@example.com").confirmed(at=MONDAY_NOON))
        work(app)
        rows = {m.recipient: m for m in _confirmation_emails(app)}
        assert rows["reject-450@example.com"].status == PLANNED
        assert rows["reject-450@example.com"].error_code == "smtp-450"
        assert rows["reject-550@example.com"].status == FAILED
        assert rows["reject-550@example.com"].error_code == "smtp-550"
        assert rows["alex@example.com"].status == SENT
        assert [m["To"] for m in server.handler.messages] == ["alex@example.com"]
        sender.close()


def test_mail_server_down_is_retried(app: Flask, clock: time_machine.Coordinates) -> None:
    use_senders(app, email=SmtpEmailSender(host="127.0.0.1", port=9, security="none", timeout=2))
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "email")]
    assert row.status == PLANNED
    assert "mail server unreachable" in row.reason
    assert outbox(app, "email") == []


def _confirmation_emails(app: Flask) -> list[Message]:
    return messages(app, channel="email", step="confirmation")


def test_a_retry_never_goes_out_for_a_booking_that_moved_meanwhile(
    app: Flask, twilio: TwilioAccount, clock: time_machine.Coordinates
) -> None:
    # The 24 h reminder is in flight when the patient moves the visit; Twilio answers 503. The retry must not
    # remind the patient of the old time.
    booking = Booking(start=START)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    clock.move_to(START - timedelta(hours=24))
    moved = booking.reschedule(START + timedelta(days=2), at=START - timedelta(hours=24))

    class MovesDuringTheCall(TwilioAccount):
        def request(self, method: str, uri: str, **kwargs: object) -> object:  # type: ignore[override]
            if method == "POST" and not self.creates:
                deliver(app, moved)  # another worker handles the reschedule meanwhile
                self.fail_next(503)
            return super().request(method, uri, **kwargs)  # type: ignore[arg-type]

    account = MovesDuringTheCall()
    use_senders(app, sms=twilio_sender(account))
    tick(app)
    old = by_step(app, booking_version=1)[("reminder-24h", "sms")]
    assert old.status == PLANNED  # back for a retry ...
    clock.shift(timedelta(minutes=1))
    tick(app)
    old = by_step(app, booking_version=1)[("reminder-24h", "sms")]
    assert old.status == "cancelled"  # ... which the re-check at send time stops
    assert old.reason == "the booking was moved (now version 2)"
    assert not [b for b in account.bodies_to(PHONE) if "tomorrow" in b]
