"""The local stand-in room: presence with a heartbeat, a participant limit, one place per identity."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from services.consult.local_video import PRESENCE_TTL, LocalVideo
from tests.consult.conftest import START, booking_event, booking_id_of, deliver, token_for


@pytest.fixture
def booked(app: Flask, redis_client: Any, clock: time_machine.Coordinates) -> uuid.UUID:
    payload = booking_event()
    deliver(app, payload)
    clock.move_to(START)
    return booking_id_of(payload)


def _grant(app: Flask, booking_id: uuid.UUID, participant: str = "patient") -> dict[str, Any]:
    response = app.test_client().post(
        f"/api/v1/join/{token_for(app, booking_id, participant=participant)}/access", json={}
    )
    assert response.status_code == 200, response.json
    return dict(response.json)


def _beat(client: FlaskClient, token: str) -> Any:
    return client.post("/api/v1/local-video/presence", json={"access_token": token})


def _present(response: Any) -> list[tuple[str, bool]]:
    return [(p["role"], p["you"]) for p in response.json["participants"]]


def test_both_participants_see_each_other(app: Flask, client: FlaskClient, booked: uuid.UUID) -> None:
    patient, provider = _grant(app, booked), _grant(app, booked, "provider")
    first = _beat(client, patient["access_token"])
    assert first.status_code == 200
    assert _present(first) == [("patient", True)]
    assert first.json["heartbeat_seconds"] == 5
    second = _beat(client, provider["access_token"])
    assert _present(second) == [("patient", False), ("provider", True)]
    assert second.json["room"] == provider["room_name"]


def test_a_silent_participant_leaves_after_the_presence_ttl(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    patient, provider = _grant(app, booked), _grant(app, booked, "provider")
    _beat(client, patient["access_token"])
    clock.shift(PRESENCE_TTL)
    assert _present(_beat(client, provider["access_token"])) == [("provider", True)]


def test_leaving_takes_effect_at_once(app: Flask, client: FlaskClient, booked: uuid.UUID) -> None:
    patient, provider = _grant(app, booked), _grant(app, booked, "provider")
    _beat(client, patient["access_token"])
    left = client.post("/api/v1/local-video/leave", json={"access_token": patient["access_token"]})
    assert left.status_code == 204
    assert _present(_beat(client, provider["access_token"])) == [("provider", True)]


def test_the_room_admits_at_most_its_limit(app: Flask, client: FlaskClient, booked: uuid.UUID) -> None:
    patient, provider = _grant(app, booked), _grant(app, booked, "provider")
    _beat(client, patient["access_token"])
    _beat(client, provider["access_token"])
    video = app.extensions["consult"].video
    assert isinstance(video, LocalVideo)
    intruder = video.access_token(room=patient["room_name"], identity="guest-1", ttl=timedelta(minutes=5))
    full = _beat(client, intruder)
    assert full.status_code == 409
    assert full.json["type"].endswith("/room-full")
    # The same identity again (a second tab) keeps its one place.
    assert _beat(client, patient["access_token"]).status_code == 200


def test_a_completed_room_admits_nobody(app: Flask, client: FlaskClient, booked: uuid.UUID) -> None:
    patient = _grant(app, booked)
    video = app.extensions["consult"].video
    room = video.fetch_room(patient["room_name"])
    video.complete_room(room.sid)
    gone = _beat(client, patient["access_token"])
    assert gone.status_code == 410
    assert gone.json["type"].endswith("/room-completed")


@pytest.mark.parametrize("kind", ["expired", "forged", "garbage"])
def test_bad_access_tokens_are_refused(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates, kind: str
) -> None:
    patient = _grant(app, booked)
    token = patient["access_token"]
    if kind == "expired":
        clock.shift(timedelta(hours=3))
    elif kind == "forged":
        token = LocalVideo(db=app.extensions["db"], secret="x" * 64).access_token(
            room=patient["room_name"], identity="patient-x", ttl=timedelta(minutes=5)
        )
    else:
        token = "garbage"
    refused = _beat(client, token)
    assert refused.status_code == 401


def test_shape_errors_name_the_field(app: Flask, client: FlaskClient, booked: uuid.UUID) -> None:
    response = client.post("/api/v1/local-video/presence", json={"token": "x"})
    assert response.status_code == 422
    names = {p["name"] for p in response.json["invalid_params"]}
    assert names == {"access_token", "token"}
