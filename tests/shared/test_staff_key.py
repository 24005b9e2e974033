"""A staff key is every route's default: walk each service's url_map; only the listed routes are open.

A route opened by mistake fails here until it is added to ``PUBLIC`` below, where a reviewer sees it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule

from services.booking import create_app as create_booking
from services.booking.config import BookingConfig
from services.checkins import create_app as create_checkins
from services.checkins.config import CheckinsConfig
from services.consult import create_app as create_consult
from services.consult.config import ConsultConfig
from services.notify import create_app as create_notify
from services.notify.config import NotifyConfig
from shared.api import is_public
from shared.config import load

# Open without a key, and why: health probes; metrics (off the public entry point, deploy/README.md); the API
# docs (development, or API_DOCS=true); static files; routes whose credential is a signed token or signature.
COMMON = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    "/api/docs",
    "/api/docs/assets/<path:filename>",
    "/static/<path:filename>",
}
PUBLIC: dict[str, set[str]] = {
    "booking": COMMON
    | {
        "/api/v1/slots",  # free times, the public booking page's own API
        "/api/v1/manage/<string:token>",  # a patient's manage link
        "/api/v1/manage/<string:token>/cancel",
        "/api/v1/manage/<string:token>/escort",
        "/api/v1/manage/<string:token>/reschedule",
        "/api/v1/manage/<string:token>/send-link",
        "/api/v1/manage/<string:token>/slots",
        "/book/<clinic_slug>",  # the clinic's public booking pages
        "/book/<clinic_slug>/<type_slug>",
        "/book/<clinic_slug>/<type_slug>/<who>",
        "/book/<clinic_slug>/<type_slug>/<who>/details",
        "/book/<clinic_slug>/course/<template_slug>",  # a whole treatment course, from the public link
        "/invite/<token>",  # a signed private invitation
        "/invite/<token>/<type_slug>",
        "/invite/<token>/<type_slug>/<who>",
        "/invite/<token>/<type_slug>/<who>/details",
        "/invite/<token>/course/<template_slug>",
        "/m/<code>",  # a short signed manage link, as SMS carry it
        "/d/<code>",  # a short signed day-before safety check link, as the reminder carries it
        "/staff/day/<token>",  # a signed day-sheet link (staff without the API key)
        "/c/<code>",  # a short signed course link, as SMS carry it
        "/course/<token>",  # a patient's course page (signed course link)
        "/course/<token>/cancel",
        "/course/<token>/link-sent",
        "/course/<token>/send-link",  # an expired course link's "send my course link again"
        "/manage/<token>",  # a patient's manage pages
        "/manage/<token>/calendar.ics",
        "/manage/<token>/escort",
        "/manage/<token>/cancel",
        "/manage/<token>/link-sent",
        "/manage/<token>/reschedule",
        "/manage/<token>/reschedule/confirm",
        "/manage/<token>/send-link",
        "/pages/static/<path:filename>",
    },
    "notify": COMMON
    | {
        "/calendar/<token>.ics",  # a provider's signed feed link
        "/webhooks/twilio/inbound",  # signed by Twilio (X-Twilio-Signature)
        "/webhooks/twilio/status",
        "/outbox",  # the console outbox page: development only (console senders)
        "/outbox/<id(bits=64):message_id>",
        "/outbox/<id(bits=64):message_id>/attachments/<id(bits=64):attachment_id>",
        "/outbox/<id(bits=64):message_id>/html",
        "/outbox/<id(bits=64):message_id>/raw",
    },
    "consult": COMMON
    | {
        "/api/v1/join/<string:token>/access",  # a signed join link
        "/join/<string:token>",
        "/join/manage/<string:token>",  # a patient's manage link, on to their join link
        "/api/v1/local-video/leave",  # the local stand-in's rooms (development only): the room's access token
        "/api/v1/local-video/presence",
    },
    "checkins": COMMON
    | {
        "/c/<string:token>",  # a patient's signed check-in link
        "/c/<string:token>/support",
        "/c/<string:token>/stop",
        "/alerts/<string:token>",  # on-call staff's signed alert link
        "/timeline/<string:token>",  # a provider's signed timeline link
    },
}
# Every optional part switched on: the development apps have the most routes.
APPS: dict[str, Callable[[], Flask]] = {
    "booking": lambda: create_booking(load(BookingConfig, environ={}, database_url="sqlite:///:memory:")),
    "notify": lambda: create_notify(load(NotifyConfig, environ={}, database_url="sqlite:///:memory:")),
    "consult": lambda: create_consult(load(ConsultConfig, environ={}, database_url="sqlite:///:memory:")),
    "checkins": lambda: create_checkins(load(CheckinsConfig, environ={}, database_url="sqlite:///:memory:")),
}
SAMPLES = {"int": "1", "id": "1", "uuid": str(uuid.uuid4()), "isodate": "2026-03-03"}
WRONG = (
    {},
    {"Authorization": "Bearer not-the-key"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic ZGV2LWFwaS1rZXk6"},  # the right key, the wrong scheme
    {"Authorization": "dev-api-key"},
)


@pytest.fixture(params=list(APPS))
def service(request: pytest.FixtureRequest) -> Iterator[tuple[str, Flask]]:
    app = APPS[request.param]()
    yield request.param, app
    app.extensions["db"].dispose()


def _path(rule: Rule) -> str:
    """A concrete path for ``rule``: a sample value for each of its variables."""

    def sample(match: re.Match[str]) -> str:
        converter = match.group(1) or "string"
        return SAMPLES.get(converter, "sample")

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", sample, rule.rule)


def test_only_the_listed_routes_are_open(service: tuple[str, Flask]) -> None:
    name, app = service
    open_rules = {rule.rule for rule in app.url_map.iter_rules() if is_public(app, rule.endpoint)}
    assert open_rules == PUBLIC[name]


def test_every_other_route_refuses_a_missing_or_wrong_key(service: tuple[str, Flask]) -> None:
    name, app = service
    client = app.test_client()
    walked = 0
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC[name]:
            continue
        path = _path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD"}):
            for headers in WRONG:
                answer = client.open(path, method=method, headers=headers, json={})
                assert answer.status_code == 401, (method, path, headers, answer.status_code)
                assert answer.headers["WWW-Authenticate"] == 'Bearer realm="staff"'
            walked += 1
    assert walked >= {"booking": 30, "notify": 8, "consult": 2, "checkins": 3}[name]


def test_the_right_key_passes_the_gate(service: tuple[str, Flask]) -> None:
    _name, app = service
    client = app.test_client()
    staff_rules = [
        r for r in app.url_map.iter_rules() if not is_public(app, r.endpoint) and "GET" in r.methods
    ]
    for rule in staff_rules:
        answer = client.get(_path(rule), headers={"Authorization": "Bearer dev-api-key"})
        assert answer.status_code != 401, rule.rule


def test_the_openapi_document_says_which_operations_need_the_key(service: tuple[str, Flask]) -> None:
    name, app = service
    spec: dict[str, Any] = app.test_client().get("/api/openapi.json").json
    for path, operations in spec["paths"].items():
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        is_open = any(re.sub(r"<\w+:", "<", p) == rule for p in PUBLIC[name])
        for method, operation in operations.items():
            if method == "parameters":
                continue
            if is_open:
                assert "security" not in operation, (method, path)
            else:
                assert operation["security"] == [{"staffKey": []}], (method, path)
                assert operation["responses"]["401"]["description"] == "No or wrong staff key"
