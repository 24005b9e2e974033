"""Rooms completed after the window by the sweeper (driven by the database), and the staff status API."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.consult import sweep
from services.consult.models import LocalVideoRoom, Room
from services.consult.twilio_video import TwilioVideo
from shared import events
from shared.db import get_db
from tests.consult.conftest import (
    STAFF,
    START,
    booking_event,
    booking_id_of,
    consult_config,
    deliver,
    token_for,
    twilio_overrides,
)
from tests.support.servers import wait_until

CLOSES = START + timedelta(minutes=45 + 30)


@pytest.fixture
def opened(app: Flask, redis_client: Any, clock: time_machine.Coordinates) -> uuid.UUID:
    """A video booking whose room was opened by the patient's join."""
    payload = booking_event()
    deliver(app, payload)
    booking_id = booking_id_of(payload)
    clock.move_to(START - timedelta(minutes=5))
    response = app.test_client().post(f"/api/v1/join/{token_for(app, booking_id)}/access", json={})
    assert response.status_code == 200
    return booking_id


def _statuses(app: Flask, booking_id: uuid.UUID) -> tuple[str, str]:
    with app.app_context(), get_db().transaction() as session:
        room = session.scalar(select(Room).where(Room.booking_id == booking_id))
        assert room is not None
        local = session.get(LocalVideoRoom, room.sid)
        assert local is not None
        return room.status, local.status


def _sweep(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["sweep", "--once"])
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_the_sweeper_leaves_a_room_alone_until_the_window_closes(
    app: Flask, opened: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(CLOSES - timedelta(seconds=1))
    assert '"rooms_completed": 0' in _sweep(app)
    assert _statuses(app, opened) == ("in-progress", "in-progress")


def test_after_the_window_the_room_is_completed_and_cannot_be_used_again(
    app: Flask, opened: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(CLOSES)
    assert '"rooms_completed": 1' in _sweep(app)
    assert _statuses(app, opened) == ("completed", "completed")
    assert '"rooms_completed": 0' in _sweep(app)  # nothing left to do


def test_staff_read_window_links_and_rooms(app: Flask, client: FlaskClient, opened: uuid.UUID) -> None:
    response = client.get(f"/api/v1/consultations/{opened}", headers=STAFF)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["booking_id"] == str(opened)
    assert body["version"] == 1
    assert body["status"] == "confirmed"
    assert body["window"] == {
        "opens_at": (START - timedelta(minutes=15)).isoformat(),
        "closes_at": CLOSES.isoformat(),
        "state": "open",
    }
    assert body["links"]["version"] == 1
    assert body["links"]["published"] is True
    (room,) = body["rooms"]
    assert room["status"] == "in-progress"
    assert room["unique_name"] == f"consult-{opened.hex}-v1"
    assert room["provider"] == "local"
    assert room["complete_after"] == CLOSES.isoformat()
    # Status, not credentials: no join link or access token in the staff view.
    assert "/join/" not in response.get_data(as_text=True)


def test_staff_see_the_rooms_of_every_version(
    app: Flask, client: FlaskClient, opened: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    deliver(
        app,
        booking_event(
            events.BOOKING_RESCHEDULED, booking_id=opened, version=2, start=START + timedelta(days=1)
        ),
    )
    body = client.get(f"/api/v1/consultations/{opened}", headers=STAFF).json
    assert body["version"] == 2
    assert body["window"]["state"] == "upcoming"
    assert [(r["version"], r["status"]) for r in body["rooms"]] == [(1, "completed")]


def test_staff_api_needs_a_key(app: Flask, client: FlaskClient, opened: uuid.UUID) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.get(f"/api/v1/consultations/{opened}", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"


def test_staff_api_404_for_unknown_or_in_person_bookings(
    app: Flask, client: FlaskClient, redis_client: Any, clock: time_machine.Coordinates
) -> None:
    in_person = booking_event(mode=events.IN_PERSON)
    deliver(app, in_person)
    for booking_id in (uuid.uuid4(), booking_id_of(in_person)):
        response = client.get(f"/api/v1/consultations/{booking_id}", headers=STAFF)
        assert response.status_code == 404
        assert "No video consultation" in response.json["detail"]
    assert client.get("/api/v1/consultations/not-a-uuid", headers=STAFF).status_code == 404


def test_the_api_is_documented(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    assert "/api/v1/join/{token}/access" in spec["paths"]
    assert "/api/v1/consultations/{booking_id}" in spec["paths"]
    assert "/api/v1/local-video/presence" in spec["paths"]


def test_join_links_command_prints_the_current_links(
    app: Flask, redis_client: Any, clock: time_machine.Coordinates
) -> None:
    payload = booking_event()
    deliver(app, payload)
    booking_id = booking_id_of(payload)
    result = app.test_cli_runner().invoke(args=["join-links", str(booking_id), "--open-now"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["version"] == 1
    assert printed["patient"] == f"http://consult.test/join/{token_for(app, booking_id)}"
    # --open-now opened the window from now, so the room can be tried at once (development only).
    assert printed["opens_at"] == "2026-03-03T12:00:00+00:00"
    granted = app.test_client().post(f"/api/v1/join/{token_for(app, booking_id)}/access", json={})
    assert granted.status_code == 200
    unknown = app.test_cli_runner().invoke(args=["join-links", str(uuid.uuid4())])
    assert unknown.exit_code != 0


def test_a_room_of_a_provider_no_longer_configured_is_closed_in_our_records(
    app: Flask, opened: uuid.UUID, clock: time_machine.Coordinates, twilio_video_mock: Any
) -> None:
    # The clinic switched from the local stand-in to Twilio: the local room cannot be reached any more.
    config = consult_config("sqlite://", "redis://127.0.0.1:1/0", **twilio_overrides(twilio_video_mock))
    app.extensions["consult"] = dataclasses.replace(
        app.extensions["consult"], video=TwilioVideo.from_config(config)
    )
    clock.move_to(CLOSES)
    assert '"rooms_completed": 1' in _sweep(app)
    assert _statuses(app, opened) == ("completed", "in-progress")  # ours closed; the stand-in's untouched


def test_the_sweeper_process_completes_due_rooms_and_stops_when_asked(
    app: Flask, opened: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(CLOSES)
    stop = threading.Event()
    sweeper = threading.Thread(
        target=sweep.run_sweeper,
        kwargs={
            "db": app.extensions["db"],
            "redis": app.extensions["redis"],
            "video": app.extensions["consult"].video,
            "signer": app.extensions["link_signer"],
            "base_url": "http://consult.test",
            "interval": 0.05,
            "inbox_retention_days": 800,
            "visit_retention_days": 90,
            "stop": stop,
        },
    )
    sweeper.start()
    try:
        wait_until(lambda: _statuses(app, opened) == ("completed", "completed"), timeout=10, what="sweep")
    finally:
        stop.set()
        sweeper.join(timeout=10)
    assert not sweeper.is_alive()
