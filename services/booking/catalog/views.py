"""Staff API that sets a clinic up: clinics, providers and hours, appointment types, patients, invitations.

Views are thin: a schema loads the request, one catalog or invitations operation works, a schema dumps it.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from services.booking import invitations
from services.booking import schemas as s
from services.booking.catalog import schemas as c
from services.booking.catalog import service as catalog
from services.booking.runtime import get_runtime
from shared.api import API_PREFIX, ProblemSchema, links
from shared.db import get_session, unit_of_work
from shared.links import current_signer
from shared.timeutil import utcnow

clinics = Blueprint("clinics", __name__, url_prefix=f"{API_PREFIX}/clinics", description="Clinics (staff)")
providers = Blueprint(
    "providers",
    __name__,
    url_prefix=f"{API_PREFIX}/providers",
    description="Providers and availability (staff)",
)
types = Blueprint(
    "appointment_types",
    __name__,
    url_prefix=f"{API_PREFIX}/appointment-types",
    description="Appointment types (staff)",
)
patients = Blueprint(
    "patients", __name__, url_prefix=f"{API_PREFIX}/patients", description="Patients (staff)"
)
invites = Blueprint(
    "invitations",
    __name__,
    url_prefix=f"{API_PREFIX}/invitations",
    description="Private booking links for one patient (staff)",
)
BLUEPRINTS = (clinics, providers, types, patients, invites)

# Where a created resource leads (OpenAPI links: clients and the API fuzzer chain create, read, change).
_CLINIC, _PROVIDER = f"{API_PREFIX}/clinics/{{clinic_id}}", f"{API_PREFIX}/providers/{{provider_id}}"
_TYPE, _PATIENT = f"{API_PREFIX}/appointment-types/{{type_id}}", f"{API_PREFIX}/patients/{{patient_id}}"
_INVITATION = f"{API_PREFIX}/invitations/{{invitation_id}}"
CLINIC_LINKS = {
    "GetClinic": ("get", _CLINIC, "clinic_id"),
    "ChangeClinic": ("patch", _CLINIC, "clinic_id"),
}
PROVIDER_LINKS = {
    "GetProvider": ("get", _PROVIDER, "provider_id"),
    "ChangeProvider": ("patch", _PROVIDER, "provider_id"),
    "GetHours": ("get", f"{_PROVIDER}/availability", "provider_id"),
    "SetHours": ("put", f"{_PROVIDER}/availability", "provider_id"),
    "ListOverrides": ("get", f"{_PROVIDER}/overrides", "provider_id"),
    "SetOverride": ("put", f"{_PROVIDER}/overrides/{{day}}", "provider_id"),
}
TYPE_LINKS = {"GetType": ("get", _TYPE, "type_id"), "ChangeType": ("patch", _TYPE, "type_id")}
PATIENT_LINKS = {"GetPatient": ("get", _PATIENT, "patient_id")}
INVITATION_LINKS = {
    "GetInvitation": ("get", _INVITATION, "invitation_id"),
    "RevokeInvitation": ("delete", _INVITATION, "invitation_id"),
}


# --- clinics -------------------------------------------------------------------------------------------


@clinics.route("")
class Clinics(MethodView):
    @clinics.response(200, c.ClinicOut(many=True))
    def get(self) -> Any:
        """List clinics."""
        return catalog.list_clinics(session=get_session())

    @clinics.arguments(c.ClinicIn())
    @clinics.response(201, c.ClinicOut)
    @clinics.alt_response(409, schema=ProblemSchema, description="Slug taken")
    @links(clinics, 201, CLINIC_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a clinic."""
        with unit_of_work() as session:
            return catalog.create_clinic(session=session, **data)


@clinics.route("/<id:clinic_id>")
class ClinicItem(MethodView):
    @clinics.response(200, c.ClinicOut)
    def get(self, clinic_id: int) -> Any:
        """Read a clinic."""
        return catalog.get_clinic(session=get_session(), clinic_id=clinic_id)

    @clinics.arguments(c.ClinicPatch())
    @clinics.response(200, c.ClinicOut)
    def patch(self, data: dict[str, Any], clinic_id: int) -> Any:
        """Change a clinic."""
        with unit_of_work() as session:
            return catalog.update_clinic(session=session, clinic_id=clinic_id, changes=data)


# --- providers -----------------------------------------------------------------------------------------


@providers.route("")
class Providers(MethodView):
    @providers.arguments(c.ClinicFilter(), location="query")
    @providers.response(200, c.ProviderOut(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List providers."""
        return catalog.list_providers(session=get_session(), clinic_id=args.get("clinic_id"))

    @providers.arguments(c.ProviderIn())
    @providers.response(201, c.ProviderOut)
    @links(providers, 201, PROVIDER_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a provider."""
        with unit_of_work() as session:
            return catalog.create_provider(session=session, **data)


@providers.route("/<id:provider_id>")
class ProviderItem(MethodView):
    @providers.response(200, c.ProviderOut)
    def get(self, provider_id: int) -> Any:
        """Read a provider."""
        return catalog.get_provider(session=get_session(), provider_id=provider_id)

    @providers.arguments(c.ProviderPatch())
    @providers.response(200, c.ProviderOut)
    def patch(self, data: dict[str, Any], provider_id: int) -> Any:
        """Change a provider."""
        with unit_of_work() as session:
            return catalog.update_provider(session=session, provider_id=provider_id, changes=data)


@providers.route("/<id:provider_id>/availability")
class WeeklyAvailability(MethodView):
    @providers.response(200, c.WeeklyAvailabilityOut)
    def get(self, provider_id: int) -> Any:
        """Read a provider's weekly hours (in the provider's zone)."""
        rules = catalog.weekly_availability(session=get_session(), provider_id=provider_id)
        return {"provider_id": provider_id, "rules": rules}

    @providers.arguments(c.WeeklyAvailabilityIn())
    @providers.response(200, c.WeeklyAvailabilityOut)
    def put(self, data: dict[str, Any], provider_id: int) -> Any:
        """Replace a provider's weekly hours."""
        with unit_of_work() as session:
            rules = catalog.set_weekly_availability(
                session=session,
                provider_id=provider_id,
                rules=[(r["weekday"], r["start"], r["end"]) for r in data["rules"]],
            )
            return {"provider_id": provider_id, "rules": rules}


@providers.route("/<id:provider_id>/overrides")
class Overrides(MethodView):
    @providers.arguments(c.OverrideRange(), location="query")
    @providers.response(200, c.OverrideOut(many=True))
    def get(self, args: dict[str, Any], provider_id: int) -> Any:
        """List dated overrides of a provider's hours."""
        return catalog.list_overrides(
            session=get_session(),
            provider_id=provider_id,
            first_day=args.get("start"),
            last_day=args.get("end"),
        )


@providers.route("/<id:provider_id>/overrides/<isodate:day>")
class OverrideItem(MethodView):
    @providers.arguments(c.OverrideIn())
    @providers.response(200, c.OverrideOut(many=True))
    def put(self, data: dict[str, Any], provider_id: int, day: date) -> Any:
        """Set one date's hours: closed, or open only in the windows given."""
        with unit_of_work() as session:
            return catalog.set_override(
                session=session,
                provider_id=provider_id,
                day=day,
                closed=data["closed"],
                windows=[(w["start"], w["end"]) for w in data["windows"]],
            )

    @providers.response(204)
    def delete(self, provider_id: int, day: date) -> None:
        """Remove one date's override (the weekly hours apply again)."""
        with unit_of_work() as session:
            catalog.get_provider(session=session, provider_id=provider_id)
            catalog.clear_override(session=session, provider_id=provider_id, day=day)


# --- appointment types ---------------------------------------------------------------------------------


@types.route("")
class AppointmentTypes(MethodView):
    @types.arguments(c.ClinicFilter(), location="query")
    @types.response(200, c.AppointmentTypeOut(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List appointment types."""
        return catalog.list_appointment_types(session=get_session(), clinic_id=args.get("clinic_id"))

    @types.arguments(c.AppointmentTypeIn())
    @types.response(201, c.AppointmentTypeOut)
    @types.alt_response(409, schema=ProblemSchema, description="Slug taken in this clinic")
    @links(types, 201, TYPE_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an appointment type."""
        clinic_id = data.pop("clinic_id")
        with unit_of_work() as session:
            return catalog.create_appointment_type(session=session, clinic_id=clinic_id, fields=data)


@types.route("/<id:type_id>")
class AppointmentTypeItem(MethodView):
    @types.response(200, c.AppointmentTypeOut)
    def get(self, type_id: int) -> Any:
        """Read an appointment type."""
        return catalog.get_appointment_type(session=get_session(), type_id=type_id)

    @types.arguments(c.AppointmentTypePatch())
    @types.response(200, c.AppointmentTypeOut)
    def patch(self, data: dict[str, Any], type_id: int) -> Any:
        """Change an appointment type (existing bookings keep their times)."""
        with unit_of_work() as session:
            return catalog.update_appointment_type(session=session, type_id=type_id, changes=data)


# --- patients ------------------------------------------------------------------------------------------


@patients.route("")
class Patients(MethodView):
    @patients.arguments(s.PatientIn())
    @patients.response(201, s.PatientOut)
    @links(patients, 201, PATIENT_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Register a patient."""
        with unit_of_work() as session:
            return catalog.create_patient(session=session, **data)


@patients.route("/<uuid:patient_id>")
class PatientItem(MethodView):
    @patients.response(200, s.PatientOut)
    def get(self, patient_id: uuid.UUID) -> Any:
        """Read a patient."""
        return catalog.get_patient(session=get_session(), patient_id=patient_id)


# --- invitations ---------------------------------------------------------------------------------------


class _PresentedInvitation:
    """An invitation with its signed link, for dumping (the pre-filled details stay out of the answer)."""

    def __init__(self, invitation: Any) -> None:
        self._invitation = invitation
        token = invitations.invitation_token(current_signer(), invitation)
        self.url = invitations.invitation_url(get_runtime().config.booking_public_url, token)
        self.prefilled = bool(invitation.prefill)
        self.used_by_booking_id = invitation.redemption.booking_id if invitation.redemption else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._invitation, name)


@invites.route("")
class Invitations(MethodView):
    @invites.arguments(c.InvitationIn())
    @invites.response(201, c.InvitationOut)
    @links(invites, 201, INVITATION_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a private invitation link (expires in 7 days unless told otherwise)."""
        hours = data.pop("expires_in_hours", None)
        if data.get("expires_at") is None:
            data["expires_at"] = utcnow() + timedelta(hours=hours or 24 * 7)
        with unit_of_work() as session:
            return _PresentedInvitation(invitations.create_invitation(session=session, **data))


@invites.route("/<uuid:invitation_id>")
class InvitationItem(MethodView):
    @invites.response(200, c.InvitationOut)
    def get(self, invitation_id: uuid.UUID) -> Any:
        """Read an invitation (whether it was used, and by which booking)."""
        return _PresentedInvitation(
            invitations.get_invitation(session=get_session(), invitation_id=invitation_id)
        )

    @invites.response(200, c.InvitationOut)
    def delete(self, invitation_id: uuid.UUID) -> Any:
        """Revoke an invitation: its link stops working."""
        with unit_of_work() as session:
            return _PresentedInvitation(
                invitations.revoke_invitation(session=session, invitation_id=invitation_id)
            )
