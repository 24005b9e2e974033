"""Settings the notify service refuses to start with."""

from __future__ import annotations

from typing import Any

import pytest

from services.notify.config import NotifyConfig
from shared.config import ConfigError, check, load

PRODUCTION = {
    "SUITE_ENV": "production",
    "LINK_SIGNING_KEYS": "Q3vX9kLm2Pz7RtY4wB8nD1cF6hJ0sG5a",
    "API_KEYS": "M7tK2qW9xL4pZ8rV1nB6cY3fH0jD5gSe",
    "BOOKING_PUBLIC_URL": "https://book.clinic.test",
    "NOTIFY_PUBLIC_URL": "https://notify.clinic.test",
    "CONSULT_PUBLIC_URL": "https://visit.clinic.test",
    "NOTIFY_DATABASE_URL": "postgresql+psycopg://notify:pw@db/notify",
}
REAL = {
    "NOTIFY_SMS_BACKEND": "twilio",
    "NOTIFY_EMAIL_BACKEND": "smtp",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "5f0c2e9a7b3d4c1e8f6a2b9d0c7e3a41",
    "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
    "SMTP_HOST": "smtp.sendgrid.net",
    "SMTP_USERNAME": "apikey",
    "SMTP_PASSWORD": "SG.k3Yq8Zp1Lw7Rx2Vn5Tb9",
}


def _check(environ: dict[str, str]) -> None:
    check(load(NotifyConfig, environ=environ))


def test_production_with_real_senders_is_fine() -> None:
    _check({**PRODUCTION, **REAL})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({**PRODUCTION}, "NOTIFY_SMS_BACKEND must not be console in production"),
        ({**PRODUCTION, **REAL, "TWILIO_AUTH_TOKEN": ""}, "needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        (
            {"NOTIFY_SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"},
            "FROM_NUMBER",
        ),
        ({"NOTIFY_EMAIL_BACKEND": "smtp"}, "needs SMTP_HOST"),
        ({"NOTIFY_SMS_BACKEND": "carrier-pigeon"}, "NOTIFY_SMS_BACKEND must be one of"),
        ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY must be one of"),
        ({"NOTIFY_QUIET_HOURS": "9pm-8am"}, "NOTIFY_QUIET_HOURS is not valid: use HH:MM-HH:MM"),
        ({"NOTIFY_RETRY_BACKOFF_SECONDS": "30,-1"}, "NOTIFY_RETRY_BACKOFF_SECONDS"),
        ({"TWILIO_TIMEOUT_SECONDS": "0"}, "TWILIO_TIMEOUT_SECONDS must be positive"),
        # A reply row is also the MessageSid record a retried webhook is matched against.
        ({"NOTIFY_REPLY_RETENTION_DAYS": "6"}, "NOTIFY_REPLY_RETENTION_DAYS must be at least 7"),
        # A join link may be sent again while its window is open, up to the 730-day booking horizon.
        ({"NOTIFY_INBOX_RETENTION_DAYS": "30"}, "NOTIFY_INBOX_RETENTION_DAYS must be at least 731"),
        # Defaults: batches of 50, 8 at a time, 15 s SMTP steps -> a 240 s job, one call 30 s more.
        ({"NOTIFY_SENDING_STALE_SECONDS": "270"}, "NOTIFY_SENDING_STALE_SECONDS must exceed 270"),
        ({"SMTP_TIMEOUT_SECONDS": "20"}, "NOTIFY_SENDING_STALE_SECONDS must exceed 350"),
    ],
)
def test_unworkable_settings_are_refused(environ: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _check(environ)


def test_quiet_hours_can_be_turned_off() -> None:
    config = load(NotifyConfig, environ={"NOTIFY_QUIET_HOURS": ""})
    check(config)
    assert config.quiet_hours is None
