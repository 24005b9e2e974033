"""Shapes of the course API: templates, plans, courses and their changes. They check shape and format only."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.booking.schemas import (
    Patch,
    PatientDetails,
    PatientOut,
    ProviderBrief,
    ResourceBrief,
    Strict,
    aware,
)
from shared.fields import Flag, Id, Line, Slug, TimeZone, WallTime, bounded

SAME_PROVIDER = ("required", "preferred")


class _TemplateFields(Strict):
    name = Line(min_length=1, max_length=200)
    session_type_id = Id()
    sessions = bounded(1, 52, metadata={"description": "how many sessions the course has"})
    min_hours_between = bounded(0, 24 * 60, metadata={"description": "at least this long between starts"})
    max_per_week = bounded(1, 7, allow_none=True, metadata={"description": "Monday-Sunday, clinic's zone"})
    within_days = bounded(1, 730, allow_none=True, metadata={"description": "first start to last end"})
    same_provider = fields.String(validate=validate.OneOf(SAME_PROVIDER))
    booster_type_id = Id(allow_none=True)
    booster_interval_days = bounded(1, 365, allow_none=True)
    active = Flag()


class CourseTemplateIn(_TemplateFields):
    clinic_id = Id(required=True)
    slug = fields.String(required=True, validate=Slug)
    name = Line(required=True, min_length=1, max_length=200)
    session_type_id = Id(required=True)
    sessions = bounded(1, 52, required=True)
    min_hours_between = bounded(0, 24 * 60, load_default=0)
    max_per_week = bounded(1, 7, load_default=None, allow_none=True)
    within_days = bounded(1, 730, load_default=None, allow_none=True)
    same_provider = fields.String(load_default="preferred", validate=validate.OneOf(SAME_PROVIDER))
    booster_type_id = Id(load_default=None, allow_none=True)
    booster_interval_days = bounded(1, 365, load_default=None, allow_none=True)
    active = Flag(load_default=True)


class CourseTemplatePatch(_TemplateFields, Patch):
    pass


class CourseTemplateOut(Schema):
    id = fields.Integer()
    clinic_id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    session_type_id = fields.Integer()
    sessions = fields.Integer()
    min_hours_between = fields.Integer()
    max_per_week = fields.Integer(allow_none=True)
    within_days = fields.Integer(allow_none=True)
    same_provider = fields.String()
    booster_type_id = fields.Integer(allow_none=True)
    booster_interval_days = fields.Integer(allow_none=True)
    active = fields.Boolean()


class TemplateFilter(Strict):
    clinic_id = Id(strict=False)


class TimeWindowIn(Strict):
    """One time of day: sessions may start from ``earliest`` to ``latest`` (both included), clinic's zone."""

    earliest = WallTime(required=True, metadata={"description": "no session in this window starts before"})
    latest = WallTime(required=True, metadata={"description": "no session in this window starts after"})

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data["earliest"] > data["latest"]:
            raise ValidationError("must not be before earliest", "latest")


class PlanIn(Strict):
    template_id = Id(required=True)
    start = aware(
        load_default=None, metadata={"description": "the first session's start (default: earliest)"}
    )
    provider_id = Id(load_default=None, allow_none=True)
    weekdays = fields.List(
        bounded(0, 6), load_default=None, metadata={"description": "preferred weekdays, 0 = Monday"}
    )
    earliest = WallTime(
        load_default=None,
        metadata={"description": "no session starts before (clinic's zone); one window, as `times` with one"},
    )
    latest = WallTime(
        load_default=None,
        metadata={"description": "no session starts after (clinic's zone); one window, as `times` with one"},
    )
    times = fields.List(
        fields.Nested(TimeWindowIn),
        load_default=None,
        validate=validate.Length(min=1, max=24, error="give one to 24 windows"),
        metadata={
            "description": "times of day the patient can come (clinic's zone): every session starts within "
            "one of them; windows may overlap. Instead of `earliest`/`latest`, not with them"
        },
    )
    tz = TimeZone(load_default=None, metadata={"description": "zone to express times in (default: clinic's)"})

    @validates_schema
    def _shape(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("weekdays") == []:
            raise ValidationError("name at least one weekday", "weekdays")
        if data.get("earliest") and data.get("latest") and data["earliest"] > data["latest"]:
            raise ValidationError("must not be before earliest", "latest")
        if data.get("times") is not None and (data.get("earliest") or data.get("latest")):
            raise ValidationError("give times or earliest and latest, not both", "times")


class PlannedStart(Schema):
    start = fields.String()
    provider_id = fields.Integer()


class PlannedSession(PlannedStart):
    index = fields.Integer()
    end = fields.String()
    alternatives = fields.List(fields.Nested(PlannedStart))


class PlanOut(Schema):
    template_id = fields.Integer()
    time_zone = fields.String()
    sessions = fields.List(fields.Nested(PlannedSession))


class SessionIn(Strict):
    start = aware(required=True)
    provider_id = Id(required=True)


class CourseIn(Strict):
    template_id = Id(required=True)
    sessions = fields.List(fields.Nested(SessionIn), required=True, validate=validate.Length(min=1, max=52))
    patient_id = fields.UUID(load_default=None)
    patient = fields.Nested(PatientDetails, load_default=None)

    @validates_schema
    def _one_patient(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("patient_id") is None) == (data.get("patient") is None):
            raise ValidationError("give either patient_id or patient", "patient")


class CourseSessionOut(Schema):
    id = fields.UUID()
    index = fields.Integer(attribute="course_index")
    status = fields.String()
    version = fields.Integer()
    start = fields.AwareDateTime(attribute="start_at", default_timezone=UTC)
    end = fields.AwareDateTime(attribute="end_at", default_timezone=UTC)
    appointment_type_id = fields.Integer()
    provider = fields.Nested(ProviderBrief)
    resource = fields.Nested(ResourceBrief, allow_none=True)
    manage_url = fields.String(metadata={"description": "the patient's signed manage link of this session"})


class CourseOut(Schema):
    id = fields.UUID()
    clinic_id = fields.Integer()
    template_id = fields.Integer()
    status = fields.String(metadata={"description": "planned, active, completed or stopped"})
    stopped_at = fields.AwareDateTime(allow_none=True, default_timezone=UTC)
    stopped_by = fields.String(allow_none=True)
    stop_reason = fields.String(allow_none=True)
    patient = fields.Nested(PatientOut)
    sessions = fields.List(fields.Nested(CourseSessionOut))
    course_url = fields.String(metadata={"description": "the patient's signed link to the course's page"})
    created_at = fields.AwareDateTime(default_timezone=UTC)


class CourseCancelIn(Strict):
    from_index = bounded(1, 60, load_default=None, metadata={"description": "this session and the following"})
    reason = Line(load_default="", max_length=200, metadata={"description": "why (no health details)"})


class SessionRescheduleIn(Strict):
    start = aware(required=True)
    following = Flag(load_default=False, metadata={"description": "move the later sessions with this one"})


class BoosterIn(Strict):
    start = aware(required=True)
    provider_id = Id(required=True)
