"""Consult settings: a window the join tokens can honour, and no stand-in video in production."""

from __future__ import annotations

import pytest

from services.consult.config import ConsultConfig
from shared.config import ConfigError, check, load
from shared.links import JOIN_LINK_GRACE

TWILIO_ENV = {
    "VIDEO_PROVIDER": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_API_KEY_SID": "SK" + "2" * 32,
    "TWILIO_API_KEY_SECRET": "r8Kq2Vx7Lm4Np9Zt1Wb6Yc3Hf0Jd5GsA",
}
PRODUCTION = {
    "SUITE_ENV": "production",
    "LINK_SIGNING_KEYS": "Q3vX9kLm2Pz7RtY4wB8nD1cF6hJ0sG5a",
    "API_KEYS": "M7tK2qW9xL4pZ8rV1nB6cY3fH0jD5gSe",
    "BOOKING_PUBLIC_URL": "https://book.clinic.test",
    "NOTIFY_PUBLIC_URL": "https://notify.clinic.test",
    "CONSULT_PUBLIC_URL": "https://visit.clinic.test",
    "CONSULT_DATABASE_URL": "postgresql+psycopg://consult:pw@db/consult",
}


def test_defaults_are_the_documented_window() -> None:
    config = load(ConsultConfig, environ={})
    assert (config.join_opens_minutes, config.join_closes_minutes) == (15, 30)
    assert config.video_provider == "local"
    assert config.room_max_participants == 2


def test_the_window_is_read_from_the_environment() -> None:
    config = load(
        ConsultConfig, environ={"CONSULT_JOIN_OPENS_MINUTES": "10", "CONSULT_JOIN_CLOSES_MINUTES": "60"}
    )
    assert (config.join_opens_minutes, config.join_closes_minutes) == (10, 60)


def test_a_close_up_to_the_token_grace_is_accepted() -> None:
    grace = int(JOIN_LINK_GRACE.total_seconds() // 60)
    assert (
        load(ConsultConfig, environ={"CONSULT_JOIN_CLOSES_MINUTES": str(grace)}).join_closes_minutes == grace
    )


def test_a_close_beyond_the_token_grace_is_refused() -> None:
    grace = int(JOIN_LINK_GRACE.total_seconds() // 60)
    with pytest.raises(ConfigError, match="CONSULT_JOIN_CLOSES_MINUTES must be between 0 and 120"):
        check(load(ConsultConfig, environ={"CONSULT_JOIN_CLOSES_MINUTES": str(grace + 1)}))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CONSULT_JOIN_OPENS_MINUTES": "-5"}, "CONSULT_JOIN_OPENS_MINUTES"),
        ({"CONSULT_JOIN_OPENS_MINUTES": "soon"}, "CONSULT_JOIN_OPENS_MINUTES"),
        ({"VIDEO_ROOM_MAX_PARTICIPANTS": "1"}, "VIDEO_ROOM_MAX_PARTICIPANTS"),
        ({"VIDEO_ROOM_EMPTY_TIMEOUT_MINUTES": "61"}, "VIDEO_ROOM_EMPTY_TIMEOUT_MINUTES"),
        ({"VIDEO_ROOM_UNUSED_TIMEOUT_MINUTES": "0"}, "VIDEO_ROOM_UNUSED_TIMEOUT_MINUTES"),
        ({"CONSULT_SWEEP_SECONDS": "0"}, "CONSULT_SWEEP_SECONDS"),
        ({"VIDEO_PROVIDER": "zoom"}, "VIDEO_PROVIDER"),
        ({"VIDEO_PROVIDER": "twilio"}, "TWILIO_ACCOUNT_SID"),
        ({**TWILIO_ENV, "TWILIO_API_KEY_SECRET": "short"}, "TWILIO_API_KEY_SECRET"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check(load(ConsultConfig, environ=env))


def test_production_refuses_the_local_stand_in() -> None:
    with pytest.raises(ConfigError, match="VIDEO_PROVIDER must be twilio in production"):
        check(load(ConsultConfig, environ=PRODUCTION))


def test_production_runs_with_twilio() -> None:
    config = load(ConsultConfig, environ={**PRODUCTION, **TWILIO_ENV})
    check(config)
    assert config.is_production
    assert config.video_provider == "twilio"
