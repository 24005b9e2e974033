"""Providers' errors name the recipient; what the real log handler writes while notify meets them does not."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from flask import Flask

from services.notify.models import FAILED
from services.notify.senders.smtp_email import SmtpEmailSender
from tests.notify.conftest import MONDAY_NOON, by_step, deliver, twilio_sender, use_senders, work
from tests.notify.doubles import TwilioAccount, mail_server
from tests.notify.factories import Booking

START = MONDAY_NOON + timedelta(days=3, hours=3)
NAME, EMAIL, PHONE = "Quill Marchetti", "reject-550@example.com", "+14155550199"


@pytest.fixture
def json_app(make_app: Callable[..., Flask]) -> Flask:
    """A notify app writing JSON lines, as in production."""
    return make_app(log_format="json")


@pytest.fixture
def written(json_app: Flask) -> Iterator[io.StringIO]:
    """What the app's own handler (the one its factory installed) writes during the test."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_suite_handler", False))
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    old = handler.setStream(stream)
    yield stream
    handler.setStream(old)


def _booking() -> Booking:
    return Booking(start=START, email=EMAIL, phone=PHONE, patient_name=NAME)


def _assert_clean(output: str) -> None:
    assert output, "nothing was logged"
    for secret in (NAME, EMAIL, PHONE, PHONE[2:]):
        assert secret not in output, secret


def test_an_smtp_refusal_naming_the_recipient(
    json_app: Flask, written: io.StringIO, clock: time_machine.Coordinates, tmp_path: Path
) -> None:
    with mail_server(tmp_path) as server:
        sender = SmtpEmailSender(host=server.host, port=server.port, security="none", timeout=5)
        use_senders(json_app, email=sender)
        deliver(json_app, _booking().confirmed(at=MONDAY_NOON))
        work(json_app)
        sender.close()
    row = by_step(json_app)[("confirmation", "email")]
    assert row.status == FAILED
    assert EMAIL in row.reason  # the staff API shows the relay's answer; the logs do not
    assert '"error_code": "smtp-550"' in written.getvalue()
    _assert_clean(written.getvalue())


def test_twilio_errors_and_a_failing_sender(
    json_app: Flask, written: io.StringIO, clock: time_machine.Coordinates
) -> None:
    account = TwilioAccount()
    account.fail_next(400, 21211, f"The 'To' number {PHONE} is not a valid phone number.")
    use_senders(json_app, sms=twilio_sender(account))
    deliver(json_app, _booking().confirmed(at=MONDAY_NOON))
    work(json_app)
    assert by_step(json_app)[("confirmation", "sms")].status == FAILED
    # A sender that breaks unexpectedly, its exception quoting the request.
    other = Booking(start=START, email="pat.other@example.com", phone=PHONE, patient_name=NAME)
    account.raise_next(RuntimeError(f"POST /Messages.json To={PHONE} Body=Hello {NAME}: connection reset"))
    deliver(json_app, other.confirmed(at=MONDAY_NOON))
    work(json_app)
    output = written.getvalue()
    assert '"message": "sender failed"' in output
    assert '"error": "RuntimeError"' in output
    _assert_clean(output)
