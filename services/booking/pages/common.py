"""What the booking and manage pages share: how the patient arrived, the slot picker, time wording."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from flask import Blueprint, current_app, request, url_for
from flask_babel import gettext, ngettext
from markupsafe import Markup, escape

from services.booking.models import AppointmentType, Clinic, Invitation, Provider
from services.booking.pages.i18n import (
    clock,
    current_language,
    day_label,
    day_month,
    language_links,
    long_when,
    weekday,
)
from shared import links
from shared.api import public
from shared.events import VIDEO
from shared.problems import PROBLEM_MIMETYPE, NotFound
from shared.timeutil import day_bounds_utc, is_time_zone, local_date, time_zone_names, to_zone, utcnow

# Patients' pages: the clinic's public booking page, and signed invitation and manage links.
bp = public(
    Blueprint(
        "pages",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/pages/static",
    )
)

# The picker shows two weeks at a time: enough to choose from, small enough to render fast on a phone.
PICKER_DAYS = 14
ANY = "any"


def config() -> Any:
    """The booking service's settings."""
    return current_app.extensions["suite_config"]


@dataclass
class Entry:
    """How the patient arrived: a clinic's public link or a private invitation (and what it allows)."""

    clinic: Clinic
    token: str | None = None
    invitation: Invitation | None = None
    provider_id: int | None = None  # a per-provider public link, or an invitation for one provider

    @property
    def prefix(self) -> str:
        return "pages.invite_" if self.token else "pages.book_"

    def url(self, step: str, **values: Any) -> str:
        """The URL of ``step`` within this entry."""
        if self.provider_id is not None and not self.token and "who" not in values:
            values.setdefault("provider", self.provider_id)
        if self.token:
            return url_for(self.prefix + step, token=self.token, **values)
        return url_for(self.prefix + step, clinic_slug=self.clinic.slug, **values)

    def offered_types(self, among: Sequence[AppointmentType] | None = None) -> list[AppointmentType]:
        """Appointment types bookable through this entry (of ``among``, default all the clinic's), by id."""
        kinds = list(self.clinic_types if among is None else among)
        if self.invitation is not None and self.invitation.appointment_type_id is not None:
            kinds = [k for k in kinds if k.id == self.invitation.appointment_type_id]
        return [
            t for t in kinds if t.active and any(self.allows_provider(p) for p in t.providers if p.active)
        ]

    clinic_types: Sequence[AppointmentType] = field(default_factory=list)

    def allows_provider(self, provider: Provider) -> bool:
        """Whether this entry may book with ``provider``."""
        return self.provider_id is None or provider.id == self.provider_id

    def providers_for(self, kind: AppointmentType) -> list[Provider]:
        """Active providers offering ``kind`` through this entry, by id."""
        return sorted((p for p in kind.providers if p.active and self.allows_provider(p)), key=lambda p: p.id)


# The booking steps in order; a step an entry skips (one type through a private link, one provider) is not
# counted.
STEPS = ("types", "providers", "slots", "details")


def long_token(code: str, purpose: str) -> str:
    """The full signed token behind an SMS's short link of ``purpose`` (404 forged); an expired code gives an
    expired token, so its page says so and offers the way on."""
    signer = links.current_signer()
    try:
        claims = links.verify_short(signer.keys, code, purpose=purpose)
    except links.LinkError as exc:
        if exc.claims is None:
            raise NotFound("This link is not valid.", slug="link-invalid") from exc
        claims = exc.claims
    return signer.sign(
        purpose=purpose, subject=claims.subject, version=claims.version, expires_at=claims.expires_at
    )


def wants_problem() -> bool:
    """Whether the client asked for problem+json rather than a page (an API client holding a page link)."""
    best = request.accept_mimetypes.best_match(["text/html", PROBLEM_MIMETYPE])
    return best == PROBLEM_MIMETYPE


def step_plan(entry: Entry, kind: AppointmentType | None) -> tuple[str, ...] | None:
    """The steps this patient goes through (None when it depends on a type not chosen yet)."""
    if kind is None:
        kinds = entry.offered_types()
        plans = {step_plan(entry, k) for k in kinds}
        return plans.pop() if len(plans) == 1 else None
    skip = set()
    if (entry.invitation is not None or entry.provider_id is not None) and len(entry.offered_types()) == 1:
        skip.add("types")
    if len(entry.providers_for(kind)) == 1:
        skip.add("providers")
    return tuple(step for step in STEPS if step not in skip)


def visit_zone(kind: AppointmentType, clinic: Clinic, tz: str) -> str:
    """The zone a visit's times are shown in: the clinic's for an in-clinic visit, the patient's for video."""
    return tz if kind.mode == VIDEO else clinic.time_zone


def zone_gap(tz: str, other: str, at: datetime | None = None) -> str:
    """How ``tz`` differs from ``other`` at ``at``: ``is 3 hours behind``, ``is 1 hour ahead``..."""
    moment = at or utcnow()
    offset = to_zone(moment, tz).utcoffset() or timedelta()
    minutes = int((offset - (to_zone(moment, other).utcoffset() or timedelta())).total_seconds() // 60)
    if minutes == 0:
        return gettext("is the same")
    hours, rest = divmod(abs(minutes), 60)
    if rest:
        amount = f"{hours}:{rest:02d}"
        if minutes > 0:
            return gettext("is %(amount)s hours ahead", amount=amount)
        return gettext("is %(amount)s hours behind", amount=amount)
    if minutes > 0:
        return ngettext("is %(num)s hour ahead", "is %(num)s hours ahead", hours)
    return ngettext("is %(num)s hour behind", "is %(num)s hours behind", hours)


def chosen_zone(default: str) -> tuple[str, bool]:
    """The patient's zone from ``?tz=`` (or the form), else ``default``; and whether it was chosen."""
    raw = request.values.get("tz", "").strip()
    if raw and is_time_zone(raw):
        return raw, True
    return default, False


def parse_day(raw: str | None) -> date | None:
    """A ``YYYY-MM-DD`` query value, or None."""
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@dataclass(frozen=True)
class SlotOption:
    """One time the patient can pick."""

    start: datetime
    provider_id: int
    label: str


@dataclass
class Picker:
    """Two weeks of days (with how many times each has) and the times of the chosen day."""

    tz: str
    first_day: date
    days: list[tuple[date, int]]
    day: date | None
    times: list[SlotOption]
    earlier: date | None
    later: date

    @property
    def total(self) -> int:
        return sum(n for _, n in self.days)


Finder = Callable[[datetime, datetime], Sequence[tuple[datetime, int]]]


def build_picker(find: Finder, tz: str, *, horizon_days: int) -> Picker:
    """Run ``find`` over two weeks from ``?from=`` (default today) in ``tz`` and pick ``?day=``."""
    today = local_date(utcnow(), tz)
    first = parse_day(request.args.get("from")) or today
    first = max(today, min(first, today + timedelta(days=horizon_days)))
    start = day_bounds_utc(first, tz)[0]
    end = day_bounds_utc(first + timedelta(days=PICKER_DAYS - 1), tz)[1]
    by_day: dict[date, list[tuple[datetime, datetime, int]]] = {}
    for at, provider_id in find(start, end):
        local = to_zone(at, tz)
        by_day.setdefault(local.date(), []).append((at, local, provider_id))
    days = [(first + timedelta(days=n), 0) for n in range(PICKER_DAYS)]
    days = [(d, len(by_day.get(d, ()))) for d, _ in days]
    wanted = parse_day(request.args.get("day"))
    if wanted not in by_day:
        wanted = next((d for d, n in days if n), None)
    # Only the chosen day's times are shown, so only they are worded.
    shown = by_day.get(wanted, []) if wanted else []
    return Picker(
        tz=tz,
        first_day=first,
        days=days,
        day=wanted,
        times=[SlotOption(at, provider_id, clock(local)) for at, local, provider_id in shown],
        earlier=max(today, first - timedelta(days=PICKER_DAYS)) if first > today else None,
        later=first + timedelta(days=PICKER_DAYS),
    )


def clock_in(moment: datetime, tz: str) -> str:
    """``10:00 AM`` in ``tz``, in the page's language."""
    return clock(to_zone(moment, tz))


def when(moment: datetime, tz: str) -> str:
    """``Tuesday 3 March 2026, 10:00 AM`` in ``tz``, in the page's language."""
    return long_when(to_zone(moment, tz))


def zone_label(tz: str, at: datetime | None = None) -> str:
    """``London time (Europe/London, GMT)``: the zone's city and name, and its abbreviation at ``at``."""
    abbreviation = to_zone(at or utcnow(), tz).tzname() or ""
    city = tz.split("/")[-1].replace("_", " ")
    zone = f"{tz}{', ' + abbreviation if abbreviation and abbreviation[0] not in '+-' else ''}"
    return gettext("%(city)s time (%(zone)s)", city=city, zone=zone)


# The zones most US patients are in, offered first (after the patient's and the clinic's own).
LIKELY_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
)


def _option(name: str) -> str:
    return f'<option value="{escape(name)}">{escape(name.replace("_", " ").replace("/", " / "))}</option>'


@lru_cache(maxsize=1)
def _zone_groups() -> str:
    skip = ("Etc/", "SystemV/", "posix/", "right/")
    groups: dict[str, list[str]] = {}
    for name in time_zone_names():
        if "/" in name and not name.startswith(skip):
            groups.setdefault(name.split("/", 1)[0], []).append(name)
    return "".join(
        f'<optgroup label="{escape(region)}">{"".join(map(_option, names))}</optgroup>'
        for region, names in sorted(groups.items())
    )


def zone_options(selected: str, *first: str) -> Markup:
    """IANA zones in ``<optgroup>``s: the likely ones (``selected``, ``first``, US zones), then by region."""
    likely = list(dict.fromkeys((selected, *first, *LIKELY_ZONES)))
    head = "".join(_option(name) for name in likely)
    head = head.replace(
        f'<option value="{escape(selected)}">', f'<option value="{escape(selected)}" selected>', 1
    )
    # The regional groups are rendered once per process; only the few likely zones are per page.
    likely_label = escape(gettext("Likely time zones"))
    return Markup(f'<optgroup label="{likely_label}">{head}</optgroup>{_zone_groups()}')  # noqa: S704


@bp.context_processor
def helpers() -> dict[str, Any]:
    """What every page template may call."""
    return {
        "when": when,
        "clock_in": clock_in,
        "day_label": day_label,
        "weekday": weekday,
        "day_month": day_month,
        "language_links": language_links,
        "current_language": current_language,
        "zone_label": zone_label,
        "zone_options": zone_options,
        "visit_zone": visit_zone,
        "zone_gap": zone_gap,
    }
