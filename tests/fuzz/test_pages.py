"""Every patient and staff page of every service, fuzzed on both engines: each GET page's query and each POST
form get hostile values (unicode, huge, empty, repeated and missing keys, extra fields, control characters,
bytes that are not UTF-8, a garbled link in the path). A page answers with a page, its error summary, a
redirect or a 4xx, never a 5xx, and an error changes nothing in the database. The routes come from each
app's url_map, so a new page is fuzzed (or this test fails naming it) without an edit here; the parts are in
tests/fuzz/pages.py.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, select

from services.booking import create_app as create_booking_app
from services.booking.config import BookingConfig
from services.booking.models import Base as BookingBase
from shared import links
from shared.config import load
from shared.db import get_db
from shared.timeutil import utcnow
from tests.booking.conftest import MONDAY_NOON, STAFF
from tests.booking.courses.test_courses import EXPECTED, _book, _template
from tests.booking.factories import chair_body, make_chair_setup
from tests.fuzz.pages import borrow, crawl, fuzz, routes
from tests.support.servers import RedisServer

BASE = "http://127.0.0.1:8001"
# Hostile variants per route and method: about a minute per service and engine on two cores.
EXAMPLES = 30
# Routes that are not pages: health, metrics and static files take no input a patient types.
NOT_PAGES = {"health.healthz", "health.readyz", "metrics"}
# The form fields the browser sends for a page whose inputs start empty: a real patient's values, so the other
# fields' hostile variants get past the first check.
FILLED = {
    "name": "Jordan Example",
    "phone": "+44 7911 123456",
    "email": "jordan@example.com",
    "first_name": "Sam",
    "mobile": "+14155552671",
    "escort_first_name": "Sam",
    "escort_phone": "+14155552672",
    "escort_patient_first_name": "Jordan",
    "by": "Dr. Maya Chen",
}


@dataclasses.dataclass
class World:
    """An app with data behind its pages: the entry links a patient or staff member opens, and its tables."""

    app: Flask
    entries: list[str]
    metadata: MetaData
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def _booking(database_url: str, redis_url: str, clock: time_machine.Coordinates) -> World:
    config = load(
        BookingConfig, environ={}, database_url=database_url, redis_url=redis_url, log_level="WARNING"
    )
    config = dataclasses.replace(
        config, booking_rate_limit="100000 per minute", rate_limit_storage_url="memory://"
    )
    app = create_booking_app(config)
    app.config["TESTING"] = True
    client = app.test_client()
    setup = make_chair_setup(app, providers=1, chairs=2, requires_escort=True)
    template = _template(client, setup)
    course = _book(
        client, template, [{"start": s, "provider_id": setup.provider_ids[0]} for s in EXPECTED]
    ).json
    booked = client.post(
        "/api/v1/bookings", json=chair_body(setup, "2026-03-03T14:00:00-05:00"), headers=STAFF
    )
    assert booked.status_code == 201, booked.json
    booking = booked.json
    invite = client.post("/api/v1/invitations", json={"clinic_id": setup.clinic_id}, headers=STAFF)
    assert invite.status_code == 201, invite.json
    sheet = client.post(
        "/api/v1/readiness/links", json={"clinic_id": setup.clinic_id, "day": "2026-03-03"}, headers=STAFF
    )
    assert sheet.status_code == 201, sheet.json
    keys = app.extensions["booking"].signer.keys
    ends_at = datetime.fromisoformat(booking["end"])
    with app.test_request_context():
        short_links = [
            links.short_manage_url(
                keys, BASE, booking_id=booking["id"], version=booking["version"], ends_at=ends_at
            ),
            links.short_day_check_url(
                keys, BASE, booking_id=booking["id"], version=booking["version"], ends_at=ends_at
            ),
            links.short_course_url(
                keys,
                BASE,
                course_id=course["id"],
                ends_at=datetime.fromisoformat(course["sessions"][-1]["end"]),
            ),
        ]
    clinic = _clinic_slug(client, setup.clinic_id)
    invite_path = _path(invite.json["url"])
    entries = [
        f"/book/{clinic}",
        # A course's booking page is linked from the clinic's own site, not from the types page.
        f"/book/{clinic}/course/{template['slug']}?tz=Europe/London",
        f"{invite_path}/course/{template['slug']}",
        _path(booking["manage_url"]),
        _path(course["course_url"]),
        invite_path,
        _path(sheet.json["url"]),
        f"/staff/day?clinic_id={setup.clinic_id}&day=2026-03-03",
        *(_path(u) for u in short_links),
    ]
    return World(app, entries, BookingBase.metadata, headers=STAFF)


def _clinic_slug(client: FlaskClient, clinic_id: int) -> str:
    return str(client.get(f"/api/v1/clinics/{clinic_id}", headers=STAFF).json["slug"])


def _checkins(database_url: str, redis_url: str, clock: time_machine.Coordinates) -> World:
    from services.checkins import create_app
    from services.checkins import links as checkin_links
    from services.checkins.models import Alert
    from services.checkins.models import Base as CheckinsBase
    from tests.checkins import conftest as checkins_tests

    app = create_app(checkins_tests.checkins_config(database_url, redis_url, log_level="WARNING"))
    app.config["TESTING"] = True
    # Two patients' infusions: one answers the PHQ-9's last question so an alert is raised, the other's
    # check-in stays open for its form.
    other = uuid.uuid4()
    checkins_tests.deliver(app, checkins_tests.booking_event())
    checkins_tests.deliver(app, checkins_tests.booking_event(patient_id=other))
    clock.move_to(checkins_tests.FIRST - timedelta(hours=47))
    checkins_tests.schedule(app)
    open_one, alerting = (
        next(c for c in checkins_tests.checkins(app, plan_step="phq9-before-first") if c.patient_id == p)
        for p in (checkins_tests.PATIENT, other)
    )
    client = app.test_client()
    token = checkins_tests.checkin_token(app, alerting)
    for item in range(1, 10):
        client.post(f"/c/{token}", data={"item": str(item), "value": "1" if item == 9 else "0"})
    signer = app.extensions["link_signer"]
    with app.app_context(), get_db().transaction() as session:
        alert = session.scalars(select(Alert)).one()
        alert_link = checkin_links.alert_url(signer, checkins_tests.BASE_URL, alert)
    timeline = client.get(f"/api/v1/patients/{checkins_tests.PATIENT}/timeline", headers=STAFF).json
    entries = [
        f"/c/{token}/support",
        f"/c/{checkins_tests.checkin_token(app, open_one)}",
        _path(alert_link),
        _path(timeline["timeline_url"]),
    ]
    return World(app, entries, CheckinsBase.metadata)


def _consult(database_url: str, redis_url: str, clock: time_machine.Coordinates) -> World:
    from services.consult.models import Base as ConsultBase
    from tests.consult import conftest as consult_tests

    clock.move_to(consult_tests.NOON)
    app = consult_tests.build_app(consult_tests.consult_config(database_url, redis_url, log_level="WARNING"))
    app.config["TESTING"] = True
    payload = consult_tests.booking_event()
    consult_tests.deliver(app, payload)
    booking_id = consult_tests.booking_id_of(payload)
    manage = links.manage_token(
        consult_tests.signer_of(app),
        booking_id=str(booking_id),
        version=1,
        ends_at=consult_tests.START + consult_tests.DURATION,
    )
    entries = [
        f"/join/{consult_tests.token_for(app, booking_id)}",
        f"/join/{consult_tests.token_for(app, booking_id, participant='provider')}",
        f"/join/manage/{manage}",
    ]
    return World(app, entries, ConsultBase.metadata)


def _notify(database_url: str, redis_url: str, clock: time_machine.Coordinates) -> World:
    from services.notify import create_app
    from services.notify import jobs as notify_jobs
    from services.notify.models import Base as NotifyBase
    from tests.notify.conftest import notify_config
    from tests.notify.factories import PROVIDER
    from tests.notify.factories import Booking as NotifyBooking

    app = create_app(notify_config(database_url, redis_url, log_level="WARNING", provider_invites=True))
    app.config["TESTING"] = True
    now = utcnow()
    with app.app_context():
        notify_jobs.handle_booking_event(NotifyBooking(start=now + timedelta(days=2)).confirmed(at=now))
    feed = app.test_client().get(f"/api/v1/providers/{PROVIDER.id}/calendar-feed", headers=STAFF)
    assert feed.status_code == 200, feed.json
    excluded = {
        "twilio_webhooks.inbound": "Twilio's webhooks, not pages: refused (403) before any field is read unless "
        "Twilio signed them; fuzzed signed in tests/fuzz/test_webhooks.py",
        "twilio_webhooks.status": "as the inbound webhook",
    }
    return World(app, ["/outbox", _path(feed.json["url"])], NotifyBase.metadata, excluded=excluded)


SERVICES: dict[str, Callable[[str, str, time_machine.Coordinates], World]] = {
    "booking": _booking,
    "checkins": _checkins,
    "consult": _consult,
    "notify": _notify,
}


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(MONDAY_NOON, tick=True) as traveller:
        yield traveller


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("service", SERVICES)
def test_no_page_answers_a_hostile_input_with_a_server_error(
    service: str,
    backend: str,
    make_database_url: Callable[[str, str], str],
    redis_server: RedisServer,
    clock: time_machine.Coordinates,
) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    world = SERVICES[service](make_database_url(service, backend), redis_server.url, clock)
    client = world.app.test_client()
    try:
        found = crawl(client, world.app, world.entries, headers=world.headers)
        wanted = routes(world.app, NOT_PAGES | set(world.excluded))
        csrf = next((v for t in found for k, v in t.fields if k == "csrf_token"), "")
        found += borrow(world.app, wanted - {(t.endpoint, t.method) for t in found}, found, csrf)
        missing = wanted - {(t.endpoint, t.method) for t in found}
        assert not missing, (
            f"routes no entry link reaches: add an entry to {service}'s world: {sorted(missing)}"
        )
        failures: list[str] = []
        keys = sorted({k for t in found for k, _ in t.fields if k != "csrf_token"})
        report = []
        for target in found:
            target.fields = [(k, v or FILLED.get(k, "")) for k, v in target.fields]
            statuses: Counter[int] = Counter()
            fuzz(
                client,
                world.app,
                target,
                metadata=world.metadata,
                query_keys=keys,
                headers=world.headers,
                examples=EXAMPLES,
                failures=failures,
                statuses=statuses,
            )
            report.append(f"{target.method} {target.endpoint}: {dict(sorted(statuses.items()))}")
        print(f"{service}/{backend}:", *report, sep="\n  ")
        assert not failures, "\n".join(failures[:40])
    finally:
        world.app.extensions["db"].dispose()
