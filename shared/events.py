"""The event contract between services: versioned marshmallow schemas and the dataclasses they load into."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from shared.timeutil import utcnow

BOOKING_CONFIRMED = "booking.confirmed"
BOOKING_RESCHEDULED = "booking.rescheduled"
BOOKING_CANCELLED = "booking.cancelled"
BOOKING_EVENT_TYPES = (BOOKING_CONFIRMED, BOOKING_RESCHEDULED, BOOKING_CANCELLED)
# A booking's escort was given, changed, removed or confirmed (same shape as the booking events; notify only).
BOOKING_ESCORT_CHANGED = "booking.escort_changed"
BOOKING_SNAPSHOT_TYPES = (
    *BOOKING_EVENT_TYPES,
    BOOKING_ESCORT_CHANGED,
)  # the events that load as ``BookingEvent``
COURSE_CHANGED = "course.changed"
CONSULT_LINKS_READY = "consult.links_ready"
CHECKIN_REQUESTED = "checkin.requested"
CHECKIN_ALERT = "checkin.alert"
# A rating check-in asked by SMS closed in checkins (answered by its link, or stopped): ids only.
CHECKIN_CLOSED = "checkin.closed"
REPLY_RATING = "reply.rating"
# The single 0-10 ratings a check-in may ask by SMS (``checkin.requested``'s ``rating``): keys, never wording.
RATINGS = ("mood", "pain")
NOTIFY_SMS_REPLY = "notify.sms_reply"
# A patient asked, from an older or cancelled booking's link, for the booking's current link again (ids only).
BOOKING_LINK_REQUESTED = "booking.link_requested"

# What a whole-course change was (``course.changed``): one notice to the patient for all its sessions.
COURSE_BOOKED = "booked"
COURSE_CANCELLED = "cancelled"
COURSE_RESCHEDULED = "rescheduled"
COURSE_CHANGES = (COURSE_BOOKED, COURSE_CANCELLED, COURSE_RESCHEDULED)

# What an SMS reply meant (notify owns the phone conversation; booking owns the state it changes).
ATTENDANCE_CONFIRMED = "attendance_confirmed"  # the patient confirmed the visit their reminder asked about
ESCORT_CONFIRMED = "escort_confirmed"  # the escort replied YES to the pick-up message
REPLY_MEANINGS = (ATTENDANCE_CONFIRMED, ESCORT_CONFIRMED)

VIDEO = "video"
IN_PERSON = "in_person"
MODES = (VIDEO, IN_PERSON)


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE


def _when() -> fields.AwareDateTime:
    # No default zone: a time without an offset breaks the contract instead of being guessed.
    return fields.AwareDateTime(required=True)


@dataclass(frozen=True)
class ClinicRef:
    """The clinic a booking belongs to."""

    slug: str
    name: str
    time_zone: str
    address: str = ""
    phone: str = ""
    id: int | None = None  # booking's clinic id (a day-sheet link's subject); absent in older events


@dataclass(frozen=True)
class AppointmentTypeRef:
    """What kind of visit a booking is."""

    id: int
    slug: str
    name: str
    mode: str
    duration_minutes: int
    reminder_protocol: str
    location: str = ""
    change_cutoff_hours: int = 0  # online changes close this long before the start (0: until it starts)
    requires_escort: bool = False  # someone must take the patient home (issue 19); absent in older events


@dataclass(frozen=True)
class ProviderRef:
    """Who the patient sees."""

    id: int
    name: str
    email: str
    time_zone: str


@dataclass(frozen=True)
class PatientRef:
    """How to reach the patient. Contact details travel in events but never into logs."""

    id: uuid.UUID
    name: str
    email: str
    time_zone: str
    sms_consent: bool
    phone: str | None = None
    language: str = "en"  # the language of every message to the patient (a code, not personal data)


@dataclass(frozen=True)
class CourseRef:
    """The treatment course a booking is a session of: "session ``index`` of ``sessions``"."""

    id: uuid.UUID
    index: int
    sessions: int


@dataclass(frozen=True)
class EscortRef:
    """The support person who takes the patient home. Contact details travel in events but never into logs.

    The escort is told the patient's first name, where and when to pick them up: never the treatment.
    """

    id: uuid.UUID
    first_name: str
    phone: str
    patient_first_name: str
    agreed_at: datetime  # when the patient confirmed the escort agreed to be contacted
    pickup_at: datetime  # the session's end plus recovery
    confirmed_at: datetime | None = None
    confirmed_how: str | None = None  # "sms" (the escort replied) or "staff" (taken by phone)


@dataclass(frozen=True)
class BookingSnapshot:
    """A booking as it is after the change an event reports."""

    id: uuid.UUID
    version: int
    status: str
    start: datetime
    end: datetime
    clinic: ClinicRef
    appointment_type: AppointmentTypeRef
    provider: ProviderRef
    patient: PatientRef
    course: CourseRef | None = None
    escort: EscortRef | None = None


@dataclass(frozen=True)
class TimeRange:
    """A start and an end."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class BookingEvent:
    """``booking.confirmed``, ``booking.rescheduled``, ``booking.cancelled`` or ``booking.escort_changed``."""

    type: str
    booking: BookingSnapshot
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    previous: TimeRange | None = None
    cancelled_by: str | None = None
    # The ``course.changed`` event whose one notice covers this booking's own (a whole-course change).
    course_change: uuid.UUID | None = None


class ClinicSchema(_Base):
    slug = fields.String(required=True)
    name = fields.String(required=True)
    time_zone = fields.String(required=True)
    address = fields.String(load_default="")
    phone = fields.String(load_default="")
    id = fields.Integer(load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> ClinicRef:
        return ClinicRef(**data)


class AppointmentTypeSchema(_Base):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    mode = fields.String(required=True, validate=validate.OneOf(MODES))
    duration_minutes = fields.Integer(required=True)
    reminder_protocol = fields.String(required=True)
    location = fields.String(load_default="")
    change_cutoff_hours = fields.Integer(load_default=0, validate=validate.Range(min=0))
    requires_escort = fields.Boolean(load_default=False)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AppointmentTypeRef:
        return AppointmentTypeRef(**data)


class ProviderSchema(_Base):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    time_zone = fields.String(required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> ProviderRef:
        return ProviderRef(**data)


class PatientSchema(_Base):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    phone = fields.String(allow_none=True, load_default=None)
    time_zone = fields.String(required=True)
    sms_consent = fields.Boolean(required=True)
    # Added within version 1 (optional): older events meant English.
    language = fields.String(load_default="en")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> PatientRef:
        return PatientRef(**data)


class CourseSchema(_Base):
    id = fields.UUID(required=True)
    index = fields.Integer(required=True, validate=validate.Range(min=1))
    sessions = fields.Integer(required=True, validate=validate.Range(min=1))

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> CourseRef:
        return CourseRef(**data)


class EscortSchema(_Base):
    id = fields.UUID(required=True)
    first_name = fields.String(required=True, validate=validate.Length(min=1))
    phone = fields.String(required=True, validate=validate.Length(min=1))
    patient_first_name = fields.String(required=True, validate=validate.Length(min=1))
    agreed_at = _when()
    pickup_at = _when()
    confirmed_at = fields.AwareDateTime(allow_none=True, load_default=None)
    confirmed_how = fields.String(
        allow_none=True, load_default=None, validate=validate.OneOf(("sms", "staff"))
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> EscortRef:
        return EscortRef(**data)


class BookingSnapshotSchema(_Base):
    id = fields.UUID(required=True)
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    status = fields.String(required=True, validate=validate.OneOf(("confirmed", "cancelled")))
    start = _when()
    end = _when()
    clinic = fields.Nested(ClinicSchema, required=True)
    appointment_type = fields.Nested(AppointmentTypeSchema, required=True)
    provider = fields.Nested(ProviderSchema, required=True)
    patient = fields.Nested(PatientSchema, required=True)
    # Added within version 1 (optional): a session of a treatment course.
    course = fields.Nested(CourseSchema, allow_none=True, load_default=None)
    # Added within version 1 (optional): the escort of a type that requires one.
    escort = fields.Nested(EscortSchema, allow_none=True, load_default=None)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> BookingSnapshot:
        return BookingSnapshot(**data)


class TimeRangeSchema(_Base):
    start = _when()
    end = _when()

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> TimeRange:
        return TimeRange(**data)


class BookingEventSchema(_Base):
    """Version 1 of the booking events."""

    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.OneOf(BOOKING_SNAPSHOT_TYPES))
    schema_version = fields.Integer(required=True, validate=validate.Equal(1))
    occurred_at = _when()
    correlation_id = fields.String(load_default="")
    booking = fields.Nested(BookingSnapshotSchema, required=True)
    previous = fields.Nested(TimeRangeSchema, allow_none=True, load_default=None)
    cancelled_by = fields.String(
        allow_none=True, load_default=None, validate=validate.OneOf(("patient", "staff"))
    )
    # Added within version 1 (optional): the id of the ``course.changed`` event that tells the patient of
    # this change together with the course's other sessions, so the session's own notice is not sent.
    course_change = fields.UUID(allow_none=True, load_default=None)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> BookingEvent:
        return BookingEvent(**data)


@dataclass(frozen=True)
class CourseSession:
    """One session a whole-course change touched: the booking and the version the change left it at."""

    booking_id: uuid.UUID
    index: int
    version: int


@dataclass(frozen=True)
class CourseEvent:
    """``course.changed``: a course was booked, cancelled (from a session on) or moved (this and following).

    Recorded in the same transaction as its sessions' own booking events, which carry its id in
    ``course_change``; it names the sessions by booking id and version only, never the patient.
    """

    course_id: uuid.UUID
    change: str
    sessions: list[CourseSession]
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    cancelled_by: str | None = None
    type: str = COURSE_CHANGED


class CourseSessionSchema(_Base):
    booking_id = fields.UUID(required=True)
    index = fields.Integer(required=True, validate=validate.Range(min=1))
    version = fields.Integer(required=True, validate=validate.Range(min=1))

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> CourseSession:
        return CourseSession(**data)


class CourseEventSchema(_Base):
    """Version 1 of ``course.changed``."""

    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Equal(COURSE_CHANGED))
    schema_version = fields.Integer(required=True, validate=validate.Equal(1))
    occurred_at = _when()
    correlation_id = fields.String(load_default="")
    course_id = fields.UUID(required=True)
    change = fields.String(required=True, validate=validate.OneOf(COURSE_CHANGES))
    sessions = fields.List(fields.Nested(CourseSessionSchema), required=True, validate=validate.Length(min=1))
    cancelled_by = fields.String(
        allow_none=True, load_default=None, validate=validate.OneOf(("patient", "staff"))
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> CourseEvent:
        return CourseEvent(**data)


@dataclass(frozen=True)
class LinksReadyEvent:
    """``consult.links_ready``: a video booking's room is recorded and its two join links are issued.

    Sent again (with the new version and new links) after a reschedule; the old links stop working.
    """

    booking_id: uuid.UUID
    booking_version: int
    patient_join_url: str
    provider_join_url: str
    opens_at: datetime
    closes_at: datetime
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    type: str = CONSULT_LINKS_READY


class LinksReadyEventSchema(_Base):
    """Version 1 of ``consult.links_ready``."""

    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Equal(CONSULT_LINKS_READY))
    schema_version = fields.Integer(required=True, validate=validate.Equal(1))
    occurred_at = _when()
    correlation_id = fields.String(load_default="")
    booking_id = fields.UUID(required=True)
    booking_version = fields.Integer(required=True, validate=validate.Range(min=1))
    patient_join_url = fields.Url(required=True, require_tld=False)
    provider_join_url = fields.Url(required=True, require_tld=False)
    opens_at = _when()
    closes_at = _when()

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> LinksReadyEvent:
        return LinksReadyEvent(**data)


@dataclass(frozen=True)
class SmsReplyEvent:
    """``notify.sms_reply``: what an SMS reply meant for one version of a booking.

    Never the reply's text or the sender's number: only the booking, the version the reply was about, what it
    meant and when it came.
    """

    booking_id: uuid.UUID
    booking_version: int
    meaning: str
    replied_at: datetime
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    type: str = NOTIFY_SMS_REPLY


class SmsReplyEventSchema(_Base):
    """Version 1 of ``notify.sms_reply``."""

    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Equal(NOTIFY_SMS_REPLY))
    schema_version = fields.Integer(required=True, validate=validate.Equal(1))
    occurred_at = _when()
    correlation_id = fields.String(load_default="")
    booking_id = fields.UUID(required=True)
    booking_version = fields.Integer(required=True, validate=validate.Range(min=1))
    meaning = fields.String(required=True, validate=validate.OneOf(REPLY_MEANINGS))
    replied_at = _when()

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> SmsReplyEvent:
        return SmsReplyEvent(**data)


@dataclass(frozen=True)
class LinkRequestedEvent:
    """``booking.link_requested``: send the booking's current manage link to the patient's phone and email.

    Ids only: notify knows the contact details from the booking events, and signs the current link itself.
    With ``course_id`` it is the course's page link instead, asked for from an expired course link; the
    booking is then the course's last session, so its end is the course's and the link's life follows it.
    """

    booking_id: uuid.UUID
    booking_version: int  # the version when it was asked for (notify sends the newest it holds)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    course_id: uuid.UUID | None = None
    type: str = BOOKING_LINK_REQUESTED


@dataclass(frozen=True)
class CheckinRequestedEvent:
    """``checkin.requested``: a check-in is due; notify sends its link to the patient of the booking.

    It carries no answer or score: the booking's patient, the link, its expiry and, for a single 0-10 rating,
    which one (``rating``, a key of ``RATINGS``: notify asks it by SMS in its own neutral words).
    """

    booking_id: uuid.UUID
    booking_version: int
    checkin_id: uuid.UUID
    checkin_url: str
    expires_at: datetime
    reminder: int = 0
    rating: str | None = None
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    type: str = CHECKIN_REQUESTED


@dataclass(frozen=True)
class CheckinAlertEvent:
    """``checkin.alert``: on-call staff must act now; notify sends them the alert's link (nothing more)."""

    alert_id: uuid.UUID
    booking_id: uuid.UUID
    alert_url: str
    sms_to: list[str]
    email_to: list[str]
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    type: str = CHECKIN_ALERT


@dataclass(frozen=True)
class CheckinClosedEvent:
    """``checkin.closed``: a rating notify asked by SMS closed in checkins; a number no longer answers it."""

    booking_id: uuid.UUID
    checkin_id: uuid.UUID
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    type: str = CHECKIN_CLOSED


@dataclass(frozen=True)
class ReplyRatingEvent:
    """``reply.rating``: the number a patient sent back by SMS to a rating check-in (notify publishes it)."""

    checkin_id: uuid.UUID
    value: int
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = ""
    schema_version: int = 1
    type: str = REPLY_RATING


class _EventHead(_Base):
    event_id = fields.UUID(required=True)
    schema_version = fields.Integer(required=True, validate=validate.Equal(1))
    occurred_at = _when()
    correlation_id = fields.String(load_default="")


class LinkRequestedEventSchema(_EventHead):
    """Version 1 of ``booking.link_requested``."""

    type = fields.String(required=True, validate=validate.Equal(BOOKING_LINK_REQUESTED))
    booking_id = fields.UUID(required=True)
    booking_version = fields.Integer(required=True, validate=validate.Range(min=1))
    # Added within version 1 (optional): the course whose page link is asked for, not the booking's own.
    course_id = fields.UUID(allow_none=True, load_default=None)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> LinkRequestedEvent:
        return LinkRequestedEvent(**data)


class CheckinRequestedEventSchema(_EventHead):
    """Version 1 of ``checkin.requested``."""

    type = fields.String(required=True, validate=validate.Equal(CHECKIN_REQUESTED))
    booking_id = fields.UUID(required=True)
    booking_version = fields.Integer(required=True, validate=validate.Range(min=1))
    checkin_id = fields.UUID(required=True)
    checkin_url = fields.Url(required=True, require_tld=False)
    expires_at = _when()
    reminder = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10))
    # Added within version 1 (optional): the check-in is this single 0-10 rating, answerable by SMS reply.
    rating = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(RATINGS))

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> CheckinRequestedEvent:
        return CheckinRequestedEvent(**data)


class CheckinAlertEventSchema(_EventHead):
    """Version 1 of ``checkin.alert``."""

    type = fields.String(required=True, validate=validate.Equal(CHECKIN_ALERT))
    alert_id = fields.UUID(required=True)
    booking_id = fields.UUID(required=True)
    alert_url = fields.Url(required=True, require_tld=False)
    sms_to = fields.List(fields.String(), required=True)
    email_to = fields.List(fields.String(), required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> CheckinAlertEvent:
        return CheckinAlertEvent(**data)


class CheckinClosedEventSchema(_EventHead):
    """Version 1 of ``checkin.closed``."""

    type = fields.String(required=True, validate=validate.Equal(CHECKIN_CLOSED))
    booking_id = fields.UUID(required=True)
    checkin_id = fields.UUID(required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> CheckinClosedEvent:
        return CheckinClosedEvent(**data)


class ReplyRatingEventSchema(_EventHead):
    """Version 1 of ``reply.rating``."""

    type = fields.String(required=True, validate=validate.Equal(REPLY_RATING))
    checkin_id = fields.UUID(required=True)
    value = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10))

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> ReplyRatingEvent:
        return ReplyRatingEvent(**data)


_BOOKING_EVENT_SCHEMA = BookingEventSchema()
_LINKS_READY_SCHEMA = LinksReadyEventSchema()
_SMS_REPLY_SCHEMA = SmsReplyEventSchema()
_COURSE_EVENT_SCHEMA = CourseEventSchema()
_SCHEMAS: dict[type, Schema] = {
    BookingEvent: _BOOKING_EVENT_SCHEMA,
    CourseEvent: _COURSE_EVENT_SCHEMA,
    LinksReadyEvent: _LINKS_READY_SCHEMA,
    SmsReplyEvent: _SMS_REPLY_SCHEMA,
    LinkRequestedEvent: LinkRequestedEventSchema(),
    CheckinRequestedEvent: CheckinRequestedEventSchema(),
    CheckinAlertEvent: CheckinAlertEventSchema(),
    CheckinClosedEvent: CheckinClosedEventSchema(),
    ReplyRatingEvent: ReplyRatingEventSchema(),
}
AnyEvent = (
    BookingEvent
    | CourseEvent
    | LinksReadyEvent
    | SmsReplyEvent
    | LinkRequestedEvent
    | CheckinRequestedEvent
    | CheckinAlertEvent
    | CheckinClosedEvent
    | ReplyRatingEvent
)


def dump_event(event: AnyEvent, *, check: bool = True) -> dict[str, Any]:
    """The JSON-ready form of ``event``; ``check``: validated against its schema on the way out too."""
    schema = _SCHEMAS[type(event)]
    data: dict[str, Any] = schema.dump(event)
    errors = schema.validate(data) if check else None
    if errors:
        raise ValidationError(errors)
    return data


def load_event(payload: dict[str, Any]) -> BookingEvent:
    """Load a booking event payload; raise ``ValidationError`` if it breaks the contract."""
    if payload.get("type") not in BOOKING_SNAPSHOT_TYPES:
        raise ValidationError({"type": [f"unknown event type {payload.get('type')!r}"]})
    event: BookingEvent = _BOOKING_EVENT_SCHEMA.load(payload)
    return event


def load_course_event(payload: dict[str, Any]) -> CourseEvent:
    """Load a ``course.changed`` payload; raise ``ValidationError`` if it breaks the contract."""
    event: CourseEvent = _COURSE_EVENT_SCHEMA.load(payload)
    return event


def load_links_ready(payload: dict[str, Any]) -> LinksReadyEvent:
    """Load a ``consult.links_ready`` payload; raise ``ValidationError`` if it breaks the contract."""
    event: LinksReadyEvent = _LINKS_READY_SCHEMA.load(payload)
    return event


def load_sms_reply(payload: dict[str, Any]) -> SmsReplyEvent:
    """Load a ``notify.sms_reply`` payload; raise ``ValidationError`` if it breaks the contract."""
    event: SmsReplyEvent = _SMS_REPLY_SCHEMA.load(payload)
    return event


def load_link_requested(payload: dict[str, Any]) -> LinkRequestedEvent:
    """Load a ``booking.link_requested`` payload; raise ``ValidationError`` if it breaks the contract."""
    event: LinkRequestedEvent = _SCHEMAS[LinkRequestedEvent].load(payload)
    return event


def load_checkin_requested(payload: dict[str, Any]) -> CheckinRequestedEvent:
    """Load a ``checkin.requested`` payload; raise ``ValidationError`` if it breaks the contract."""
    event: CheckinRequestedEvent = _SCHEMAS[CheckinRequestedEvent].load(payload)
    return event


def load_checkin_alert(payload: dict[str, Any]) -> CheckinAlertEvent:
    """Load a ``checkin.alert`` payload; raise ``ValidationError`` if it breaks the contract."""
    event: CheckinAlertEvent = _SCHEMAS[CheckinAlertEvent].load(payload)
    return event


def load_checkin_closed(payload: dict[str, Any]) -> CheckinClosedEvent:
    """Load a ``checkin.closed`` payload; raise ``ValidationError`` if it breaks the contract."""
    event: CheckinClosedEvent = _SCHEMAS[CheckinClosedEvent].load(payload)
    return event


def load_reply_rating(payload: dict[str, Any]) -> ReplyRatingEvent:
    """Load a ``reply.rating`` payload; raise ``ValidationError`` if it breaks the contract."""
    event: ReplyRatingEvent = _SCHEMAS[ReplyRatingEvent].load(payload)
    return event
