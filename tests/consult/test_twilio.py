"""The join flow on Twilio Video: against Prism, and through an HttpClient double for the answers Prism cannot
give (room exists, rate limits, outages, rooms Twilio closed by itself)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
import requests
import time_machine
from flask import Flask
from sqlalchemy import select

from services.consult import rooms
from services.consult.models import Room
from services.consult.twilio_video import TwilioVideo
from services.consult.video import VideoError, VideoUnavailable
from shared.db import get_db
from tests.consult.conftest import (
    START,
    TWILIO_ACCOUNT,
    TWILIO_KEY,
    TWILIO_SECRET,
    booking_event,
    booking_id_of,
    deliver,
    token_for,
)
from tests.consult.twilio_doubles import ScriptedHttpClient, room_body
from tests.support.twilio_mock import answer, twilio_error

CLOSES = START + timedelta(minutes=45 + 30)


@pytest.fixture
def booked(twilio_app: Flask, redis_client: Any, clock: time_machine.Coordinates) -> uuid.UUID:
    payload = booking_event()
    deliver(twilio_app, payload)
    clock.move_to(START)
    return booking_id_of(payload)


def _video(app: Flask) -> TwilioVideo:
    video = app.extensions["consult"].video
    assert isinstance(video, TwilioVideo)
    return video


def _script(app: Flask, *answers: Any) -> ScriptedHttpClient:
    double = ScriptedHttpClient(*answers)
    _video(app).client.http_client = double
    return double


def _access(app: Flask, booking_id: uuid.UUID, participant: str = "patient", **body: Any) -> Any:
    token = token_for(app, booking_id, participant=participant)
    return app.test_client().post(f"/api/v1/join/{token}/access", json=body)


def _room(app: Flask, booking_id: uuid.UUID) -> Room | None:
    with app.app_context(), get_db().transaction() as session:
        return session.scalar(select(Room).where(Room.booking_id == booking_id))


def test_join_opens_a_twilio_room_and_signs_a_token_with_the_api_key(
    twilio_app: Flask, booked: uuid.UUID
) -> None:
    granted = _access(twilio_app, booked)
    assert granted.status_code == 200, granted.json
    body = granted.json
    assert body["provider"] == "twilio"
    room = _room(twilio_app, booked)
    assert room is not None
    assert room.sid == "RMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"  # Prism's example answer
    assert room.provider == "twilio"
    assert room.complete_after == CLOSES

    claims = jwt.decode(
        body["access_token"], TWILIO_SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims["iss"] == TWILIO_KEY
    assert claims["sub"] == TWILIO_ACCOUNT
    assert claims["grants"] == {"identity": body["identity"], "video": {"room": f"consult-{booked.hex}-v1"}}
    assert claims["exp"] == int(CLOSES.timestamp())


def test_with_the_room_open_a_join_makes_no_twilio_call(twilio_app: Flask, booked: uuid.UUID) -> None:
    assert _access(twilio_app, booked).status_code == 200
    silent = _script(twilio_app)  # any request now fails the test
    provider = _access(twilio_app, booked, participant="provider")
    assert provider.status_code == 200
    assert silent.sent == []


@pytest.mark.parametrize(
    "exists",
    [
        pytest.param(twilio_error(400, 53113, "Room exists"), id="classic-error"),
        pytest.param(
            answer(
                400,
                {
                    "type": "https://www.twilio.com/docs/errors/53113",
                    "title": "Room exists",
                    "status": 400,
                    "code": 53113,
                },
            ),
            id="rfc9457-error",
        ),
    ],
)
def test_twilios_room_exists_answer_finds_the_room(twilio_app: Flask, booked: uuid.UUID, exists: Any) -> None:
    existing = "RM" + "e" * 32
    double = _script(twilio_app, exists, answer(200, room_body(existing)))
    granted = _access(twilio_app, booked)
    assert granted.status_code == 200, granted.json
    room = _room(twilio_app, booked)
    assert room is not None
    assert room.sid == existing
    create, fetch = double.sent
    assert (create.method, create.url) == ("POST", f"{_video(twilio_app).client.video.base_url}/v1/Rooms")
    assert create.auth == (TWILIO_KEY, TWILIO_SECRET)  # the API key, not the account's auth token
    assert (fetch.method, fetch.url.rsplit("/", 1)[1]) == ("GET", f"consult-{booked.hex}-v1")


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(twilio_error(429, 20429, "Too Many Requests"), id="429"),
        pytest.param(twilio_error(500, 20500, "Internal Server Error"), id="500"),
        pytest.param(twilio_error(503, 20503, "Service Unavailable"), id="503"),
        pytest.param(requests.ConnectionError("connection refused"), id="unreachable"),
        pytest.param(requests.Timeout("read timed out"), id="timeout"),
        pytest.param(twilio_error(400, 53101, "Room name is invalid"), id="refused"),
    ],
)
def test_when_twilio_fails_the_join_says_try_again_and_nothing_is_recorded(
    twilio_app: Flask, booked: uuid.UUID, failure: Any
) -> None:
    _script(twilio_app, failure)
    refused = _access(twilio_app, booked)
    assert refused.status_code == 503
    assert refused.json["type"].endswith("/video-unavailable")
    assert refused.headers["Retry-After"] == "5"
    assert "access_token" not in refused.json
    assert _room(twilio_app, booked) is None

    _script(twilio_app, answer(201, room_body("RM" + "f" * 32)))
    assert _access(twilio_app, booked).status_code == 200


def test_a_room_twilio_closed_is_reopened_when_the_page_asks(
    twilio_app: Flask, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    assert _access(twilio_app, booked).status_code == 200
    first = _room(twilio_app, booked)
    assert first is not None

    # Straight after, a re-check is throttled: no call.
    silent = _script(twilio_app)
    assert _access(twilio_app, booked, refresh=True).status_code == 200
    assert silent.sent == []

    clock.shift(rooms.RECHECK_AFTER)
    reopened = "RM" + "b" * 32
    double = _script(
        twilio_app, answer(200, room_body(first.sid, status="completed")), answer(201, room_body(reopened))
    )
    granted = _access(twilio_app, booked, refresh=True)
    assert granted.status_code == 200
    assert [s.method for s in double.sent] == ["GET", "POST"]
    room = _room(twilio_app, booked)
    assert room is not None
    assert room.sid == reopened
    assert room.status == "in-progress"
    assert granted.json["room_name"] == f"consult-{booked.hex}-v1"


def test_a_refresh_of_a_room_still_open_keeps_it(
    twilio_app: Flask, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    assert _access(twilio_app, booked).status_code == 200
    sid = _room(twilio_app, booked).sid  # type: ignore[union-attr]
    clock.shift(timedelta(minutes=1))
    double = _script(twilio_app, answer(200, room_body(sid)))
    assert _access(twilio_app, booked, refresh=True).status_code == 200
    assert [s.method for s in double.sent] == ["GET"]
    assert _room(twilio_app, booked).sid == sid  # type: ignore[union-attr]


# --- completing rooms ----------------------------------------------------------------------------------


def _provider(*answers: Any) -> tuple[TwilioVideo, ScriptedHttpClient]:
    from tests.consult.conftest import consult_config

    double = ScriptedHttpClient(*answers)
    config = consult_config(
        "sqlite://",
        "redis://127.0.0.1:1/0",
        video_provider="twilio",
        twilio_account_sid=TWILIO_ACCOUNT,
        twilio_api_key_sid=TWILIO_KEY,
        twilio_api_key_secret=TWILIO_SECRET,
    )
    return TwilioVideo.from_config(config, http_client=double), double


def test_completing_sends_status_completed() -> None:
    sid = "RM" + "c" * 32
    video, double = _provider(answer(202, room_body(sid, status="completed")))
    done = video.complete_room(sid)
    assert done is not None
    assert done.status == "completed"
    (sent,) = double.sent
    assert (sent.method, sent.url.rsplit("/", 1)[1], sent.data) == ("POST", sid, {"Status": "completed"})


def test_completing_a_room_that_already_ended_is_fine() -> None:
    sid = "RM" + "c" * 32
    video, _ = _provider(
        twilio_error(400, 53112, "Room is not in progress"), answer(200, room_body(sid, "completed"))
    )
    done = video.complete_room(sid)
    assert done is not None
    assert not done.open


def test_completing_a_room_twilio_does_not_know_is_fine() -> None:
    video, _ = _provider(twilio_error(404, 20404, "Not found"), twilio_error(404, 20404, "Not found"))
    assert video.complete_room("RM" + "d" * 32) is None


def test_completing_during_an_outage_is_retried_later() -> None:
    video, _ = _provider(twilio_error(503, 20503, "Service Unavailable"))
    with pytest.raises(VideoUnavailable):
        video.complete_room("RM" + "d" * 32)


def test_a_refusal_for_a_room_still_open_is_an_error() -> None:
    sid = "RM" + "d" * 32
    video, _ = _provider(twilio_error(400, 53112, "Status is invalid"), answer(200, room_body(sid)))
    with pytest.raises(VideoError):
        video.complete_room(sid)


def test_the_sweeper_retries_a_room_twilio_could_not_complete(
    twilio_app: Flask, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    assert _access(twilio_app, booked).status_code == 200
    clock.move_to(CLOSES)
    _script(twilio_app, twilio_error(503, 20503, "Service Unavailable"))
    runner = twilio_app.test_cli_runner()
    first = runner.invoke(args=["sweep", "--once"])
    assert first.exit_code == 0, first.output
    assert '"rooms_completed": 0' in first.output
    assert _room(twilio_app, booked).status == "in-progress"  # type: ignore[union-attr]

    double = _script(twilio_app, answer(202, room_body("RMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "completed")))
    second = runner.invoke(args=["sweep", "--once"])
    assert '"rooms_completed": 1' in second.output
    room = _room(twilio_app, booked)
    assert room is not None
    assert room.status == "completed"
    assert room.completed_at == CLOSES
    assert [s.data for s in double.sent] == [{"Status": "completed"}]
