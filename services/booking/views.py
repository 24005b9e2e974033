"""HTTP API of the booking service: staff endpoints (API key) and patient endpoints (signed manage links).

Views are thin: a schema loads the request, one service function does the work, a schema dumps the result.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, timedelta
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.booking import catalog, invitations, search, service
from services.booking import schemas as s
from services.booking.models import Booking
from shared.api import API_PREFIX, ProblemSchema, staff_only
from shared.db import get_session, unit_of_work
from shared.links import LinkSigner, manage_url
from shared.problems import BadRequest
from shared.timeutil import to_zone, utcnow

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
slots = Blueprint("slots", __name__, url_prefix=f"{API_PREFIX}/slots", description="Free slots (public)")
bookings = Blueprint(
    "bookings", __name__, url_prefix=f"{API_PREFIX}/bookings", description="Bookings (staff)"
)
manage = Blueprint(
    "manage",
    __name__,
    url_prefix=f"{API_PREFIX}/manage",
    description="A patient's own booking, by signed link",
)
invites = Blueprint(
    "invitations",
    __name__,
    url_prefix=f"{API_PREFIX}/invitations",
    description="Private booking links for one patient (staff)",
)
BLUEPRINTS = (clinics, providers, types, patients, slots, bookings, manage, invites)


def _signer() -> LinkSigner:
    signer: LinkSigner = current_app.extensions["link_signer"]
    return signer


class _Presented:
    """A booking with its current manage link, for dumping."""

    def __init__(self, booking: Booking) -> None:
        self._booking = booking
        self.manage_token = service.manage_token(_signer(), booking)
        self.manage_url = manage_url(
            current_app.extensions["suite_config"].booking_public_url, self.manage_token
        )
        self.time_zone = booking.patient.time_zone

    def __getattr__(self, name: str) -> Any:
        return getattr(self._booking, name)


# --- clinics -------------------------------------------------------------------------------------------


@clinics.route("")
class Clinics(MethodView):
    @staff_only(clinics)
    @clinics.response(200, s.ClinicOut(many=True))
    def get(self) -> Any:
        """List clinics."""
        return catalog.list_clinics(session=get_session())

    @staff_only(clinics)
    @clinics.arguments(s.ClinicIn)
    @clinics.response(201, s.ClinicOut)
    @clinics.alt_response(409, schema=ProblemSchema, description="Slug taken")
    def post(self, data: dict[str, Any]) -> Any:
        """Create a clinic."""
        with unit_of_work() as session:
            return catalog.create_clinic(session=session, **data)


@clinics.route("/<int:clinic_id>")
class ClinicItem(MethodView):
    @staff_only(clinics)
    @clinics.response(200, s.ClinicOut)
    def get(self, clinic_id: int) -> Any:
        """Read a clinic."""
        return catalog.get_clinic(session=get_session(), clinic_id=clinic_id)

    @staff_only(clinics)
    @clinics.arguments(s.ClinicPatch)
    @clinics.response(200, s.ClinicOut)
    def patch(self, data: dict[str, Any], clinic_id: int) -> Any:
        """Change a clinic."""
        with unit_of_work() as session:
            return catalog.update_clinic(session=session, clinic_id=clinic_id, changes=data)


# --- providers -----------------------------------------------------------------------------------------


@providers.route("")
class Providers(MethodView):
    @staff_only(providers)
    @providers.arguments(s.ClinicFilter, location="query")
    @providers.response(200, s.ProviderOut(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List providers."""
        return catalog.list_providers(session=get_session(), clinic_id=args.get("clinic_id"))

    @staff_only(providers)
    @providers.arguments(s.ProviderIn)
    @providers.response(201, s.ProviderOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a provider."""
        with unit_of_work() as session:
            return catalog.create_provider(session=session, **data)


@providers.route("/<int:provider_id>")
class ProviderItem(MethodView):
    @staff_only(providers)
    @providers.response(200, s.ProviderOut)
    def get(self, provider_id: int) -> Any:
        """Read a provider."""
        return catalog.get_provider(session=get_session(), provider_id=provider_id)

    @staff_only(providers)
    @providers.arguments(s.ProviderPatch)
    @providers.response(200, s.ProviderOut)
    def patch(self, data: dict[str, Any], provider_id: int) -> Any:
        """Change a provider."""
        with unit_of_work() as session:
            return catalog.update_provider(session=session, provider_id=provider_id, changes=data)


@providers.route("/<int:provider_id>/availability")
class WeeklyAvailability(MethodView):
    @staff_only(providers)
    @providers.response(200, s.WeeklyAvailabilityOut)
    def get(self, provider_id: int) -> Any:
        """Read a provider's weekly hours (in the provider's zone)."""
        rules = catalog.weekly_availability(session=get_session(), provider_id=provider_id)
        return {"provider_id": provider_id, "rules": rules}

    @staff_only(providers)
    @providers.arguments(s.WeeklyAvailabilityIn)
    @providers.response(200, s.WeeklyAvailabilityOut)
    def put(self, data: dict[str, Any], provider_id: int) -> Any:
        """Replace a provider's weekly hours."""
        with unit_of_work() as session:
            rules = catalog.set_weekly_availability(
                session=session,
                provider_id=provider_id,
                rules=[(r["weekday"], r["start"], r["end"]) for r in data["rules"]],
            )
            return {"provider_id": provider_id, "rules": rules}


@providers.route("/<int:provider_id>/overrides")
class Overrides(MethodView):
    @staff_only(providers)
    @providers.arguments(s.OverrideRange, location="query")
    @providers.response(200, s.OverrideOut(many=True))
    def get(self, args: dict[str, Any], provider_id: int) -> Any:
        """List dated overrides of a provider's hours."""
        return catalog.list_overrides(
            session=get_session(),
            provider_id=provider_id,
            first_day=args.get("start"),
            last_day=args.get("end"),
        )


@providers.route("/<int:provider_id>/overrides/<isodate:day>")
class OverrideItem(MethodView):
    @staff_only(providers)
    @providers.arguments(s.OverrideIn)
    @providers.response(200, s.OverrideOut(many=True))
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

    @staff_only(providers)
    @providers.response(204)
    def delete(self, provider_id: int, day: date) -> None:
        """Remove one date's override (the weekly hours apply again)."""
        with unit_of_work() as session:
            catalog.get_provider(session=session, provider_id=provider_id)
            catalog.clear_override(session=session, provider_id=provider_id, day=day)


# --- appointment types ---------------------------------------------------------------------------------


@types.route("")
class AppointmentTypes(MethodView):
    @staff_only(types)
    @types.arguments(s.ClinicFilter, location="query")
    @types.response(200, s.AppointmentTypeOut(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List appointment types."""
        return catalog.list_appointment_types(session=get_session(), clinic_id=args.get("clinic_id"))

    @staff_only(types)
    @types.arguments(s.AppointmentTypeIn)
    @types.response(201, s.AppointmentTypeOut)
    @types.alt_response(409, schema=ProblemSchema, description="Slug taken in this clinic")
    def post(self, data: dict[str, Any]) -> Any:
        """Create an appointment type."""
        clinic_id = data.pop("clinic_id")
        with unit_of_work() as session:
            return catalog.create_appointment_type(session=session, clinic_id=clinic_id, fields=data)


@types.route("/<int:type_id>")
class AppointmentTypeItem(MethodView):
    @staff_only(types)
    @types.response(200, s.AppointmentTypeOut)
    def get(self, type_id: int) -> Any:
        """Read an appointment type."""
        return catalog.get_appointment_type(session=get_session(), type_id=type_id)

    @staff_only(types)
    @types.arguments(s.AppointmentTypePatch)
    @types.response(200, s.AppointmentTypeOut)
    def patch(self, data: dict[str, Any], type_id: int) -> Any:
        """Change an appointment type (existing bookings keep their times)."""
        with unit_of_work() as session:
            return catalog.update_appointment_type(session=session, type_id=type_id, changes=data)


# --- patients ------------------------------------------------------------------------------------------


@patients.route("")
class Patients(MethodView):
    @staff_only(patients)
    @patients.arguments(s.PatientIn)
    @patients.response(201, s.PatientOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Register a patient."""
        with unit_of_work() as session:
            return catalog.create_patient(session=session, **data)


@patients.route("/<uuid:patient_id>")
class PatientItem(MethodView):
    @staff_only(patients)
    @patients.response(200, s.PatientOut)
    def get(self, patient_id: uuid.UUID) -> Any:
        """Read a patient."""
        return catalog.get_patient(session=get_session(), patient_id=patient_id)


# --- slots ---------------------------------------------------------------------------------------------


def _slots_body(provider_id: int, type_id: int, tz: str | None, starts: list[Any]) -> dict[str, Any]:
    session = get_session()
    provider = catalog.get_provider(session=session, provider_id=provider_id)
    duration = search.rules_of(catalog.get_appointment_type(session=session, type_id=type_id)).duration
    zone_name = tz or provider.time_zone
    return {
        "provider_id": provider_id,
        "appointment_type_id": type_id,
        "time_zone": zone_name,
        "provider_time_zone": provider.time_zone,
        "slots": [
            {"start": to_zone(a, zone_name).isoformat(), "end": to_zone(a + duration, zone_name).isoformat()}
            for a in starts
        ],
    }


@slots.route("")
class Slots(MethodView):
    @slots.arguments(s.SlotQuery, location="query")
    @slots.response(200, s.SlotsOut)
    def get(self, args: dict[str, Any]) -> Any:
        """Free slots of one provider for one appointment type, expressed in the zone ``tz``."""
        # Rendered by the search module from its cache (the schema above documents the shape).
        body = search.slots_json(
            session=get_session(),
            provider_id=args["provider_id"],
            appointment_type_id=args["appointment_type_id"],
            start=args["start"],
            end=args["end"],
            tz=args.get("tz"),
        )
        return Response(body, mimetype="application/json")


# --- bookings ------------------------------------------------------------------------------------------


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255 or not key.isprintable():
        raise BadRequest(
            "Idempotency-Key must be 1-255 printable characters.",
            errors={"headers": {"Idempotency-Key": ["must be 1-255 printable characters"]}},
        )
    return key


def _fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@bookings.route("")
class Bookings(MethodView):
    @staff_only(bookings)
    @bookings.arguments(s.BookingFilter, location="query")
    @bookings.response(200, s.BookingPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List bookings, by start time."""
        rows, total = service.list_bookings(session=get_session(), **args)
        return {"total": total, "items": [_Presented(b) for b in rows]}

    @staff_only(bookings)
    @bookings.arguments(s.BookingIn)
    @bookings.response(201, s.BookingOut)
    @bookings.alt_response(
        409, schema=ProblemSchema, description="The slot is taken; alternatives are listed"
    )
    @bookings.doc(
        parameters=[
            {
                "in": "header",
                "name": "Idempotency-Key",
                "schema": {"type": "string", "maxLength": 255},
                "description": "Repeat a request with the same key and body to get the same booking back",
            }
        ]
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Book a slot. A repeated Idempotency-Key returns its booking (header Idempotent-Replayed)."""
        key = _idempotency_key()
        with unit_of_work() as session:
            booking, created = service.book_appointment(
                session=session, idempotency_key=key, request_hash=_fingerprint(data) if key else None, **data
            )
            presented = _Presented(booking)
        return presented, 201, {} if created else {"Idempotent-Replayed": "true"}


@bookings.route("/<uuid:booking_id>")
class BookingItem(MethodView):
    @staff_only(bookings)
    @bookings.response(200, s.BookingOut)
    def get(self, booking_id: uuid.UUID) -> Any:
        """Read a booking."""
        return _Presented(service.get_booking(session=get_session(), booking_id=booking_id))


@bookings.route("/<uuid:booking_id>/events")
class BookingEvents(MethodView):
    @staff_only(bookings)
    @bookings.response(200, s.BookingEventOut(many=True))
    @bookings.alt_response(404, schema=ProblemSchema, description="No such booking")
    def get(self, booking_id: uuid.UUID) -> Any:
        """List the events a booking recorded (its part of the timeline), oldest first."""
        return service.booking_events(session=get_session(), booking_id=booking_id)


@bookings.route("/<uuid:booking_id>/reschedule")
class BookingReschedule(MethodView):
    @staff_only(bookings)
    @bookings.arguments(s.RescheduleIn)
    @bookings.response(200, s.BookingOut)
    @bookings.alt_response(
        409, schema=ProblemSchema, description="Slot taken, booking cancelled or version moved"
    )
    def post(self, data: dict[str, Any], booking_id: uuid.UUID) -> Any:
        """Move a booking to another free slot."""
        with unit_of_work() as session:
            booking = service.reschedule_booking(session=session, booking_id=booking_id, **data)
            return _Presented(booking)


@bookings.route("/<uuid:booking_id>/cancel")
class BookingCancel(MethodView):
    @staff_only(bookings)
    @bookings.arguments(s.CancelIn)
    @bookings.response(200, s.BookingOut)
    def post(self, data: dict[str, Any], booking_id: uuid.UUID) -> Any:
        """Cancel a booking (cancelling a cancelled booking changes nothing)."""
        with unit_of_work() as session:
            booking, _ = service.cancel_booking(session=session, booking_id=booking_id, by="staff", **data)
            return _Presented(booking)


# --- a patient's own booking, by signed link -------------------------------------------------------------


@manage.route("/<string:token>")
class ManagedBooking(MethodView):
    @manage.response(200, s.ManagedBookingOut)
    @manage.alt_response(404, schema=ProblemSchema, description="Not a valid link")
    @manage.alt_response(410, schema=ProblemSchema, description="The link has expired")
    @manage.alt_response(409, schema=ProblemSchema, description="A newer link replaced this one")
    def get(self, token: str) -> Any:
        """See the booking this link was sent for."""
        return _Presented(service.booking_for_link(session=get_session(), signer=_signer(), token=token))


class ManagedSlotQuery(s._Strict):
    start = s._aware(required=True)
    end = s._aware(required=True)
    tz = s.TimeZone(load_default=None)


@manage.route("/<string:token>/slots")
class ManagedSlots(MethodView):
    @manage.arguments(ManagedSlotQuery, location="query")
    @manage.response(200, s.SlotsOut)
    def get(self, args: dict[str, Any], token: str) -> Any:
        """Free slots this booking could move to."""
        session = get_session()
        booking = service.booking_for_link(session=session, signer=_signer(), token=token)
        starts = search.find_slots(
            session=session,
            provider_id=booking.provider_id,
            appointment_type_id=booking.appointment_type_id,
            start=args["start"],
            end=args["end"],
            ignore_booking_id=booking.id,
        )
        return _slots_body(
            booking.provider_id,
            booking.appointment_type_id,
            args.get("tz") or booking.patient.time_zone,
            starts,
        )


@manage.route("/<string:token>/reschedule")
class ManagedReschedule(MethodView):
    @manage.arguments(s.RescheduleIn)
    @manage.response(200, s.ManagedBookingOut)
    def post(self, data: dict[str, Any], token: str) -> Any:
        """Move this booking; the answer carries the new manage link (the old one stops working)."""
        with unit_of_work() as session:
            booking = service.booking_for_link(session=session, signer=_signer(), token=token)
            booking = service.reschedule_booking(session=session, booking_id=booking.id, by="patient", **data)
            return _Presented(booking)


@manage.route("/<string:token>/cancel")
class ManagedCancel(MethodView):
    @manage.arguments(s.CancelIn)
    @manage.response(200, s.ManagedBookingOut)
    def post(self, data: dict[str, Any], token: str) -> Any:
        """Cancel this booking."""
        with unit_of_work() as session:
            booking = service.booking_for_link(session=session, signer=_signer(), token=token)
            booking, _ = service.cancel_booking(session=session, booking_id=booking.id, by="patient", **data)
            return _Presented(booking)


# --- invitations ---------------------------------------------------------------------------------------


class _PresentedInvitation:
    """An invitation with its signed link, for dumping (the pre-filled details stay out of the answer)."""

    def __init__(self, invitation: Any) -> None:
        self._invitation = invitation
        token = invitations.invitation_token(_signer(), invitation)
        self.url = invitations.invitation_url(
            current_app.extensions["suite_config"].booking_public_url, token
        )
        self.prefilled = bool(invitation.prefill)
        self.used_by_booking_id = invitation.redemption.booking_id if invitation.redemption else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._invitation, name)


@invites.route("")
class Invitations(MethodView):
    @staff_only(invites)
    @invites.arguments(s.InvitationIn)
    @invites.response(201, s.InvitationOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a private invitation link (expires in 7 days unless told otherwise)."""
        hours = data.pop("expires_in_hours", None)
        if data.get("expires_at") is None:
            data["expires_at"] = utcnow() + timedelta(hours=hours or 24 * 7)
        with unit_of_work() as session:
            return _PresentedInvitation(invitations.create_invitation(session=session, **data))


@invites.route("/<uuid:invitation_id>")
class InvitationItem(MethodView):
    @staff_only(invites)
    @invites.response(200, s.InvitationOut)
    def get(self, invitation_id: uuid.UUID) -> Any:
        """Read an invitation (whether it was used, and by which booking)."""
        return _PresentedInvitation(
            invitations.get_invitation(session=get_session(), invitation_id=invitation_id)
        )

    @staff_only(invites)
    @invites.response(200, s.InvitationOut)
    def delete(self, invitation_id: uuid.UUID) -> Any:
        """Revoke an invitation: its link stops working."""
        with unit_of_work() as session:
            return _PresentedInvitation(
                invitations.revoke_invitation(session=session, invitation_id=invitation_id)
            )
