"""Join links against the clock: too early, open, too late, cancelled, rescheduled; bad tokens refused."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.consult.local_video import local_secret
from services.consult.models import LocalVideoRoom, Room
from shared import events
from shared.config import DEV_LINK_KEY
from shared.db import get_db
from shared.links import JOIN, LinkSigner, join_token, manage_token
from tests.consult.conftest import (
    DURATION,
    START,
    booking_event,
    booking_id_of,
    deliver,
    signer_of,
    token_for,
)

END = START + DURATION
OPENS = START - timedelta(minutes=15)
CLOSES = END + timedelta(minutes=30)


@pytest.fixture
def booked(app: Flask, redis_client: Any, clock: time_machine.Coordinates) -> uuid.UUID:
    """A video booking 10:00-10:45 New York time (15:00 UTC), recorded by the consult service."""
    payload = booking_event()
    deliver(app, payload)
    return booking_id_of(payload)


def _rooms(app: Flask) -> tuple[int, int]:
    with app.app_context(), get_db().transaction() as session:
        ours = session.scalar(select(func.count()).select_from(Room)) or 0
        provider = session.scalar(select(func.count()).select_from(LocalVideoRoom)) or 0
        return int(ours), int(provider)


def _access(client: FlaskClient, token: str, **body: Any) -> Any:
    return client.post(f"/api/v1/join/{token}/access", json=body)


def _claims(token: str) -> dict[str, Any]:
    return dict(
        jwt.decode(token, local_secret(DEV_LINK_KEY), algorithms=["HS256"], options={"verify_exp": False})
    )


def test_too_early_says_when_to_come_back_in_each_participants_zone(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    patient = client.get(f"/join/{token_for(app, booked)}")
    assert patient.status_code == 200
    page = patient.get_data(as_text=True)
    assert "The room opens at <strong>Tue 3 Mar 2026, 2:45 PM GMT</strong>" in page  # Europe/London
    assert "Tue 3 Mar 2026, 3:00 PM GMT" in page
    assert "Europe/London" in page
    provider = client.get(f"/join/{token_for(app, booked, participant='provider')}").get_data(as_text=True)
    assert "Tue 3 Mar 2026, 6:45 AM PST" in provider  # America/Los_Angeles

    refused = _access(client, token_for(app, booked))
    assert refused.status_code == 409
    assert refused.json["type"].endswith("/too-early")
    assert refused.json["opens_at"] == OPENS.isoformat()
    assert "access_token" not in refused.json
    assert _rooms(app) == (0, 0)  # no room is opened before the window


def test_a_minute_before_the_window_is_still_too_early(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(OPENS - timedelta(seconds=1))
    assert _access(client, token_for(app, booked)).status_code == 409


def test_inside_the_window_the_room_opens_and_the_token_fits_the_window(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(OPENS)
    page = client.get(f"/join/{token_for(app, booked)}")
    assert page.status_code == 200
    assert "Join the consultation" in page.get_data(as_text=True)

    granted = _access(client, token_for(app, booked))
    assert granted.status_code == 200, granted.json
    body = granted.json
    assert body["provider"] == "local"
    assert body["participant"] == "patient"
    assert body["room_name"] == f"consult-{booked.hex}-v1"
    assert body["closes_at"] == CLOSES.isoformat()
    assert granted.headers["Cache-Control"] == "no-store"

    claims = _claims(body["access_token"])
    assert claims["grants"]["video"] == {"room": body["room_name"]}
    assert claims["grants"]["identity"] == body["identity"]
    assert body["identity"].startswith("patient-")
    assert "Jordan" not in body["identity"]
    # The token lives exactly as long as the window has left, no longer.
    assert claims["exp"] == int(CLOSES.timestamp())
    assert body["expires_at"] == CLOSES.isoformat()
    assert _rooms(app) == (1, 1)


def test_a_second_join_reuses_the_room(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(START)
    patient = _access(client, token_for(app, booked)).json
    provider = _access(client, token_for(app, booked, participant="provider")).json
    assert patient["room_name"] == provider["room_name"]
    assert provider["identity"].startswith("provider-")
    # Both identities carry the same booking-scoped key, nothing else.
    assert patient["identity"].split("-", 1)[1] == provider["identity"].split("-", 1)[1]
    assert _rooms(app) == (1, 1)


def test_near_the_close_the_token_is_short(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(CLOSES - timedelta(seconds=30))
    body = _access(client, token_for(app, booked)).json
    claims = _claims(body["access_token"])
    assert claims["exp"] - int((CLOSES - timedelta(seconds=30)).timestamp()) == 30


def test_after_the_window_the_consultation_has_ended(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(CLOSES)
    page = client.get(f"/join/{token_for(app, booked)}")
    assert page.status_code == 410
    assert "This consultation has ended" in page.get_data(as_text=True)
    refused = _access(client, token_for(app, booked))
    assert refused.status_code == 410
    assert refused.json["type"].endswith("/consultation-ended")
    assert _rooms(app) == (0, 0)


def test_after_the_tokens_own_expiry_it_has_ended_too(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    token = token_for(app, booked)
    clock.move_to(END + timedelta(hours=2, seconds=1))
    assert client.get(f"/join/{token}").status_code == 410
    assert _access(client, token).json["type"].endswith("/consultation-ended")


def test_a_cancelled_consultation_says_so(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event(events.BOOKING_CANCELLED, booking_id=booked, version=2))
    clock.move_to(START)
    page = client.get(f"/join/{token_for(app, booked)}")
    assert page.status_code == 410
    assert "This consultation was cancelled" in page.get_data(as_text=True)
    refused = _access(client, token_for(app, booked))
    assert refused.status_code == 410
    assert refused.json["type"].endswith("/consultation-cancelled")


def test_a_rescheduled_consultation_sends_people_to_their_new_link(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    later = START + timedelta(days=1)
    deliver(app, booking_event(events.BOOKING_RESCHEDULED, booking_id=booked, version=2, start=later))
    clock.move_to(START)  # the old time: its window would be open, but the link is replaced

    patient = client.get(f"/join/{token_for(app, booked)}")
    assert patient.status_code == 410
    text = patient.get_data(as_text=True)
    assert "moved to a new time" in text
    assert "by text message or email" in text
    # The old link never reveals the new one (a harvested link must not lead to the new room).
    new_token = token_for(app, booked, version=2, end=later + DURATION)
    assert new_token not in text
    assert "/access" not in text
    provider = client.get(f"/join/{token_for(app, booked, participant='provider')}").get_data(as_text=True)
    assert "updated calendar invitation" in provider
    assert _access(client, token_for(app, booked)).json["type"].endswith("/link-replaced")

    assert _access(client, new_token).json["type"].endswith("/too-early")
    clock.move_to(later)
    granted = _access(client, new_token)
    assert granted.status_code == 200
    assert granted.json["room_name"] == f"consult-{booked.hex}-v2"


def test_the_manage_page_link_leads_to_the_current_join_link_or_says_why_not(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    # The booking pages cannot mint join links (the secret is consult's): they link here with the manage token.
    signer = signer_of(app)
    clock.move_to(START)
    manage = manage_token(signer, booking_id=str(booked), version=1, ends_at=END)
    answer = client.get(f"/join/manage/{manage}")
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/join/{token_for(app, booked)}"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert _access(client, answer.headers["Location"].removeprefix("/join/")).status_code == 200

    # A booking the consult service has not heard of yet: the page says it is being prepared and retries.
    unknown = manage_token(signer, booking_id=str(uuid.uuid4()), version=1, ends_at=END)
    page = client.get(f"/join/manage/{unknown}")
    assert page.status_code == 200
    assert "still preparing this consultation" in page.get_data(as_text=True)
    # An older version's manage token, a join token in its place, a manage token of another key: refused.
    newer = manage_token(signer, booking_id=str(booked), version=2, ends_at=END)
    assert "still preparing" in client.get(f"/join/manage/{newer}").get_data(as_text=True)
    for bad in (
        token_for(app, booked),
        manage_token(
            LinkSigner(["another-clinics-signing-key-0123456789abcdef"]),
            booking_id=str(booked),
            version=1,
            ends_at=END,
        ),
    ):
        assert client.get(f"/join/manage/{bad}").status_code == 404


def test_a_link_made_from_ids_and_the_signing_key_opens_nothing(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    """Every field of a real link but the consultation's stored secret: the signing key leaked, or is the
    development one. The current version, a newer one, a booking not yet known: all refused as invalid."""
    clock.move_to(START)
    signer = signer_of(app)
    for booking_id, version in ((booked, 1), (booked, 2), (uuid.uuid4(), 1)):
        for extra in ({}, {"k": "guessed"}):
            forged = signer.sign(
                purpose=JOIN,
                subject=str(booking_id),
                version=version,
                expires_at=END + timedelta(hours=2),
                extra={"p": "patient", **extra},
            )
            assert client.get(f"/join/{forged}").status_code == 404
            refused = _access(client, forged)
            assert refused.status_code == 404
            assert refused.json["type"].endswith("/invalid-link")
    assert _rooms(app) == (0, 0)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda app, b: token_for(app, b)[:-2] + ("AA" if not token_for(app, b).endswith("AA") else "BB"),
            id="tampered-signature",
        ),
        pytest.param(
            lambda app, b: _swap_payload(token_for(app, b), token_for(app, uuid.uuid4())),
            id="spliced-payload",
        ),
        pytest.param(
            lambda app, b: join_token(
                LinkSigner(["another-clinics-signing-key-0123456789abcdef"]),
                booking_id=str(b),
                version=1,
                participant="patient",
                ends_at=END,
                secret="anything",
            ),
            id="foreign-key",
        ),
        pytest.param(
            lambda app, b: manage_token(signer_of(app), booking_id=str(b), version=1, ends_at=END),
            id="manage-token",
        ),
        pytest.param(lambda app, b: "not-a-token", id="garbage"),
    ],
)
def test_bad_tokens_are_refused_and_open_nothing(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates, forge: Any
) -> None:
    clock.move_to(START)
    token = forge(app, booked)
    page = client.get(f"/join/{token}")
    assert page.status_code == 404
    assert "This link is not valid" in page.get_data(as_text=True)
    refused = _access(client, token)
    assert refused.status_code == 404
    assert refused.json["type"].endswith("/invalid-link")
    assert _rooms(app) == (0, 0)


def _swap_payload(token: str, other: str) -> str:
    """Another booking's payload under this token's signature."""
    return other.split(".")[0] + "." + token.split(".")[1]


def test_another_bookings_link_opens_only_its_own_room(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    other_payload = booking_event()
    deliver(app, other_payload)
    other = booking_id_of(other_payload)
    clock.move_to(START)
    mine = _access(client, token_for(app, booked)).json
    theirs = _access(client, token_for(app, other)).json
    assert mine["room_name"] != theirs["room_name"]
    assert mine["identity"] != theirs["identity"]
    assert _claims(theirs["access_token"])["grants"]["video"]["room"] == f"consult-{other.hex}-v1"


def test_the_page_names_nobody_and_leaks_nothing(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    clock.move_to(START)
    response = client.get(f"/join/{token_for(app, booked)}")
    text = response.get_data(as_text=True)
    for private in ("Jordan", "Maya", "Demo Clinic", "jordan@example.com", "Video consultation</strong>"):
        assert private not in text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response.headers["X-Robots-Tag"]
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp


def test_opening_the_page_has_no_effect(
    app: Flask, client: FlaskClient, booked: uuid.UUID, clock: time_machine.Coordinates
) -> None:
    # Link scanners fetch every link in a message: only the Join button's POST opens a room.
    clock.move_to(START)
    for _ in range(3):
        assert client.get(f"/join/{token_for(app, booked)}").status_code == 200
    assert _rooms(app) == (0, 0)
