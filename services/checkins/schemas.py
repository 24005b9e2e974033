"""Request and response schemas of the checkins service: shape and format only."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.fields import Line, Text


class AnswerForm(Schema):
    """One answer from the check-in page (form fields)."""

    item = fields.Integer(required=True, validate=validate.Range(min=1, max=20))
    value = fields.Integer(required=True, validate=validate.Range(min=0, max=10))


class AckForm(Schema):
    """An acknowledgement of a safety alert, from the alert page or the staff API."""

    by = Line(required=True, min_length=1, max_length=120)
    note = Text(load_default="", max_length=2000)


class AckOut(Schema):
    by = fields.String()
    via = fields.String()
    note = fields.String()
    at = fields.DateTime()


class AlertOut(Schema):
    id = fields.UUID()
    patient_id = fields.UUID()
    booking_id = fields.UUID()
    created_at = fields.DateTime()
    published_at = fields.DateTime(allow_none=True)
    acknowledged_at = fields.DateTime(allow_none=True)
    acks = fields.List(fields.Nested(AckOut))


class AlertQuery(Schema):
    open = fields.Boolean(load_default=True, metadata={"description": "only alerts nobody acknowledged"})


class PointOut(Schema):
    at = fields.DateTime()
    value = fields.Integer()


class SessionOut(Schema):
    booking_id = fields.UUID()
    version = fields.Integer()
    status = fields.String()
    type_slug = fields.String()
    start_at = fields.DateTime()
    end_at = fields.DateTime()


class SessionChangeOut(Schema):
    booking_id = fields.UUID()
    version = fields.Integer()
    kind = fields.String(metadata={"description": "booked, rescheduled, cancelled or escort"})
    occurred_at = fields.DateTime()
    start_at = fields.DateTime()
    previous_start = fields.DateTime(allow_none=True)
    cancelled_by = fields.String(allow_none=True)
    escort = fields.String(metadata={"description": "none, given or confirmed (never who the escort is)"})
    escort_confirmed_how = fields.String(allow_none=True, metadata={"description": "sms or staff"})


class FlagOut(Schema):
    kind = fields.String()
    detail = fields.String()
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)


class AnswerOut(Schema):
    question = fields.String()
    answer = fields.String()
    value = fields.Integer(allow_none=True)


class LatestOut(Schema):
    instrument = fields.String()
    completed_at = fields.DateTime()
    score = fields.Integer()
    band = fields.String(allow_none=True)
    answers = fields.List(fields.Nested(AnswerOut))


class FhirBundleOut(Schema):
    """A FHIR R4 Bundle (type collection); its entries are QuestionnaireResponse and Observation resources."""

    resourceType = fields.String(metadata={"example": "Bundle"})
    type = fields.String(metadata={"example": "collection"})
    entry = fields.List(fields.Dict())


class TimelineOut(Schema):
    patient_id = fields.UUID()
    stopped_at = fields.DateTime(allow_none=True)
    timeline_url = fields.String(metadata={"description": "the provider's signed link to the timeline page"})
    sessions = fields.List(fields.Nested(SessionOut))
    history = fields.List(
        fields.Nested(SessionChangeOut),
        metadata={"description": "attendance and escort history from booking events, newest first"},
    )
    series = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(PointOut)))
    latest = fields.List(fields.Nested(LatestOut))
    flags = fields.List(fields.Nested(FlagOut))
    alerts = fields.List(fields.Nested(AlertOut))
