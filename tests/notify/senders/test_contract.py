"""The same contract for every sender implementation: Twilio (through Prism) and console for SMS, SMTP
(through a real aiosmtpd server) and console for email."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from services.notify.rendering import FileAttachment, RenderedEmail, compose_email, message_id_for
from services.notify.senders import EmailSender, Outcome, OutgoingSms, SmsSender
from services.notify.senders.console import ConsoleEmailSender, ConsoleSmsSender
from services.notify.senders.smtp_email import SmtpEmailSender
from services.notify.senders.twilio_sms import TwilioSmsSender
from shared.timeutil import utcnow
from tests.notify.conftest import outbox
from tests.notify.doubles import ACCOUNT_SID, MESSAGING_SERVICE_SID, MailServer, mail_server
from tests.support.twilio_mock import PrismServer

SMS = OutgoingSms(
    key="notify-1",
    to="+14155552671",
    body="Demo Clinic: your appointment is booked for Thu 5 Mar 2026, 3:00 PM GMT.\nReply STOP to opt out.",
    status_callback="https://notify.example.test/webhooks/twilio/status?m=1",
)


@dataclass
class SmsCase:
    sender: SmsSender
    # What the far side recorded, if the implementation lets us look (Prism does not keep anything).
    received: Callable[[], list[str]] | None


@pytest.fixture(params=["console", "twilio"])
def sms_case(request: pytest.FixtureRequest, app: Flask) -> Iterator[SmsCase]:
    if request.param == "console":
        yield SmsCase(ConsoleSmsSender(app.extensions["db"]), lambda: [m.text for m in outbox(app, "sms")])
        return
    prism: PrismServer = request.getfixturevalue("twilio_api_mock")
    sender = TwilioSmsSender(
        account_sid=ACCOUNT_SID,
        auth_token="test-auth-token-0123456789abcdef",
        messaging_service_sid=MESSAGING_SERVICE_SID,
        api_base_url=prism.url,
    )
    yield SmsCase(sender, None)
    sender.close()


def test_sms_is_accepted_with_a_reference(sms_case: SmsCase) -> None:
    result = sms_case.sender.send(SMS)
    assert result.outcome is Outcome.ACCEPTED, result
    assert result.provider_ref
    if sms_case.received is not None:
        assert sms_case.received() == [SMS.body]


def test_sms_lookup_never_invents_a_send(sms_case: SmsCase) -> None:
    never_sent = OutgoingSms(key="notify-999", to="+14155550000", body="a text nobody sent")
    lookup = sms_case.sender.find(never_sent, since=utcnow() - timedelta(minutes=1))
    assert lookup is not None
    assert not lookup.found


def test_console_sms_lookup_finds_what_it_recorded(app: Flask) -> None:
    sender = ConsoleSmsSender(app.extensions["db"])
    first = sender.send(SMS)
    again = sender.send(SMS)  # the same planned message twice stays one entry
    assert first.provider_ref == again.provider_ref
    found = sender.find(SMS, since=utcnow() - timedelta(minutes=1))
    assert found is not None
    assert found.found
    assert found.provider_ref == first.provider_ref
    assert len(outbox(app, "sms")) == 1


# --- email -----------------------------------------------------------------------------------------------


@dataclass
class EmailCase:
    sender: EmailSender
    received: Callable[[], list[dict[str, Any]]]


def _email(key: str = "notify-7", to: str = "alex@example.com") -> Any:
    rendered = RenderedEmail(
        subject="Your appointment on Thu 5 Mar 2026, 3:00 PM GMT is confirmed",
        text="Hello Alex,\n\nYour appointment is confirmed.\n",
        html="<p>Hello Alex,</p><p>Your appointment is <strong>confirmed</strong>.</p>",
        attachments=(FileAttachment("preparation-checklist.txt", "text/plain", b"[ ] Stay hydrated\n"),),
    )
    sender = "Demo Clinic <appointments@clinic.example>"
    return compose_email(sender=sender, to=to, rendered=rendered, message_id=message_id_for(key, sender))


@pytest.fixture(params=["console", "smtp-plain", "smtp-starttls", "smtp-ssl"])
def email_case(request: pytest.FixtureRequest, app: Flask, tmp_path: Path) -> Iterator[EmailCase]:
    if request.param == "console":
        yield EmailCase(
            ConsoleEmailSender(app.extensions["db"]),
            lambda: [
                {
                    "to": m.recipient,
                    "subject": m.subject,
                    "text": m.text,
                    "html": m.html,
                    "files": {a.filename: a.data for a in m.attachments},
                    "message_id": None,
                }
                for m in outbox(app, "email")
            ],
        )
        return
    security = {"plain": "none"}.get(request.param.removeprefix("smtp-"), request.param.removeprefix("smtp-"))
    # Over TLS with SendGrid's login (user ``apikey``); in plain text, like a local relay, without a login.
    username = "" if security == "none" else "apikey"
    with mail_server(tmp_path, security=security, username=username, password="SG.secret") as server:
        sender = _smtp_sender(server, security, username)
        yield EmailCase(sender, lambda: _parsed(server))
        sender.close()


def _smtp_sender(
    server: MailServer, security: str, username: str = "apikey", password: str = "SG.secret"
) -> SmtpEmailSender:
    return SmtpEmailSender(
        host=server.host,
        port=server.port,
        username=username,
        password=password,
        security=security,
        ssl_context=server.client_context,
        timeout=5,
    )


def _parsed(server: MailServer) -> list[dict[str, Any]]:
    out = []
    for message in server.handler.messages:
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        out.append(
            {
                "to": message["To"],
                "subject": message["Subject"],
                "text": text.get_content() if text else "",
                "html": html.get_content() if html else "",
                "files": {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()},
                "message_id": message["Message-ID"],
            }
        )
    return out


def test_email_arrives_with_text_html_and_attachments(email_case: EmailCase) -> None:
    message = _email()
    result = email_case.sender.send(message, key="notify-7")
    assert result.outcome is Outcome.ACCEPTED, result
    assert result.provider_ref
    (got,) = email_case.received()
    assert got["to"] == "alex@example.com"
    assert got["subject"] == "Your appointment on Thu 5 Mar 2026, 3:00 PM GMT is confirmed"
    assert "Your appointment is confirmed." in got["text"]
    assert "<strong>confirmed</strong>" in got["html"]
    assert got["files"] == {"preparation-checklist.txt": b"[ ] Stay hydrated\n"}
    if got["message_id"] is not None:
        assert got["message_id"] == "<notify-7@clinic.example>"


def test_email_sender_keeps_working_over_several_messages(email_case: EmailCase) -> None:
    for n in range(3):
        assert email_case.sender.send(_email(f"notify-{n}"), key=f"notify-{n}").outcome is Outcome.ACCEPTED
    assert len(email_case.received()) == 3


def test_email_lookup_is_honest(email_case: EmailCase) -> None:
    email_case.sender.send(_email(), key="notify-7")
    found = email_case.sender.find(key="notify-7", since=utcnow() - timedelta(minutes=1))
    missing = email_case.sender.find(key="notify-8", since=utcnow() - timedelta(minutes=1))
    if isinstance(email_case.sender, SmtpEmailSender):
        # SMTP cannot be asked afterwards; it says so instead of guessing.
        assert found is None
        assert missing is None
    else:
        assert found is not None
        assert found.found
        assert missing is not None
        assert not missing.found
