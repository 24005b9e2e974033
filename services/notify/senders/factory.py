"""Pick the senders the settings ask for."""

from __future__ import annotations

from services.notify.config import NotifyConfig
from services.notify.senders.base import EmailSender, Senders, SmsSender
from services.notify.senders.console import ConsoleEmailSender, ConsoleSmsSender
from services.notify.senders.smtp_email import SmtpEmailSender
from services.notify.senders.twilio_sms import TwilioSmsSender
from shared.db import Database


def build_senders(config: NotifyConfig, db: Database) -> Senders:
    """The SMS and email senders for ``config`` (console ones record into ``db``)."""
    sms: SmsSender
    email: EmailSender
    if config.sms_backend == "twilio":
        sms = TwilioSmsSender(
            account_sid=config.twilio_account_sid,
            auth_token=config.twilio_auth_token,
            messaging_service_sid=config.twilio_messaging_service_sid,
            from_number=config.twilio_from_number,
            api_base_url=config.twilio_api_base_url,
            timeout=config.twilio_timeout_seconds,
        )
    else:
        sms = ConsoleSmsSender(db)
    if config.email_backend == "smtp":
        email = SmtpEmailSender(
            host=config.smtp_host,
            port=config.smtp_port,
            username=config.smtp_username,
            password=config.smtp_password,
            security=config.smtp_security,
            timeout=config.smtp_timeout_seconds,
        )
    else:
        email = ConsoleEmailSender(db)
    return Senders(sms=sms, email=email)
