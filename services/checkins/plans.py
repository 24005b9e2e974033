"""Check-in plans as data: which instruments, timed from which sessions, for which appointment types."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from services.checkins.instruments import INSTRUMENTS

DEFAULT_DIR = Path(__file__).parent / "plans"
FIRST, LAST, EACH = "first", "last", "each"
# Each gap between two sessions whose later one is a booster (a course session past the course's count).
BEFORE_BOOSTER = "before-booster"
_DURATION = re.compile(r"^(-?)(\d{1,4})([hd])$")


def parse_duration(text: str) -> timedelta:
    """``-48h``, ``7d``: a signed number of hours or days."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration like 24h or -2d: {text!r}")
    sign, amount, unit = match.groups()
    delta = timedelta(hours=int(amount)) if unit == "h" else timedelta(days=int(amount))
    return -delta if sign else delta


class _Duration(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> timedelta:
        if not isinstance(value, str):
            raise ValidationError("must be a duration like 24h or -2d")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


@dataclass(frozen=True)
class PlanStep:
    """One check-in of a plan."""

    key: str
    instrument: str
    anchor: str
    at: str
    offset: timedelta
    window: timedelta
    # Repeated every ``every`` (``times`` in all; before a booster: until the booster starts).
    every: timedelta | None = None
    times: int = 1

    def occurrence_key(self, n: int) -> str:
        """The stored step key of occurrence ``n`` (1-based): the first keeps the step's own key."""
        return self.key if n == 1 else f"{self.key}-{n}"


@dataclass(frozen=True)
class Plan:
    """A plan attached to appointment types by slug."""

    slug: str
    version: int
    types: tuple[str, ...]
    steps: tuple[PlanStep, ...]


class StepSchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,47}$"))
    instrument = fields.String(required=True, validate=validate.OneOf(sorted(INSTRUMENTS)))
    anchor = fields.String(required=True, validate=validate.OneOf((FIRST, LAST, EACH, BEFORE_BOOSTER)))
    at = fields.String(required=True, data_key="from", validate=validate.OneOf(("start", "end")))
    offset = _Duration(required=True)
    window = _Duration(required=True)
    every = _Duration(load_default=None)
    times = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=52))

    @validates_schema
    def _positive_window(self, data: dict[str, Any], **_: Any) -> None:
        for name in ("window", "every"):
            if data.get(name) is not None and data[name] <= timedelta(0):
                raise ValidationError("must be positive", field_name=name)
        if data.get("anchor") == BEFORE_BOOSTER and data.get("every") is None:
            raise ValidationError("a step before a booster repeats: give `every`", field_name="every")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> PlanStep:
        return PlanStep(**data)


class PlanSchema(Schema):
    class Meta:
        unknown = RAISE

    slug = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,63}$"))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    types = fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True)
    steps = fields.List(fields.Nested(StepSchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def _unique_keys(self, data: dict[str, Any], **_: Any) -> None:
        keys = [s.key for s in data.get("steps", [])]
        if len(keys) != len(set(keys)):
            raise ValidationError("step keys must be unique", field_name="steps")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Plan:
        return Plan(
            slug=data["slug"], version=data["version"], types=tuple(data["types"]), steps=tuple(data["steps"])
        )


class PlanBook:
    """Every plan, by the appointment type slugs it is attached to."""

    def __init__(self, plans: list[Plan]) -> None:
        self.plans = {p.slug: p for p in plans}
        self.by_type: dict[str, Plan] = {}
        for plan in plans:
            for slug in plan.types:
                if slug in self.by_type:
                    raise ValueError(f"appointment type {slug!r} is in two plans")
                self.by_type[slug] = plan

    def for_type(self, type_slug: str) -> Plan | None:
        """The plan attached to appointment type ``type_slug``, if any."""
        return self.by_type.get(type_slug)


def load_plans(directory: str | Path = "") -> PlanBook:
    """Load and check every ``*.toml`` plan of ``directory`` (default: the demo clinic's)."""
    folder = Path(directory) if directory else DEFAULT_DIR
    plans = []
    for path in sorted(folder.glob("*.toml")):
        try:
            plans.append(PlanSchema().load(tomllib.loads(path.read_text())))
        except ValidationError as exc:
            raise ValueError(f"check-in plan {path.name}: {exc.messages}") from exc
    return PlanBook(plans)
