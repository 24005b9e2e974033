"""Twilio's webhooks: signatures, STOP/START/HELP, and delivery status callbacks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

from services.notify.models import SENDING, SENT, SKIPPED, OptOut
from tests.notify.conftest import AUTH_TOKEN, MONDAY_NOON, by_step, deliver, outbox, tick, work
from tests.notify.factories import Booking

PUBLIC = "https://notify.example.test"
PHONE = "+14155552671"
START = MONDAY_NOON + timedelta(days=3, hours=3)


def signed_post(client: FlaskClient, path: str, form: dict[str, str], *, token: str = AUTH_TOKEN) -> Any:
    """POST ``form`` to ``path`` signed the way Twilio signs it (public URL, form parameters).

    An inbound message gets a new MessageSid unless ``form`` names one, as every message Twilio receives does.
    """
    if path.startswith("/webhooks/twilio/inbound") and "MessageSid" not in form:
        form = {**form, "MessageSid": f"SM{uuid.uuid4().hex}"}
    signature = RequestValidator(token).compute_signature(PUBLIC + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def opt_out(app: Flask, phone: str = PHONE) -> OptOut | None:
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        return session.get(OptOut, phone)


@pytest.mark.parametrize("path", ["/webhooks/twilio/inbound", "/webhooks/twilio/status?m=1"])
@pytest.mark.parametrize(
    "sign",
    [
        lambda path, form: {},  # no signature at all
        lambda path, form: {
            "X-Twilio-Signature": RequestValidator("wrong-token").compute_signature(PUBLIC + path, form)
        },
        lambda path, form: {
            "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(
                "https://evil.test" + path, form
            )
        },
        lambda path, form: {
            "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(
                PUBLIC + path, {**form, "Body": "x"}
            )
        },
    ],
    ids=["missing", "wrong-token", "wrong-url", "tampered-body"],
)
def test_a_bad_signature_is_refused_and_changes_nothing(
    app: Flask, client: FlaskClient, path: str, sign: Callable[[str, dict[str, str]], dict[str, str]]
) -> None:
    form = {"From": PHONE, "Body": "STOP", "MessageSid": "SM1", "MessageStatus": "delivered"}
    response = client.post(path, data=form, headers=sign(path, form))
    assert response.status_code == 403
    assert response.json["type"].endswith("/bad-signature")
    assert opt_out(app) is None


@pytest.mark.parametrize(
    "body", ["STOP", "stop", " Stop. ", "UNSUBSCRIBE", "cancel", "End", "quit", "STOPALL"]
)
def test_stop_keywords_opt_out(app: Flask, client: FlaskClient, body: str) -> None:
    response = signed_post(client, "/webhooks/twilio/inbound", {"From": PHONE, "Body": body})
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert response.text.strip().endswith("<Response />")
    found = opt_out(app)
    assert found is not None
    assert found.opted_out
    assert found.source == "inbound-stop"


def test_start_opts_back_in_and_other_texts_change_nothing(app: Flask, client: FlaskClient) -> None:
    signed_post(client, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "STOP"})
    signed_post(client, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "Can I come at 4 instead?"})
    assert opt_out(app).opted_out  # type: ignore[union-attr]
    signed_post(client, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "start"})
    assert not opt_out(app).opted_out  # type: ignore[union-attr]
    # Twilio's Advanced Opt-Out names the keyword itself, whatever word the patient used.
    signed_post(client, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "ARRET", "OptOutType": "STOP"})
    assert opt_out(app).opted_out  # type: ignore[union-attr]


def test_help_is_answered_only_when_configured(make_app: Callable[..., Flask]) -> None:
    quiet = make_app().test_client()
    assert (
        "<Message>"
        not in signed_post(quiet, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "HELP"}).text
    )
    helpful = make_app(sms_help_reply="Demo Clinic reminders. Call +17185550100. Reply STOP to opt out.")
    answer = signed_post(helpful.test_client(), "/webhooks/twilio/inbound", {"From": PHONE, "Body": "help"})
    assert (
        "<Message>Demo Clinic reminders. Call +17185550100. Reply STOP to opt out.</Message>" in answer.text
    )


def test_inbound_without_sender_is_a_422(client: FlaskClient) -> None:
    response = signed_post(client, "/webhooks/twilio/inbound", {"Body": "STOP"})
    assert response.status_code == 422
    assert response.json["invalid_params"][0]["name"] == "From"


def test_opted_out_number_gets_no_sms_but_still_email(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    signed_post(client, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "STOP"})
    clock.move_to(START - timedelta(hours=24))
    tick(app)
    plan = by_step(app)
    assert plan[("reminder-24h", "sms")].status == SKIPPED
    assert plan[("reminder-24h", "email")].status == SENT
    signed_post(client, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "START"})
    deliver(app, Booking(start=START + timedelta(days=1)).confirmed(at=START - timedelta(hours=24)))
    work(app)
    assert len(outbox(app, "sms")) == 2  # the first confirmation, and the new one after START


def _status(client: FlaskClient, message_id: int, sid: str, status: str, **extra: str) -> Any:
    form = {"MessageSid": sid, "MessageStatus": status, "To": PHONE, "AccountSid": "AC" + "0" * 32, **extra}
    return signed_post(client, f"/webhooks/twilio/status?m={message_id}", form)


def test_status_callbacks_update_the_message_and_never_go_backwards(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    sid = row.provider_ref
    assert sid is not None
    assert _status(client, row.id, sid, "sent").status_code == 204
    assert _status(client, row.id, sid, "delivered").status_code == 204
    assert _status(client, row.id, sid, "sent").status_code == 204  # late and out of order
    row = by_step(app)[("confirmation", "sms")]
    assert row.delivery_status == "delivered"
    assert row.status == SENT


def test_failed_delivery_is_recorded_and_21610_opts_out(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    _status(client, row.id, row.provider_ref or "", "undelivered", ErrorCode="30003")
    assert by_step(app)[("confirmation", "sms")].error_code == "30003"
    assert by_step(app)[("confirmation", "sms")].delivery_status == "undelivered"
    _status(client, row.id, row.provider_ref or "", "failed", ErrorCode="21610")
    assert opt_out(app).opted_out  # type: ignore[union-attr]


def test_a_status_callback_settles_a_send_whose_worker_died(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, no_send_at_once: None
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        from services.notify.models import Message

        row = session.get(Message, by_step(app)[("confirmation", "sms")].id)
        assert row is not None
        row.status, row.sending_started_at, row.recipient = SENDING, MONDAY_NOON, PHONE
    _status(client, row.id, "SM" + "f" * 32, "queued")
    settled = by_step(app)[("confirmation", "sms")]
    assert settled.status == SENT
    assert settled.provider_ref == "SM" + "f" * 32
    assert "status callback" in settled.reason


def test_callback_for_an_unknown_or_mismatched_message_changes_nothing(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    row = by_step(app)[("confirmation", "sms")]
    assert _status(client, 999999, "SM" + "1" * 32, "delivered").status_code == 204
    assert _status(client, row.id, "SM" + "2" * 32, "failed").status_code == 204  # another message's SID
    assert by_step(app)[("confirmation", "sms")].delivery_status == row.delivery_status


def test_a_status_that_lower_cases_longer_is_kept_cut_to_its_column(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, no_send_at_once: None
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        from services.notify.models import Message

        row = session.get(Message, by_step(app)[("confirmation", "sms")].id)
        assert row is not None
        row.status, row.sending_started_at, row.recipient = SENDING, MONDAY_NOON, PHONE
    # "İ" lower-cases to two characters: cut after lower-casing, so the column still holds it (PostgreSQL
    # refused the 64 characters with a 500).
    assert _status(client, row.id, "SM" + "f" * 32, "İ" * 32).status_code == 204
    assert by_step(app)[("confirmation", "sms")].delivery_status == ("İ" * 32).lower()[:32]


def test_a_callback_naming_an_email_changes_nothing(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    email = by_step(app)[("confirmation", "email")]
    response = _status(client, email.id, email.provider_ref or "SM1", "failed", ErrorCode="21610")
    assert response.status_code == 204
    after = by_step(app)[("confirmation", "email")]
    assert (after.delivery_status, after.error_code, after.provider_ref) == (
        email.delivery_status,
        email.error_code,
        email.provider_ref,
    )
    assert opt_out(app, email.recipient or "") is None  # an email address is no phone to opt out
