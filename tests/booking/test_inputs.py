"""Inputs that once answered 500 or were stored: each is a 4xx naming the field, and changes nothing.

From the issue, on both engines: integers beyond a column's range (path, query, body), an instant whose UTC
conversion overflows, a lone surrogate in JSON, NUL and control characters in a patient's name (API and page).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.booking.conftest import STAFF
from tests.booking.factories import Setup, booking_body, make_setup
from tests.booking.pages_support import PATIENT_FORM, submit, text
from tests.booking.test_validation import _counts

HUGE = "99999999999999999999"
BEYOND_INT32 = 2**31  # fits SQLite's INTEGER, not PostgreSQL's
START = "2026-03-03T10:00:00-05:00"


@pytest.fixture
def setup(app: Flask, clock: object) -> Setup:
    return make_setup(app)


def _refused(
    app: Flask, client: FlaskClient, method: str, path: str, *, status: int, field: str = "", **kwargs: Any
) -> dict[str, Any]:
    before = _counts(app)
    response = client.open(path, method=method, headers=STAFF, **kwargs)
    assert response.status_code == status, (method, path, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.json
    assert body["status"] == status
    if field:
        assert field in {p["name"] for p in body["invalid_params"]}, body
    assert _counts(app) == before
    return body


def _slots(provider: object, kind: object) -> str:
    return (
        f"/api/v1/slots?provider_id={provider}&appointment_type_id={kind}"
        "&start=2026-03-03T00:00:00Z&end=2026-03-04T00:00:00Z"
    )


@pytest.mark.parametrize("too_big", [HUGE, str(BEYOND_INT32)])
def test_an_id_beyond_its_column_is_not_found_in_a_path_and_refused_elsewhere(
    app: Flask, client: FlaskClient, setup: Setup, too_big: str
) -> None:
    p, t = setup.provider_id, setup.type_id
    _refused(app, client, "GET", f"/api/v1/clinics/{too_big}", status=404)
    _refused(app, client, "PATCH", f"/api/v1/providers/{too_big}", status=404, json={"name": "X"})
    _refused(app, client, "PUT", f"/api/v1/providers/{too_big}/overrides/2026-03-04", status=404, json={})
    _refused(app, client, "GET", _slots(p, too_big), status=422, field="appointment_type_id")
    _refused(app, client, "GET", _slots(too_big, t), status=422, field="provider_id")
    _refused(app, client, "GET", f"/api/v1/providers?clinic_id={too_big}", status=422, field="clinic_id")
    big = int(too_big)
    _refused(
        app,
        client,
        "PATCH",
        f"/api/v1/providers/{p}",
        status=422,
        field="appointment_type_ids.0",
        json={"appointment_type_ids": [big]},
    )
    body = {**booking_body(setup, START), "provider_id": big}
    _refused(app, client, "POST", "/api/v1/bookings", status=422, field="provider_id", json=body)
    _refused(
        app,
        client,
        "POST",
        "/api/v1/bookings",
        status=422,
        field="provider_id",
        json={**body, "provider_id": 10**30},
    )


def test_ids_must_be_plain_positive_numbers(app: Flask, client: FlaskClient, setup: Setup) -> None:
    for bad in ("0", "-1", "1.0", "٣", "+1", " 1"):
        _refused(app, client, "GET", _slots(bad, setup.type_id), status=422, field="provider_id")
    _refused(app, client, "GET", "/api/v1/clinics/٣", status=404)
    _refused(app, client, "GET", "/api/v1/clinics/0", status=404)


@pytest.mark.parametrize(
    "start",
    [
        "9999-12-31T23:59:59-12:00",  # its UTC conversion overflows
        "0001-01-01T00:00:00+14:00",
        "9000-01-01T00:00:00Z",
        "2026-03-03T10:00:00",  # no offset
        "2026-03-03T10:00Z",  # no seconds: not RFC 3339
        "2026-03-03 10:00:00Z",
        "2026-03-03T10:00:00-05:00\n",
    ],
)
def test_an_instant_outside_years_1900_to_8999_or_not_rfc_3339_is_refused(
    app: Flask, client: FlaskClient, setup: Setup, start: str
) -> None:
    body = booking_body(setup, start)
    _refused(app, client, "POST", "/api/v1/bookings", status=422, field="start", json=body)
    query = f"/api/v1/slots?provider_id={setup.provider_id}&appointment_type_id={setup.type_id}"
    _refused(
        app,
        client,
        "GET",
        f"{query}&start={quote(start, safe='')}&end=2026-03-04T00:00:00Z",
        status=422,
        field="start",
    )


def test_a_day_outside_the_years_is_not_found(app: Flask, client: FlaskClient, setup: Setup) -> None:
    path = f"/api/v1/providers/{setup.provider_id}/overrides/9999-12-31"
    _refused(app, client, "PUT", path, status=404, json={"closed": True})
    _refused(
        app,
        client,
        "GET",
        f"/api/v1/providers/{setup.provider_id}/overrides?end=9999-12-31",
        status=422,
        field="end",
    )


def test_a_lone_surrogate_is_unreadable_json(app: Flask, client: FlaskClient, setup: Setup) -> None:
    raw = '{"name": "Lone \\ud800 surrogate"}'
    _refused(
        app,
        client,
        "PATCH",
        f"/api/v1/clinics/{setup.clinic_id}",
        status=400,
        field="name",
        data=raw,
        content_type="application/json",
    )
    nested = '{"patient": {"name": "x\\udfff"}, "provider_id": 1}'
    _refused(
        app,
        client,
        "POST",
        "/api/v1/bookings",
        status=400,
        field="patient.name",
        data=nested,
        content_type="application/json",
    )
    # A pair of surrogates is one character, and welcome.
    paired = client.patch(
        f"/api/v1/clinics/{setup.clinic_id}",
        data='{"name": "Clinic \\ud83d\\ude00"}',
        content_type="application/json",
        headers=STAFF,
    )
    assert paired.status_code == 200
    assert paired.json["name"] == "Clinic \U0001f600"


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": NaN}',
        '{"name": Infinity}',
        "[" * 100_000 + "]" * 100_000,
        '{"n": ' + "1" * 5000 + "}",
        b'{"name": "\xff"}',
    ],
    ids=["nan", "infinity", "deep", "long-number", "bad-utf8"],
)
def test_json_the_parser_cannot_take_is_a_400(
    app: Flask, client: FlaskClient, setup: Setup, raw: str | bytes
) -> None:
    body = _refused(
        app,
        client,
        "PATCH",
        f"/api/v1/clinics/{setup.clinic_id}",
        status=400,
        data=raw,
        content_type="application/json",
    )
    assert body["invalid_params"][0]["in"] == "json"


@pytest.mark.parametrize(
    ("name", "status"),
    [("Al\x00ex", 400), ("Al\x07ex", 422), ("Alex\nDemo", 422), ("Alex\x7f", 422), ("Alex\x85", 422)],
    ids=["nul", "bell", "newline", "delete", "c1-next-line"],
)
def test_control_characters_in_a_patients_name_are_refused(
    app: Flask, client: FlaskClient, setup: Setup, name: str, status: int
) -> None:
    patient = {"clinic_id": setup.clinic_id, "name": name, "email": "a@example.com", "time_zone": "UTC"}
    _refused(app, client, "POST", "/api/v1/patients", status=status, field="name", json=patient)
    body = booking_body(setup, START, name=name)
    _refused(app, client, "POST", "/api/v1/bookings", status=status, field="patient.name", json=body)


def test_free_text_keeps_line_breaks_but_not_other_controls(
    app: Flask, client: FlaskClient, setup: Setup
) -> None:
    path = f"/api/v1/clinics/{setup.clinic_id}"
    kept = client.patch(path, json={"address": "1 Main St\r\nSuite 3\tBack"}, headers=STAFF)
    assert kept.status_code == 200
    _refused(app, client, "PATCH", path, status=422, field="address", json={"address": "1 Main\x1bSt"})


def test_a_nul_in_a_query_or_path_is_refused(app: Flask, client: FlaskClient, setup: Setup) -> None:
    _refused(app, client, "GET", "/api/v1/slots?provider_id=1&tz=UTC%00", status=400, field="tz")
    _refused(app, client, "GET", "/api/v1/manage/abc%00def", status=404)


def test_an_empty_change_is_refused(app: Flask, client: FlaskClient, setup: Setup) -> None:
    for path in (
        f"/api/v1/clinics/{setup.clinic_id}",
        f"/api/v1/providers/{setup.provider_id}",
        f"/api/v1/appointment-types/{setup.type_id}",
    ):
        _refused(app, client, "PATCH", path, status=422, json={})


def test_booleans_are_json_booleans(app: Flask, client: FlaskClient, setup: Setup) -> None:
    for value in (0, 1, "true", "yes", None):
        _refused(
            app,
            client,
            "PATCH",
            f"/api/v1/providers/{setup.provider_id}",
            status=422,
            field="active",
            json={"active": value},
        )


def test_a_time_zone_name_that_is_a_directory_or_too_long_is_refused(
    app: Flask, client: FlaskClient, setup: Setup
) -> None:
    for zone in ("America", "a" * 5000, "right/UTC", "../etc/passwd"):
        _refused(
            app,
            client,
            "PATCH",
            f"/api/v1/clinics/{setup.clinic_id}",
            status=422,
            field="time_zone",
            json={"time_zone": zone},
        )


def _details_url(setup: Setup) -> str:
    query = f"start=2026-03-03T15:00:00%2B00:00&provider_id={setup.provider_id}&tz=Europe/London"
    return f"/book/clinic-consult/consult/{setup.provider_id}/details?{query}"


@pytest.mark.parametrize(("name", "status"), [("Jor\x00dan", 400), ("Jor\x07dan", 422)], ids=["nul", "bell"])
def test_the_booking_page_refuses_control_characters_in_a_name(
    pages_app: Flask, pages_client: FlaskClient, clock: object, name: str, status: int
) -> None:
    setup = make_setup(pages_app)
    form = pages_client.get(_details_url(setup))
    assert form.status_code == 200
    before = _counts(pages_app)
    answer = submit(pages_client, form.text, **{**PATIENT_FORM, "name": name})
    assert answer.status_code == status
    assert answer.mimetype == "text/html"  # the pages answer in pages; the API in problem+json
    if status == 422:
        assert "must not contain control characters" in text(answer.text)
    assert _counts(pages_app) == before


def test_the_booking_page_ignores_a_provider_beyond_any_id(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    make_setup(pages_app)
    assert pages_client.get(f"/book/clinic-consult?provider={HUGE}").status_code == 200


def test_a_body_over_the_request_limit_is_refused_unread(
    app: Flask, client: FlaskClient, setup: Setup
) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = booking_body(setup, START)
    body["intake"] = {"reason_other": "x" * limit}
    answer = _refused(app, client, "POST", "/api/v1/bookings", status=413, json=body)
    assert str(limit) in answer["detail"]
    # One byte under the limit is read (and judged on its fields, not its size).
    small = _refused(
        app,
        client,
        "POST",
        "/api/v1/bookings",
        status=422,
        data="{" + " " * (limit - 2) + "}",
        content_type="application/json",
    )
    assert small["invalid_params"]


def test_the_booking_page_refuses_a_form_over_the_request_limit(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    form = pages_client.get(_details_url(setup))
    before = _counts(pages_app)
    answer = submit(
        pages_client, form.text, **{**PATIENT_FORM, "name": "J" * pages_app.config["MAX_CONTENT_LENGTH"]}
    )
    assert answer.status_code == 413
    assert answer.mimetype == "text/html"
    assert _counts(pages_app) == before
