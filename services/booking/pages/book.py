"""Booking steps: appointment type, provider (or first available), day and time, details; then the booking."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import abort, g, redirect, render_template, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from services.booking import invitations, sameday, search, service
from services.booking.catalog import service as catalog
from services.booking.models import AppointmentType, Provider
from services.booking.pages import forms
from services.booking.pages.common import (
    ANY,
    Entry,
    SlotOption,
    bp,
    build_picker,
    chosen_zone,
    clock,
    step_plan,
    to_zone,
    visit_zone,
)
from services.booking.pages.i18n import N_, current_language
from shared.db import get_session, unit_of_work
from shared.fields import parse_id
from shared.links import current_signer
from shared.problems import Conflict, NotFound, Unprocessable

SLOT_TAKEN = {"slot-unavailable", "daily-limit"}


def _route(rule: str, step: str, methods: tuple[str, ...] = ("GET",)) -> Any:
    """Register a step under the public prefix and the invitation prefix."""

    def decorator(view: Any) -> Any:
        bp.add_url_rule(f"/book/<clinic_slug>{rule}", f"book_{step}", view, methods=methods)
        bp.add_url_rule(f"/invite/<token>{rule}", f"invite_{step}", view, methods=methods)
        return view

    return decorator


def entry_of(clinic_slug: str | None, token: str | None, *, usable: bool = True) -> Entry:
    """How the patient arrived: the clinic's public link (``clinic_slug``) or an invitation (``token``)."""
    session = get_session()
    if token is not None:
        invitation = invitations.invitation_for_link(
            session=session, signer=current_signer(), token=token, usable=usable
        )
        return Entry(
            clinic=invitation.clinic,
            token=token,
            invitation=invitation,
            provider_id=invitation.provider_id,
            clinic_types=catalog.list_appointment_types(session=session, clinic_id=invitation.clinic_id),
        )
    clinic = catalog.get_clinic_by_slug(session=session, slug=clinic_slug or "")
    return Entry(
        clinic=clinic,
        provider_id=parse_id(request.args.get("provider", "")),
        clinic_types=catalog.list_appointment_types(session=session, clinic_id=clinic.id),
    )


def _kind(entry: Entry, type_slug: str) -> AppointmentType:
    # Only the named type's providers need loading to know whether this entry offers it.
    for kind in entry.clinic_types:
        if kind.slug == type_slug and kind in entry.offered_types(among=[kind]):
            return kind
    raise NotFound(N_("This appointment type is not offered here."))


def _who(entry: Entry, kind: AppointmentType, who: str) -> Provider | None:
    if who == ANY:
        return None
    for provider in entry.providers_for(kind):
        if str(provider.id) == who:
            return provider
    raise NotFound(N_("This provider does not offer this appointment type here."))


@_route("", "types")
def types_step(clinic_slug: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """Step 1: what kind of appointment."""
    entry = entry_of(clinic_slug, token)
    kinds = entry.offered_types()
    tz, chosen = chosen_zone(entry.clinic.time_zone)
    if len(kinds) == 1 and (entry.invitation is not None or entry.provider_id is not None):
        return redirect(entry.url("providers", type_slug=kinds[0].slug, **({"tz": tz} if chosen else {})))
    return render_template(
        "pages/types.html",
        entry=entry,
        clinic=entry.clinic,
        kinds=kinds,
        tz=tz,
        tz_chosen=chosen,
        plan=step_plan(entry, None),
    )


@_route("/<type_slug>", "providers")
def providers_step(
    type_slug: str, clinic_slug: str | None = None, token: str | None = None
) -> ResponseReturnValue:
    """Step 2: with whom (or whoever is free first)."""
    entry = entry_of(clinic_slug, token)
    kind = _kind(entry, type_slug)
    providers = entry.providers_for(kind)
    tz, chosen = chosen_zone(entry.clinic.time_zone)
    if len(providers) == 1:
        return redirect(
            entry.url("slots", type_slug=kind.slug, who=providers[0].id, **({"tz": tz} if chosen else {}))
        )
    return render_template(
        "pages/providers.html",
        entry=entry,
        clinic=entry.clinic,
        kind=kind,
        providers=providers,
        tz=tz,
        tz_chosen=chosen,
        plan=step_plan(entry, kind),
    )


@_route("/<type_slug>/<who>", "slots")
def slots_step(
    type_slug: str, who: str, clinic_slug: str | None = None, token: str | None = None
) -> ResponseReturnValue:
    """Step 3: a day and a time, from real free slots, in the patient's zone."""
    entry = entry_of(clinic_slug, token)
    kind = _kind(entry, type_slug)
    provider = _who(entry, kind, who)
    tz, chosen = chosen_zone(entry.clinic.time_zone)
    session = get_session()
    if provider is not None:
        provider_id = provider.id

        def find(start: datetime, end: datetime) -> list[tuple[datetime, int]]:
            starts = search.find_slots(
                session=session, provider_id=provider_id, appointment_type_id=kind.id, start=start, end=end
            )
            return [(at, provider_id) for at in starts]

    else:
        allowed = [p.id for p in entry.providers_for(kind)]

        def find(start: datetime, end: datetime) -> list[tuple[datetime, int]]:
            return search.first_available_slots(
                session=session, appointment_type_id=kind.id, start=start, end=end, provider_ids=allowed
            )

    # An in-clinic visit's times are the clinic's: the patient walks in at that hour wherever their phone is.
    shown = visit_zone(kind, entry.clinic, tz)
    picker = build_picker(find, shown, horizon_days=kind.horizon_days)

    # Dozens of links share two paths: build each path once and only vary the query.
    slots_path = entry.url("slots", type_slug=kind.slug, who=who)
    details_path = entry.url("details", type_slug=kind.slug, who=who)

    def page_url(**args: Any) -> str:
        return f"{slots_path}?{urlencode({'tz': tz, **args})}"

    def slot_url(option: SlotOption) -> str:
        query = {"start": option.start.isoformat(), "provider_id": option.provider_id, "tz": tz}
        return f"{details_path}?{urlencode(query)}"

    return render_template(
        "pages/slots.html",
        page_url=page_url,
        slot_url=slot_url,
        clinic=entry.clinic,
        entry=entry,
        kind=kind,
        provider=provider,
        who=who,
        picker=picker,
        tz=tz,
        tz_chosen=chosen,
        shown_tz=shown,
        providers=entry.providers_for(kind),
        plan=step_plan(entry, kind),
    )


def _details_page(
    entry: Entry,
    kind: AppointmentType,
    who: str,
    *,
    tz: str,
    slot: SlotOption,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    alternatives: list[SlotOption] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    provider = _provider_of(entry, kind, slot.provider_id)
    return (
        render_template(
            "pages/details.html",
            entry=entry,
            clinic=entry.clinic,
            slot_day=to_zone(slot.start, visit_zone(kind, entry.clinic, tz)).date().isoformat(),
            kind=kind,
            who=who,
            tz=tz,
            tz_chosen=True,
            slot=slot,
            provider=provider,
            values=values,
            errors=errors or {},
            alternatives=alternatives,
            notice=notice,
            reasons=forms.REASONS,
            plan=step_plan(entry, kind),
        ),
        status,
    )


def _provider_of(entry: Entry, kind: AppointmentType, provider_id: int) -> Provider:
    for provider in entry.providers_for(kind):
        if provider.id == provider_id:
            return provider
    raise NotFound(N_("This provider does not offer this appointment type here."))


def _slot_option(start: datetime, provider_id: int, tz: str) -> SlotOption:
    return SlotOption(start, provider_id, clock(to_zone(start, tz)))


def _prefill(entry: Entry) -> dict[str, Any]:
    if entry.invitation is not None and entry.invitation.prefill:
        return {k: v for k, v in entry.invitation.prefill.items() if v}
    return {}


@_route("/<type_slug>/<who>/details", "details", methods=("GET", "POST"))
def details_step(
    type_slug: str, who: str, clinic_slug: str | None = None, token: str | None = None
) -> ResponseReturnValue:
    """Step 4: the patient's details (and the intake for a first consultation); POST books."""
    # A repeated submission of a spent single-use invitation must still find its booking (idempotent replay),
    # so the POST lets the booking operation judge whether the invitation may be used.
    entry = entry_of(clinic_slug, token, usable=request.method == "GET")
    kind = _kind(entry, type_slug)
    _who(entry, kind, who)
    tz, _ = chosen_zone(entry.clinic.time_zone)
    try:
        choice = forms.SlotChoice().load({k: request.values.get(k) for k in ("start", "provider_id")})
    except ValidationError:
        abort(redirect(entry.url("slots", type_slug=kind.slug, who=who, tz=tz)))
    slot = _slot_option(choice["start"], choice["provider_id"], tz)
    if request.method == "GET":
        values = {"time_zone": tz, "idempotency_key": secrets.token_urlsafe(16), **_prefill(entry)}
        return _details_page(entry, kind, who, tz=tz, slot=slot, values=values)
    return _submit_details(entry, kind, who, tz=tz, slot=slot)


def _submit_details(
    entry: Entry, kind: AppointmentType, who: str, *, tz: str, slot: SlotOption
) -> ResponseReturnValue:
    """Check the posted details and book; a problem re-renders the page with the answers kept."""
    values = forms.form_values(request.form)
    values["time_zone"] = tz
    page: dict[str, Any] = {"tz": tz, "slot": slot, "values": values}
    if g.get("stale_form"):
        values["idempotency_key"] = secrets.token_urlsafe(16)
        notice = N_(
            "For your security this form had expired. Your answers are kept: check them and book again."
        )
        return _details_page(entry, kind, who, notice=notice, status=400, **page)
    details, intake, errors = _load_details(kind, values)
    escort, escort_errors = load_escort(values) if kind.requires_escort else (None, {})
    errors.update(escort_errors)
    if errors:
        return _details_page(entry, kind, who, errors=errors, status=422, **page)
    try:
        manage_token = _book(entry, kind, details, intake, escort)
    except Conflict as exc:
        if exc.slug == sameday.SLUG:
            notice = N_("You already have this kind of appointment on that day; please choose another day.")
            return _details_page(entry, kind, who, notice=notice, status=409, **page)
        if exc.slug not in SLOT_TAKEN:
            raise
        alternatives = [
            _slot_option(datetime.fromisoformat(a), details["provider_id"], tz)
            for a in exc.extra.get("alternatives", [])
        ]
        return _details_page(entry, kind, who, alternatives=alternatives, status=409, **page)
    except Unprocessable as exc:
        field_errors = forms.flat_errors(
            {k.removeprefix("patient."): v for k, v in _flatten(exc.errors.get("json", {})).items()}
        )
        if not field_errors:
            raise
        return _details_page(entry, kind, who, errors=field_errors, status=422, **page)
    return redirect(_manage_url(manage_token, done="booked"), code=303)


def _load_details(
    kind: AppointmentType, values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, str]]:
    """The details form (and the intake when the type asks for one), with every field's error."""
    errors: dict[str, str] = {}
    details: dict[str, Any] = {}
    intake: dict[str, Any] | None = None
    try:
        details = forms.DetailsForm().load(values)
    except ValidationError as exc:
        errors.update(forms.flat_errors(exc.messages_dict))
    if kind.asks_intake:
        try:
            intake = forms.IntakeForm().load(values)
        except ValidationError as exc:
            errors.update(forms.flat_errors(exc.messages_dict))
    return details, intake, errors


def load_escort(
    values: dict[str, Any], *, required: bool = False
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The escort the form gives (None if blank and not required: it may come later), or the errors."""
    if not required and not forms.EscortForm.given(values):
        return None, {}
    try:
        return forms.EscortForm.escort(forms.EscortForm().load(values)), {}
    except ValidationError as exc:
        return None, forms.flat_errors(exc.messages_dict)


def _book(
    entry: Entry,
    kind: AppointmentType,
    details: dict[str, Any],
    intake: dict[str, Any] | None,
    escort: dict[str, Any] | None,
) -> str:
    """Book the checked details and return the booking's manage token."""
    key = details.get("idempotency_key")
    with unit_of_work() as session:
        booking, _ = service.book_appointment(
            session=session,
            provider_id=details["provider_id"],
            appointment_type_id=kind.id,
            start=details["start"],
            patient={k: details[k] for k in ("name", "email", "phone", "time_zone", "sms_consent")}
            | {"language": current_language()},
            intake=intake,
            escort=escort,
            invitation_id=entry.invitation.id if entry.invitation is not None else None,
            idempotency_key=f"page-{key}" if key else None,
        )
        return service.manage_token(current_signer(), booking)


def _flatten(errors: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in errors.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _manage_url(token: str, **args: Any) -> str:
    from flask import url_for

    return url_for("pages.manage_booking", token=token, **args)
