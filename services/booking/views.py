"""HTTP API of the booking service: slots (public), bookings (staff), a patient's own booking (signed)."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.booking import attendance, escorts, relink, search, service
from services.booking import schemas as s
from services.booking.catalog import service as catalog
from services.booking.catalog import views as catalog_views
from services.booking.models import Booking
from services.booking.readiness import views as readiness_views
from services.booking.resources import schemas as resource_schemas
from services.booking.resources import service as resources
from services.booking.resources import views as resource_views
from services.booking.runtime import get_runtime
from shared.api import API_PREFIX, ProblemSchema, links, public
from shared.db import get_read_session, get_session, unit_of_work
from shared.links import current_signer, manage_url
from shared.problems import BadRequest
from shared.timeutil import to_zone

slots = public(
    Blueprint("slots", __name__, url_prefix=f"{API_PREFIX}/slots", description="Free slots (public)")
)
bookings = Blueprint(
    "bookings", __name__, url_prefix=f"{API_PREFIX}/bookings", description="Bookings (staff)"
)
# The signed link is the credential.
manage = public(
    Blueprint(
        "manage",
        __name__,
        url_prefix=f"{API_PREFIX}/manage",
        description="A patient's own booking, by signed link",
    )
)
BLUEPRINTS = (
    *catalog_views.BLUEPRINTS,
    resource_views.blueprint,
    slots,
    bookings,
    manage,
    readiness_views.blueprint,
)
# (The course API's blueprint imports helpers from this module; app.py registers it after these.)
_BOOKING = f"{API_PREFIX}/bookings/{{booking_id}}"
BOOKING_LINKS = {
    "GetBooking": ("get", _BOOKING, "booking_id"),
    "GetBookingEvents": ("get", f"{_BOOKING}/events", "booking_id"),
    "RescheduleBooking": ("post", f"{_BOOKING}/reschedule", "booking_id"),
    "CancelBooking": ("post", f"{_BOOKING}/cancel", "booking_id"),
}


class _Presented:
    """A booking with its current manage link, for dumping."""

    def __init__(self, booking: Booking) -> None:
        self._booking = booking
        self.manage_token = service.manage_token(current_signer(), booking)
        self.manage_url = manage_url(get_runtime().config.booking_public_url, self.manage_token)
        self.time_zone = booking.patient.time_zone

    @property
    def escort_status(self) -> escorts.EscortStatus:
        return escorts.status(self._booking)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._booking, name)


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
    @slots.arguments(s.SlotQuery(), location="query")
    @slots.response(200, s.SlotsOut)
    def get(self, args: dict[str, Any]) -> Any:
        """Free slots of one provider for one appointment type, expressed in the zone ``tz``."""
        # Rendered by the search module from its cache (the schema above documents the shape). Public and hot,
        # and only reads: statements without a transaction around them.
        body = search.slots_json(
            session=get_read_session(),
            provider_id=args["provider_id"],
            appointment_type_id=args["appointment_type_id"],
            start=args["start"],
            end=args["end"],
            tz=args.get("tz"),
        )
        return Response(body, mimetype="application/json")


# --- bookings ------------------------------------------------------------------------------------------


def idempotency_key() -> str | None:
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


def request_fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@bookings.route("")
class Bookings(MethodView):
    @bookings.arguments(s.BookingFilter(), location="query")
    @bookings.response(200, s.BookingPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List bookings, by start time."""
        rows, total = service.list_bookings(session=get_session(), **args)
        return {"total": total, "items": [_Presented(b) for b in rows]}

    @bookings.arguments(s.BookingIn())
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
    @links(bookings, 201, BOOKING_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Book a slot. A repeated Idempotency-Key returns its booking (header Idempotent-Replayed)."""
        key = idempotency_key()
        with unit_of_work() as session:
            booking, created = service.book_appointment(
                session=session,
                idempotency_key=key,
                request_hash=request_fingerprint(data) if key else None,
                **data,
            )
            presented = _Presented(booking)
        return presented, 201, {} if created else {"Idempotent-Replayed": "true"}


@bookings.route("/<uuid:booking_id>")
class BookingItem(MethodView):
    @bookings.response(200, s.BookingOut)
    def get(self, booking_id: uuid.UUID) -> Any:
        """Read a booking."""
        return _Presented(service.get_booking(session=get_session(), booking_id=booking_id))


@bookings.route("/<uuid:booking_id>/events")
class BookingEvents(MethodView):
    @bookings.response(200, s.BookingEventOut(many=True))
    @bookings.alt_response(404, schema=ProblemSchema, description="No such booking")
    def get(self, booking_id: uuid.UUID) -> Any:
        """List the events a booking recorded (its part of the timeline), oldest first."""
        return service.booking_events(session=get_session(), booking_id=booking_id)


@bookings.route("/<uuid:booking_id>/reschedule")
class BookingReschedule(MethodView):
    @bookings.arguments(s.RescheduleIn())
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
    @bookings.arguments(s.CancelIn(), required=False)
    @bookings.response(200, s.BookingOut)
    def post(self, data: dict[str, Any], booking_id: uuid.UUID) -> Any:
        """Cancel a booking (cancelling a cancelled booking changes nothing)."""
        with unit_of_work() as session:
            booking, _ = service.cancel_booking(session=session, booking_id=booking_id, by="staff", **data)
            return _Presented(booking)


@bookings.route("/<uuid:booking_id>/resource")
class BookingResource(MethodView):
    @bookings.arguments(resource_schemas.MoveIn())
    @bookings.response(200, s.BookingOut)
    @bookings.alt_response(409, schema=ProblemSchema, description="That resource is taken then")
    def put(self, data: dict[str, Any], booking_id: uuid.UUID) -> Any:
        """Move a booking to another chair or room and pin it there (its version does not change)."""
        with unit_of_work() as session:
            booking = service.get_booking(session=session, booking_id=booking_id)
            return _Presented(resources.move(session=session, booking=booking, **data))


@bookings.route("/<uuid:booking_id>/attendance")
class BookingAttendance(MethodView):
    @bookings.response(200, s.AttendanceOut)
    @bookings.alt_response(404, schema=ProblemSchema, description="No such booking")
    def get(self, booking_id: uuid.UUID) -> Any:
        """Read whether the patient confirmed (when, how), declined, arrived or did not come."""
        return attendance.get_attendance(session=get_session(), booking_id=booking_id)

    @bookings.arguments(s.AttendanceIn())
    @bookings.response(200, s.AttendanceOut)
    @bookings.alt_response(404, schema=ProblemSchema, description="No such booking")
    @bookings.alt_response(409, schema=ProblemSchema, description="The booking is cancelled")
    def put(self, data: dict[str, Any], booking_id: uuid.UUID) -> Any:
        """Record attendance: a confirmation taken by phone, an arrival, a no-show."""
        with unit_of_work() as session:
            return attendance.set_attendance(session=session, booking_id=booking_id, **data)


@bookings.route("/<uuid:booking_id>/escort")
class BookingEscort(MethodView):
    @bookings.response(200, s.EscortOut)
    @bookings.alt_response(404, schema=ProblemSchema, description="No such booking")
    def get(self, booking_id: uuid.UUID) -> Any:
        """Read the booking's escort state (not_needed, missing, unconfirmed, confirmed) and escort."""
        return escorts.status(service.get_booking(session=get_session(), booking_id=booking_id))

    @bookings.arguments(s.EscortIn())
    @bookings.response(200, s.EscortOut)
    @bookings.alt_response(404, schema=ProblemSchema, description="No such booking")
    @bookings.alt_response(409, schema=ProblemSchema, description="The booking is cancelled or past")
    def put(self, data: dict[str, Any], booking_id: uuid.UUID) -> Any:
        """Give or change the escort (a new phone is a new escort, asked again to confirm)."""
        with unit_of_work() as session:
            return escorts.set_escort(session=session, booking_id=booking_id, details=data)

    @bookings.response(200, s.EscortOut)
    @bookings.alt_response(404, schema=ProblemSchema, description="No such booking")
    @bookings.alt_response(409, schema=ProblemSchema, description="The booking is cancelled or past")
    def delete(self, booking_id: uuid.UUID) -> Any:
        """Remove the escort (removing none changes nothing)."""
        with unit_of_work() as session:
            return escorts.remove_escort(session=session, booking_id=booking_id)


@bookings.route("/<uuid:booking_id>/escort/confirmation")
class BookingEscortConfirmation(MethodView):
    @bookings.response(200, s.EscortOut)
    @bookings.alt_response(404, schema=ProblemSchema, description="No such booking")
    @bookings.alt_response(409, schema=ProblemSchema, description="No escort, or the booking is cancelled")
    def post(self, booking_id: uuid.UUID) -> Any:
        """Record that the escort confirmed to staff by phone."""
        with unit_of_work() as session:
            return escorts.confirm_by_staff(session=session, booking_id=booking_id)


# --- a patient's own booking, by signed link -------------------------------------------------------------


@manage.route("/<string:token>")
class ManagedBooking(MethodView):
    @manage.response(200, s.ManagedBookingOut)
    @manage.alt_response(404, schema=ProblemSchema, description="Not a valid link")
    @manage.alt_response(410, schema=ProblemSchema, description="The link has expired")
    @manage.alt_response(409, schema=ProblemSchema, description="A newer link replaced this one")
    def get(self, token: str) -> Any:
        """See the booking this link was sent for."""
        return _Presented(
            service.booking_for_link(session=get_session(), signer=current_signer(), token=token)
        )


@manage.route("/<string:token>/slots")
class ManagedSlots(MethodView):
    @manage.arguments(s.ManagedSlotQuery(), location="query")
    @manage.response(200, s.SlotsOut)
    def get(self, args: dict[str, Any], token: str) -> Any:
        """Free slots this booking could move to."""
        session = get_session()
        booking = service.booking_for_link(session=session, signer=current_signer(), token=token)
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
    @manage.arguments(s.RescheduleIn())
    @manage.response(200, s.ManagedBookingOut)
    def post(self, data: dict[str, Any], token: str) -> Any:
        """Move this booking; the answer carries the new manage link (the old one stops working)."""
        with unit_of_work() as session:
            booking = service.booking_for_link(session=session, signer=current_signer(), token=token)
            booking = service.reschedule_booking(session=session, booking_id=booking.id, by="patient", **data)
            return _Presented(booking)


@manage.route("/<string:token>/cancel")
class ManagedCancel(MethodView):
    @manage.arguments(s.CancelIn(), required=False)
    @manage.response(200, s.ManagedBookingOut)
    def post(self, data: dict[str, Any], token: str) -> Any:
        """Cancel this booking."""
        with unit_of_work() as session:
            booking = service.booking_for_link(session=session, signer=current_signer(), token=token)
            booking, _ = service.cancel_booking(session=session, booking_id=booking.id, by="patient", **data)
            return _Presented(booking)


LINK_SENT = "If we have a way to reach you, a new link is on its way."


@manage.route("/<string:token>/send-link")
class ManagedSendLink(MethodView):
    @manage.response(202, s.LinkSentOut)
    @manage.alt_response(404, schema=ProblemSchema, description="Not a valid link")
    @manage.alt_response(410, schema=ProblemSchema, description="The link has expired")
    def post(self, token: str) -> Any:
        """Send this booking's current link to the patient's phone and email on file (any of its links,
        older or cancelled ones too; LINK_RESEND_PER_HOUR times an hour); the same answer either way."""
        with unit_of_work() as session:
            relink.request_current_link(
                session=session,
                signer=current_signer(),
                token=token,
                per_hour=get_runtime().config.link_resend_per_hour,
            )
        return {"detail": LINK_SENT}


@manage.route("/<string:token>/escort")
class ManagedEscort(MethodView):
    @manage.arguments(s.EscortIn())
    @manage.response(200, s.EscortOut)
    @manage.alt_response(404, schema=ProblemSchema, description="Not a valid link")
    @manage.alt_response(410, schema=ProblemSchema, description="The link has expired")
    @manage.alt_response(409, schema=ProblemSchema, description="Cancelled, past, or a newer link exists")
    def put(self, data: dict[str, Any], token: str) -> Any:
        """Give or change who takes the patient home."""
        with unit_of_work() as session:
            booking = service.booking_for_link(session=session, signer=current_signer(), token=token)
            return escorts.set_escort(session=session, booking_id=booking.id, details=data)

    @manage.response(200, s.EscortOut)
    @manage.alt_response(404, schema=ProblemSchema, description="Not a valid link")
    @manage.alt_response(410, schema=ProblemSchema, description="The link has expired")
    @manage.alt_response(409, schema=ProblemSchema, description="Cancelled, past, or a newer link exists")
    def delete(self, token: str) -> Any:
        """Remove the escort."""
        with unit_of_work() as session:
            booking = service.booking_for_link(session=session, signer=current_signer(), token=token)
            return escorts.remove_escort(session=session, booking_id=booking.id)
