"""Twilio callbacks and the outbox page with inputs that once answered 500: a 4xx naming the field, or a value
cut to its column, and never a 500 (Twilio retries those without end)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.notify.models import Base, Message, OptOut
from tests.notify.conftest import MONDAY_NOON, STAFF, deliver, messages
from tests.notify.factories import Booking
from tests.notify.test_webhooks import PHONE, signed_post

LONG = "9" * 5000
HUGE = "99999999999999999999"


def _rows(app: Flask) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, to show a refused request changed nothing."""
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        return {
            table.name: sorted(map(tuple, session.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def message(app: Flask, clock: object, no_send_at_once: None) -> Message:
    deliver(app, Booking(start=MONDAY_NOON + timedelta(days=3)).confirmed(at=MONDAY_NOON))
    return messages(app)[0]


@pytest.mark.parametrize("m", ["²", "٣", HUGE, "-1", "0", "1e3", ""])
def test_a_status_callback_for_no_message_id_is_refused(
    app: Flask, client: FlaskClient, message: Message, m: str
) -> None:
    before = _rows(app)
    path = f"/webhooks/twilio/status?m={m}"
    response = signed_post(client, path, {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["invalid_params"] == [{"name": "m", "in": "query", "reason": "not a message id"}]
    assert _rows(app) == before


def test_over_long_status_values_are_kept_cut_to_their_columns(
    app: Flask, client: FlaskClient, message: Message
) -> None:
    form = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "x" * 5000, "ErrorCode": LONG}
    response = signed_post(client, f"/webhooks/twilio/status?m={message.id}", form)
    assert response.status_code == 204
    (row,) = messages(app, id=message.id)
    assert row.delivery_status == "x" * 32
    assert row.error_code == "9" * 32


def test_an_over_long_message_sid_is_refused(app: Flask, client: FlaskClient, message: Message) -> None:
    before = _rows(app)
    form = {"MessageSid": "SM" + "c" * 5000, "MessageStatus": "delivered"}
    response = signed_post(client, f"/webhooks/twilio/status?m={message.id}", form)
    assert response.status_code == 422
    assert response.json["invalid_params"][0]["name"] == "MessageSid"
    assert _rows(app) == before


def test_an_inbound_sms_from_no_phone_number_is_refused(app: Flask, client: FlaskClient) -> None:
    before = _rows(app)
    response = signed_post(client, "/webhooks/twilio/inbound", {"From": "+1" + LONG, "Body": "STOP"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["invalid_params"][0]["name"] == "From"
    assert _rows(app) == before
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OptOut)) == 0


def test_a_nul_in_a_form_value_is_refused(app: Flask, client: FlaskClient) -> None:
    before = _rows(app)
    response = signed_post(client, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "ST\x00OP"})
    assert response.status_code == 400
    assert response.json["invalid_params"][0] == {
        "name": "Body",
        "in": "form",
        "reason": "must not contain NUL characters or unpaired surrogates",
    }
    assert _rows(app) == before


@pytest.mark.parametrize("path", [f"/outbox/{HUGE}", f"/outbox/{2**63}/raw", f"/outbox/1/attachments/{HUGE}"])
def test_the_outbox_page_does_not_find_ids_beyond_its_keys(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_a_feed_link_for_a_provider_beyond_any_id_is_not_found(client: FlaskClient) -> None:
    for path in (
        f"/api/v1/providers/{2**31}/calendar-feed",
        f"/api/v1/providers/{HUGE}/calendar-feed/rotate",
    ):
        response = client.open(path, method="POST" if path.endswith("rotate") else "GET", headers=STAFF)
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json"


def test_no_route_takes_an_unbounded_integer(app: Flask) -> None:
    from werkzeug.routing import IntegerConverter

    for rule in app.url_map.iter_rules():
        for name, converter in rule._converters.items():
            if isinstance(converter, IntegerConverter):
                assert converter.max is not None, (rule.rule, name)
