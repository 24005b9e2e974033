"""Typed configuration: parsed once, production refuses development secrets, one table of variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.booking.config import BookingConfig
from services.checkins.config import CheckinsConfig
from services.consult.config import ConsultConfig
from services.notify.config import NotifyConfig
from shared.config import ConfigError, check, load, settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_values_are_parsed_from_the_environment() -> None:
    config = load(
        BookingConfig,
        environ={
            "API_KEYS": "a, b,,",
            "OUTBOX_POLL_SECONDS": "0.5",
            "BOOKING_DATABASE_URL": "sqlite:///x.db",
        },
    )
    assert config.api_keys == ("a", "b")
    assert config.outbox_poll_seconds == 0.5
    assert config.database_url == "sqlite:///x.db"


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match="OUTBOX_BATCH_SIZE"):
        load(BookingConfig, environ={"OUTBOX_BATCH_SIZE": "many"})
    with pytest.raises(ConfigError, match="SUITE_ENV must be one of development, production"):
        check(load(BookingConfig, environ={"SUITE_ENV": "staging"}))


def test_production_refuses_development_secrets() -> None:
    """The whole table of refused settings is tests/shared/test_production.py."""
    with pytest.raises(ConfigError) as caught:
        check(load(BookingConfig, environ={"SUITE_ENV": "production"}))
    assert "LINK_SIGNING_KEYS (item 1 of 1) is a development value" in str(caught.value)
    assert "API_KEYS (item 1 of 1) is a development value" in str(caught.value)


def test_readme_lists_every_variable() -> None:
    table = settings_table(BookingConfig, NotifyConfig, ConsultConfig, CheckinsConfig)
    readme = (ROOT / "README.md").read_text()
    assert table in readme, "README's configuration table is stale: paste shared.config.settings_table output"


def test_notify_and_consult_read_one_twilio_account() -> None:
    environ = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_TIMEOUT_SECONDS": "2.5"}
    notify, consult = load(NotifyConfig, environ=environ), load(ConsultConfig, environ=environ)
    assert (notify.twilio_account_sid, notify.twilio_timeout_seconds) == ("AC" + "1" * 32, 2.5)
    assert (consult.twilio_account_sid, consult.twilio_timeout_seconds) == ("AC" + "1" * 32, 2.5)
