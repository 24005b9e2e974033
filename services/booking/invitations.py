"""Private invitation links: a clinic invites one patient to book, optionally once, one type, one provider.

The signed token (``shared.links`` purpose INVITE) carries only the invitation's id and its expiry. Everything
else, the patient's pre-filled details above all, stays in the ``invitations`` row: an itsdangerous token is
signed, not encrypted, so whatever it carries can be read by anyone who sees the URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.booking.catalog import service as catalog
from services.booking.models import AppointmentType, Booking, Invitation, InvitationRedemption, Provider
from shared import links
from shared.db import is_unique_violation
from shared.problems import Conflict, Gone, NotFound, field_error
from shared.timeutil import ensure_utc, utcnow

PREFILL_FIELDS = ("name", "email", "phone")


def create_invitation(
    *,
    session: Session,
    clinic_id: int,
    expires_at: datetime,
    single_use: bool = True,
    appointment_type_id: int | None = None,
    provider_id: int | None = None,
    patient_id: uuid.UUID | None = None,
    patient: Mapping[str, Any] | None = None,
) -> Invitation:
    """Create an invitation of ``clinic_id``; ``patient_id`` or ``patient`` details pre-fill the form."""
    clinic = catalog.get_clinic(session=session, clinic_id=clinic_id)
    expires_at = ensure_utc(expires_at)
    if expires_at <= utcnow():
        raise field_error("expires_at", "must be in the future")
    appointment_type = provider = None
    if appointment_type_id is not None:
        appointment_type = catalog.get_appointment_type(session=session, type_id=appointment_type_id)
        if appointment_type.clinic_id != clinic.id:
            raise field_error("appointment_type_id", "this appointment type belongs to another clinic")
    if provider_id is not None:
        provider = catalog.get_provider(session=session, provider_id=provider_id)
        if provider.clinic_id != clinic.id:
            raise field_error("provider_id", "this provider belongs to another clinic")
        if appointment_type is not None and appointment_type not in provider.appointment_types:
            raise field_error("provider_id", "this provider does not offer the invited appointment type")
    prefill: dict[str, Any] | None = None
    if patient_id is not None:
        person = catalog.get_patient(session=session, patient_id=patient_id)
        if person.clinic_id != clinic.id:
            raise field_error("patient_id", "this patient belongs to another clinic")
        prefill = {"name": person.name, "email": person.email, "phone": person.phone}
    elif patient:
        prefill = {k: patient.get(k) for k in PREFILL_FIELDS if patient.get(k)}
    invitation = Invitation(
        clinic_id=clinic.id,
        appointment_type_id=appointment_type_id,
        provider_id=provider_id,
        single_use=single_use,
        expires_at=expires_at,
        prefill=prefill or None,
    )
    session.add(invitation)
    session.flush()
    return invitation


def get_invitation(*, session: Session, invitation_id: uuid.UUID) -> Invitation:
    """The invitation ``invitation_id`` or 404."""
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        raise NotFound(f"No invitation {invitation_id}.")
    return invitation


def revoke_invitation(*, session: Session, invitation_id: uuid.UUID) -> Invitation:
    """Stop an invitation from working (revoking twice changes nothing)."""
    invitation = get_invitation(session=session, invitation_id=invitation_id)
    if invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        session.flush()
    return invitation


def invitation_token(signer: links.LinkSigner, invitation: Invitation) -> str:
    """The signed token of an invitation link (its id and expiry, nothing about the patient)."""
    return signer.sign(
        purpose=links.INVITE, subject=str(invitation.id), version=1, expires_at=invitation.expires_at
    )


def invitation_url(base_url: str, token: str) -> str:
    """The patient-facing invitation page for ``token``."""
    return links.link_url(base_url, "invite", token)


def get_usable(*, session: Session, invitation_id: uuid.UUID) -> Invitation:
    """The invitation if it may still be used: 404 unknown, 410 expired or revoked, 409 already used."""
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        raise NotFound("This invitation is not valid.", slug="link-invalid")
    if invitation.revoked_at is not None or invitation.expires_at <= utcnow():
        raise Gone("This invitation has expired.", slug="link-expired")
    if invitation.single_use and invitation.redemption is not None:
        raise Conflict("This invitation has already been used to book.", slug="invitation-used")
    return invitation


def invitation_for_link(
    *, session: Session, signer: links.LinkSigner, token: str, usable: bool = True
) -> Invitation:
    """The invitation a patient's link opens: 404 if forged, 410 if expired or revoked, 409 if used.

    ``usable=False`` checks only the link itself (signature, expiry, the row exists), for callers that let
    :func:`get_usable` judge later.
    """
    try:
        claims = signer.verify(token, purpose=links.INVITE)
    except links.LinkError as exc:
        if exc.reason == "expired":
            raise Gone("This invitation has expired.", slug="link-expired") from exc
        raise NotFound("This invitation is not valid.", slug="link-invalid") from exc
    try:
        invitation_id = uuid.UUID(claims.subject)
    except ValueError as exc:
        raise NotFound("This invitation is not valid.", slug="link-invalid") from exc
    if not usable:
        invitation = session.get(Invitation, invitation_id)
        if invitation is None:
            raise NotFound("This invitation is not valid.", slug="link-invalid")
        return invitation
    return get_usable(session=session, invitation_id=invitation_id)


def check_allows(invitation: Invitation, *, provider: Provider, appointment_type: AppointmentType) -> None:
    """Refuse a booking the invitation does not cover (another clinic, type or provider)."""
    if appointment_type.clinic_id != invitation.clinic_id:
        raise field_error("appointment_type_id", "this invitation is for another clinic")
    if invitation.appointment_type_id is not None and appointment_type.id != invitation.appointment_type_id:
        raise field_error("appointment_type_id", "this invitation is for another appointment type")
    if invitation.provider_id is not None and provider.id != invitation.provider_id:
        raise field_error("provider_id", "this invitation is for another provider")


def redeem(*, session: Session, invitation: Invitation, booking: Booking) -> None:
    """Spend a single-use invitation on ``booking``; the primary key refuses a second, concurrent use."""
    if not invitation.single_use:
        return
    nested = session.begin_nested()
    try:
        session.add(InvitationRedemption(invitation_id=invitation.id, booking_id=booking.id))
        nested.commit()
    except IntegrityError as exc:
        nested.rollback()
        if not is_unique_violation(exc):
            raise
        raise Conflict("This invitation has already been used to book.", slug="invitation-used") from exc
