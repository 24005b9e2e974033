"""One contract for both video providers: Twilio Video (on Prism) and the local stand-in (both databases)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import time_machine

from services.consult.config import ConsultConfig
from services.consult.local_video import ACCOUNT_SID, KEY_SID, LocalVideo, local_secret
from services.consult.twilio_video import TwilioVideo
from services.consult.video import RoomSpec, VideoProvider
from shared.config import DEV_LINK_KEY
from shared.db import Database
from tests.consult.conftest import TWILIO_ACCOUNT, TWILIO_KEY, TWILIO_SECRET, consult_config, twilio_overrides
from tests.consult.twilio_doubles import RoomRegistryClient
from tests.support.twilio_mock import PrismServer


@dataclass
class Contract:
    video: VideoProvider
    secret: str
    account_sid: str
    key_sid: str
    sent: Callable[[], list[dict[str, object]]]


@pytest.fixture(
    params=["local-sqlite", pytest.param("local-postgresql", marks=pytest.mark.postgres), "twilio"]
)
def contract(
    request: pytest.FixtureRequest, make_database_url: Callable[[str, str], str]
) -> Iterator[Contract]:
    if request.param == "twilio":
        prism: PrismServer = request.getfixturevalue("twilio_video_mock")
        config: ConsultConfig = consult_config(
            "sqlite://", "redis://127.0.0.1:1/0", **twilio_overrides(prism)
        )
        http = RoomRegistryClient()
        yield Contract(
            TwilioVideo.from_config(config, http_client=http),
            TWILIO_SECRET,
            TWILIO_ACCOUNT,
            TWILIO_KEY,
            lambda: [dict(s.data) for s in http.sent if s.method == "POST" and s.url.endswith("/v1/Rooms")],
        )
        return
    db = Database(make_database_url("consult", request.param.removeprefix("local-")))
    secret = local_secret(DEV_LINK_KEY)
    yield Contract(LocalVideo(db=db, secret=secret), secret, ACCOUNT_SID, KEY_SID, lambda: [])
    db.dispose()


def _spec() -> RoomSpec:
    return RoomSpec(
        unique_name=f"consult-{uuid.uuid4().hex}-v1",
        max_participants=2,
        empty_room_timeout=10,
        unused_room_timeout=10,
    )


def test_create_room_is_a_group_room_in_progress(contract: Contract) -> None:
    spec = _spec()
    room = contract.video.create_room(spec)
    assert room.sid.startswith("RM")
    assert room.status == "in-progress"
    assert room.open
    if contract.video.name == "twilio":
        # What reached Twilio (and passed Prism's request validation).
        (sent,) = contract.sent()
        assert sent["Type"] == "group"
        assert sent["UniqueName"] == spec.unique_name
        assert sent["MaxParticipants"] == 2
        assert sent["EmptyRoomTimeout"] == 10
        assert sent["UnusedRoomTimeout"] == 10
        assert sent["RecordParticipantsOnConnect"] == "false"


def test_creating_the_same_room_twice_finds_the_first(contract: Contract) -> None:
    spec = _spec()
    first = contract.video.create_room(spec)
    second = contract.video.create_room(spec)
    assert second.sid == first.sid
    assert second.open


def test_fetch_finds_the_room_by_sid(contract: Contract) -> None:
    room = contract.video.create_room(_spec())
    fetched = contract.video.fetch_room(room.sid)
    assert fetched is not None
    assert fetched.sid == room.sid
    assert fetched.open


def test_complete_room_ends_it(contract: Contract) -> None:
    room = contract.video.create_room(_spec())
    completed = contract.video.complete_room(room.sid)
    assert completed is not None
    assert completed.status == "completed"
    assert not completed.open


def test_access_token_grants_one_room_to_one_identity_for_a_bounded_time(contract: Contract) -> None:
    moment = datetime(2026, 3, 3, 14, 50, tzinfo=UTC)
    with time_machine.travel(moment, tick=False):
        token = contract.video.access_token(
            room="consult-abc-v1", identity="patient-0123abcd", ttl=timedelta(minutes=85, seconds=30)
        )
    header = jwt.get_unverified_header(token)
    assert header["cty"] == "twilio-fpa;v=1"
    claims = jwt.decode(
        token, contract.secret, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims["grants"] == {"identity": "patient-0123abcd", "video": {"room": "consult-abc-v1"}}
    assert claims["iss"] == contract.key_sid
    assert claims["sub"] == contract.account_sid
    assert claims["exp"] == int(moment.timestamp()) + 85 * 60 + 30
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-of-thirty-two-bytes!!", algorithms=["HS256"])


def test_access_token_lifetime_is_capped_at_twilios_limit(contract: Contract) -> None:
    token = contract.video.access_token(room="r", identity="provider-1", ttl=timedelta(days=3))
    claims = jwt.decode(token, contract.secret, algorithms=["HS256"])
    assert claims["exp"] - claims["nbf"] == 24 * 3600
