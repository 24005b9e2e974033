"""Private invitation links: staff create them, patients book through them; the DB enforces single use."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.booking import invitations, service
from services.booking.catalog import service as catalog
from services.booking.models import Booking, InvitationRedemption
from shared.db import get_db
from shared.problems import Conflict, Gone, NotFound, Unprocessable
from tests.booking.conftest import STAFF
from tests.booking.factories import PATIENT, make_setup
from tests.booking.pages_support import PATIENT_FORM, links, submit, text

TUESDAY_10_NY = datetime(2026, 3, 3, 15, tzinfo=UTC)


def _invite(client: FlaskClient, **body: Any) -> Any:
    response = client.post("/api/v1/invitations", json=body, headers=STAFF)
    assert response.status_code == 201, response.json
    return response.json


def _path(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8001")


def test_invitation_limited_to_one_type_prefills_and_is_spent(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    invitation = _invite(
        pages_client,
        clinic_id=setup.clinic_id,
        appointment_type_id=setup.type_id,
        patient={"name": "Riley Invited", "email": "riley@example.com", "phone": "+1 415 555 2671"},
        expires_in_hours=48,
    )
    assert invitation["single_use"] is True
    assert invitation["prefilled"] is True
    assert "patient" not in invitation
    url = _path(invitation["url"])
    assert url.startswith("/invite/")
    # The token names the invitation only: no patient detail can be read out of the link.
    for private in ("Riley", "riley", "2671"):
        assert private not in invitation["url"]

    # One type and one provider: the link goes straight to the times.
    first = pages_client.get(url + "?tz=Europe/London")
    assert first.status_code == 302
    second = pages_client.get(first.headers["Location"])
    assert second.status_code == 302
    slots = pages_client.get(second.headers["Location"])
    assert slots.status_code == 200
    details = pages_client.get(links(slots.text, "time")[0])
    assert 'value="Riley Invited"' in details.text
    assert 'value="riley@example.com"' in details.text
    assert 'value="+14155552671"' in details.text

    booked = submit(
        pages_client, details.text, name="Riley Invited", phone="+14155552671", email="riley@example.com"
    )
    assert booked.status_code == 303
    read = pages_client.get(f"/api/v1/invitations/{invitation['id']}", headers=STAFF).json
    assert read["used_by_booking_id"] is not None

    used = pages_client.get(url)
    assert used.status_code == 409
    assert "already been used" in text(used.text)
    # Sending the same form again finds the same booking instead of a second one.
    again = submit(
        pages_client, details.text, name="Riley Invited", phone="+14155552671", email="riley@example.com"
    )
    assert again.headers["Location"] == booked.headers["Location"]


def test_expired_tampered_and_revoked_links_are_refused_kindly(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(pages_app)
    invitation = _invite(pages_client, clinic_id=setup.clinic_id, expires_in_hours=1)
    url = _path(invitation["url"])
    assert pages_client.get(url, follow_redirects=True).status_code == 200

    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    refused = pages_client.get(tampered)
    assert refused.status_code == 404
    assert "This link does not work" in text(refused.text)

    forged_other = pages_client.get("/invite/" + url.split("/")[2].split(".")[0] + ".forged")
    assert forged_other.status_code == 404

    clock.shift(timedelta(hours=2))
    expired = pages_client.get(url)
    assert expired.status_code == 410
    assert "This link has expired" in text(expired.text)

    fresh = _invite(pages_client, clinic_id=setup.clinic_id)
    assert pages_client.delete(f"/api/v1/invitations/{fresh['id']}", headers=STAFF).json["revoked_at"]
    revoked = pages_client.get(_path(fresh["url"]))
    assert revoked.status_code == 410
    assert "contact the clinic that sent you the link" in text(revoked.text)


def test_invitation_rules_live_in_the_service(pages_app: Flask, clock: object) -> None:
    setup = make_setup(pages_app)
    other = make_setup(pages_app, slug="other")
    with pages_app.app_context(), get_db().transaction() as session:
        with pytest.raises(Unprocessable):
            invitations.create_invitation(
                session=session,
                clinic_id=setup.clinic_id,
                appointment_type_id=other.type_id,
                expires_at=TUESDAY_10_NY,
            )
        with pytest.raises(Unprocessable):
            invitations.create_invitation(
                session=session, clinic_id=setup.clinic_id, expires_at=datetime(2020, 1, 1, tzinfo=UTC)
            )
        with pytest.raises(NotFound):
            invitations.get_usable(session=session, invitation_id=uuid.uuid4())
        limited = invitations.create_invitation(
            session=session,
            clinic_id=other.clinic_id,
            provider_id=other.provider_id,
            expires_at=TUESDAY_10_NY,
        )
        with pytest.raises(Unprocessable) as wrong_clinic:
            service.book_appointment(
                session=session,
                provider_id=setup.provider_id,
                appointment_type_id=setup.type_id,
                start=TUESDAY_10_NY,
                patient=dict(PATIENT),
                invitation_id=limited.id,
            )
        assert "another clinic" in wrong_clinic.value.detail


def test_a_single_use_invitation_books_once_even_for_two_slots(
    pages_app: Flask, backend: str, clock: object
) -> None:
    setup = make_setup(pages_app)
    with pages_app.app_context(), get_db().transaction() as session:
        invitation_id = invitations.create_invitation(
            session=session, clinic_id=setup.clinic_id, expires_at=TUESDAY_10_NY + timedelta(days=1)
        ).id
    with pages_app.app_context(), get_db().transaction() as session:
        service.book_appointment(
            session=session,
            provider_id=setup.provider_id,
            appointment_type_id=setup.type_id,
            start=TUESDAY_10_NY,
            patient=dict(PATIENT),
            invitation_id=invitation_id,
        )
    with pages_app.app_context(), get_db().transaction() as session, pytest.raises(Conflict) as used:
        service.book_appointment(
            session=session,
            provider_id=setup.provider_id,
            appointment_type_id=setup.type_id,
            start=TUESDAY_10_NY + timedelta(hours=2),
            patient=dict(PATIENT),
            invitation_id=invitation_id,
        )
    assert used.value.slug == "invitation-used"

    # The redemption row itself refuses a second use: a stale check cannot get a second booking through.
    with pages_app.app_context(), get_db().transaction() as session:
        invitation = invitations.get_invitation(session=session, invitation_id=invitation_id)
        booking = catalog.create_patient(session=session, clinic_id=setup.clinic_id, **PATIENT)
        assert booking is not None
        stale, _ = service.book_appointment(
            session=session,
            provider_id=setup.provider_id,
            appointment_type_id=setup.type_id,
            start=TUESDAY_10_NY + timedelta(hours=4),
            patient=dict(PATIENT),
        )
        with pytest.raises(Conflict):
            invitations.redeem(session=session, invitation=invitation, booking=stale)
        session.rollback()
    with pages_app.app_context(), get_db().transaction() as session:
        assert session.scalar(select(func.count()).select_from(InvitationRedemption)) == 1
        assert session.scalar(select(func.count()).select_from(Booking)) == 1


def test_multi_use_invitation_and_expired_at_booking_time(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(pages_app)
    invitation = _invite(pages_client, clinic_id=setup.clinic_id, single_use=False, expires_in_hours=3)
    url = _path(invitation["url"])
    for n in range(2):
        slots = pages_client.get(
            pages_client.get(pages_client.get(url).headers.get("Location") or url).headers.get("Location")
            or url
        )
        details = pages_client.get(links(slots.text, "time")[n])
        assert (
            submit(pages_client, details.text, **{**PATIENT_FORM, "email": f"p{n}@example.com"}).status_code
            == 303
        )
    slots = pages_client.get(f"{url}/consult/{setup.provider_id}")
    details = pages_client.get(links(slots.text, "time")[3])
    clock.shift(timedelta(hours=4))
    late = submit(pages_client, details.text, **PATIENT_FORM)
    assert late.status_code == 410
    with pages_app.app_context(), get_db().transaction() as session:
        with pytest.raises(Gone):
            invitations.get_usable(session=session, invitation_id=uuid.UUID(invitation["id"]))
        assert session.scalar(select(func.count()).select_from(Booking)) == 2
