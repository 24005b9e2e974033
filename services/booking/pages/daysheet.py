"""The staff day sheet: a day's sessions per provider with chair, attendance and flags, newest change first.

Opened from a signed ``day_sheet`` link (``/staff/day/<token>``, public: the token is the credential) or with
the staff key (``/staff/day?clinic_id=&day=``: a route of its own blueprint, so the key check applies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from services.booking.models import Clinic
from services.booking.pages.common import bp
from services.booking.readiness import service
from services.booking.readiness.schemas import ReadinessFilter
from services.booking.runtime import get_runtime
from shared.db import get_session
from shared.problems import Unprocessable

# Not public: the app checks the staff key before any of its views run. Bad input is problem+json.
staff_bp = Blueprint("staff_pages", __name__)
_FILTER = ReadinessFilter()


@dataclass(frozen=True)
class ProviderDay:
    """One provider's sessions of the day, newest change first."""

    name: str
    rows: list[service.ReadinessRow]


def _by_provider(rows: Sequence[service.ReadinessRow]) -> list[ProviderDay]:
    groups: dict[tuple[str, int], list[service.ReadinessRow]] = {}
    for row in rows:  # already newest change first; each group keeps that order
        groups.setdefault((row.provider_name, row.provider_id), []).append(row)
    return [ProviderDay(name, found) for (name, _), found in sorted(groups.items())]


def _sheet(clinic: Clinic, day: date, provider_id: int | None) -> ResponseReturnValue:
    rows = service.readiness(
        session=get_session(),
        clinic_id=clinic.id,
        day=day,
        provider_id=provider_id,
        checklists=get_runtime().checklists,
    )
    counts = {
        "sessions": len(rows),
        "confirmed": sum(r.attendance.state in ("confirmed", "arrived") for r in rows),
        "call": sum(r.checklist == "call" for r in rows),
        "unanswered": sum(r.checklist == "unanswered" for r in rows),
        "escort_missing": sum(r.escort.state == "missing" for r in rows),
    }
    return render_template(
        "pages/day_sheet.html",
        clinic=clinic,
        day=day,
        providers=_by_provider(rows),
        counts=counts,
        tz=clinic.time_zone,
        tz_chosen=False,
    )


@bp.get("/staff/day/<token>")
def day_sheet_link(token: str) -> ResponseReturnValue:
    """The day sheet a signed link was made for (one clinic's day, or one provider's sessions of it)."""
    scope = service.open_day_sheet(session=get_session(), signer=get_runtime().signer, token=token)
    return _sheet(scope.clinic, scope.day, scope.provider_id)


@staff_bp.get("/staff/day")
def day_sheet() -> ResponseReturnValue:
    """The day sheet of ``?clinic_id=&day=`` (and ``provider_id=``), for a caller with the staff key."""
    try:
        args = _FILTER.load(request.args.to_dict())
    except ValidationError as exc:
        raise Unprocessable("The query is not valid.", errors={"query": exc.messages}) from exc
    clinic = service.get_clinic(session=get_session(), clinic_id=args["clinic_id"])
    return _sheet(clinic, args["day"], args.get("provider_id"))
