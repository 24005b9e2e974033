"""Shapes of the staff API for resources (chairs, rooms). They check shape and format only."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from services.booking.catalog.schemas import WeeklyRuleIn, WeeklyRuleOut
from services.booking.catalog.schemas import _no_overlap as no_overlap
from services.booking.schemas import Patch, Strict
from shared.fields import Flag, Id, Line, Slug


def _hours(**kwargs: Any) -> fields.List:
    return fields.List(
        fields.Nested(WeeklyRuleIn),
        metadata={"description": "weekly windows in the clinic's time zone"},
        **kwargs,
    )


def _check_hours(data: dict[str, Any]) -> None:
    for weekday in range(7):
        try:
            no_overlap([r for r in data.get("hours") or () if r["weekday"] == weekday], f"weekday {weekday}")
        except ValidationError as exc:
            raise ValidationError(exc.messages, "hours") from exc


class ResourceIn(Strict):
    clinic_id = Id(required=True)
    name = Line(required=True, min_length=1, max_length=200)
    kind = fields.String(
        required=True, validate=Slug, metadata={"description": "what types ask for, e.g. infusion-chair"}
    )
    hours = _hours(required=True)
    active = Flag(load_default=True)

    @validates_schema
    def _no_overlap(self, data: dict[str, Any], **_: Any) -> None:
        _check_hours(data)


class ResourcePatch(Patch):
    name = Line(min_length=1, max_length=200)
    kind = fields.String(validate=Slug)
    hours = _hours()
    active = Flag()

    @validates_schema
    def _no_overlap(self, data: dict[str, Any], **_: Any) -> None:
        _check_hours(data)


class ClosureOut(Schema):
    day = fields.Date()
    reason = fields.String()


class ResourceOut(Schema):
    id = fields.Integer()
    clinic_id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    active = fields.Boolean()
    hours = fields.List(fields.Nested(WeeklyRuleOut))
    closures = fields.List(fields.Nested(ClosureOut))


class ResourceFilter(Strict):
    clinic_id = Id(strict=False)
    kind = fields.String(validate=Slug)


class ClosureIn(Strict):
    reason = Line(load_default="", max_length=200)


class MoveIn(Strict):
    resource_id = Id(required=True)
