"""Settings the notify service refuses to start with."""

from __future__ import annotations

from typing import Any

import pytest

from services.notify.config import NotifyConfig
from shared.config import ConfigError, load

PRODUCTION = {
    "SUITE_ENV": "production",
    "LINK_SIGNING_KEYS": "a-production-link-signing-key-0123456789abcdef",
    "API_KEYS": "a-production-api-key",
}
REAL = {
    "NOTIFY_SMS_BACKEND": "twilio",
    "NOTIFY_EMAIL_BACKEND": "smtp",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
    "SMTP_HOST": "smtp.sendgrid.net",
    "SMTP_USERNAME": "apikey",
    "SMTP_PASSWORD": "SG.key",
}


def _check(environ: dict[str, str]) -> None:
    load(NotifyConfig, environ=environ).check()


def test_production_with_real_senders_is_fine() -> None:
    _check({**PRODUCTION, **REAL})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({**PRODUCTION}, "production sends for real"),
        ({**PRODUCTION, **REAL, "TWILIO_AUTH_TOKEN": ""}, "needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        (
            {"NOTIFY_SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"},
            "FROM_NUMBER",
        ),
        ({"NOTIFY_EMAIL_BACKEND": "smtp"}, "needs SMTP_HOST"),
        ({"NOTIFY_SMS_BACKEND": "carrier-pigeon"}, "NOTIFY_SMS_BACKEND must be one of"),
        ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY must be one of"),
        ({"NOTIFY_QUIET_HOURS": "9pm-8am"}, "NOTIFY_QUIET_HOURS: use HH:MM-HH:MM"),
        ({"NOTIFY_RETRY_BACKOFF_SECONDS": "30,-1"}, "NOTIFY_RETRY_BACKOFF_SECONDS"),
        ({"TWILIO_TIMEOUT_SECONDS": "0"}, "TWILIO_TIMEOUT_SECONDS must be positive"),
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
    config.check()
    assert config.quiet_hours is None
