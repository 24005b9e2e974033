"""Queue names, who consumes which event, and ``publish``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer

from shared import events
from shared.logging import get_correlation_id

BOOKING_QUEUE = "booking"
NOTIFY_QUEUE = "notify"
CONSULT_QUEUE = "consult"
CHECKINS_QUEUE = "checkins"
ALL_QUEUES = (BOOKING_QUEUE, NOTIFY_QUEUE, CONSULT_QUEUE, CHECKINS_QUEUE)

# Retries back off from seconds to an hour; after the last one the job stays in the failed registry,
# where ops can requeue it. Handlers are idempotent, so a retry never doubles an effect.
EVENT_RETRY = Retry(max=8, interval=[5, 15, 60, 180, 600, 1800, 3600, 3600])
EVENT_JOB_TIMEOUT = 60
# An event carries the patient's contact details, so Redis keeps a job no longer than the work needs: a
# finished one 10 minutes (a re-send by a relay or sweeper that crashed before marking is refused meanwhile;
# the consumers' inboxes absorb a later one), a failed one 3 days (a weekend for the SuiteJobsFailed alert;
# after that `suite recover-queues` rebuilds it from the outbox). deploy/README.md lists what Redis holds.
EVENT_RESULT_TTL = 600
EVENT_FAILURE_TTL = 3 * 24 * 3600


@dataclass(frozen=True)
class Route:
    """One consumer of an event type."""

    consumer: str
    queue: str
    handler: str


_NOTIFY_BOOKING = Route("notify", NOTIFY_QUEUE, "services.notify.jobs.handle_booking_event")
_CONSULT_BOOKING = Route("consult", CONSULT_QUEUE, "services.consult.jobs.handle_booking_event")
_CHECKINS_BOOKING = Route("checkins", CHECKINS_QUEUE, "services.checkins.jobs.handle_booking_event")

ROUTES: dict[str, tuple[Route, ...]] = {
    events.BOOKING_CONFIRMED: (_NOTIFY_BOOKING, _CONSULT_BOOKING, _CHECKINS_BOOKING),
    events.BOOKING_RESCHEDULED: (_NOTIFY_BOOKING, _CONSULT_BOOKING, _CHECKINS_BOOKING),
    events.BOOKING_CANCELLED: (_NOTIFY_BOOKING, _CONSULT_BOOKING, _CHECKINS_BOOKING),
    # Only notify talks to escorts; checkins keeps whether there is one and whether they confirmed, for the
    # provider's timeline (never who they are); consult has nothing to do with them.
    events.BOOKING_ESCORT_CHANGED: (_NOTIFY_BOOKING, _CHECKINS_BOOKING),
    # One notice for a whole-course change; only notify tells patients (consult and checkins follow sessions).
    events.COURSE_CHANGED: (Route("notify", NOTIFY_QUEUE, "services.notify.jobs.handle_course_event"),),
    events.BOOKING_LINK_REQUESTED: (
        Route("notify", NOTIFY_QUEUE, "services.notify.jobs.handle_link_requested"),
    ),
    events.CONSULT_LINKS_READY: (Route("notify", NOTIFY_QUEUE, "services.notify.jobs.handle_links_ready"),),
    events.NOTIFY_SMS_REPLY: (Route("booking", BOOKING_QUEUE, "services.booking.jobs.handle_sms_reply"),),
    events.CHECKIN_REQUESTED: (
        Route("notify", NOTIFY_QUEUE, "services.notify.jobs.handle_checkin_requested"),
    ),
    events.CHECKIN_ALERT: (Route("notify", NOTIFY_QUEUE, "services.notify.jobs.handle_checkin_alert"),),
    events.CHECKIN_CLOSED: (Route("notify", NOTIFY_QUEUE, "services.notify.jobs.handle_checkin_closed"),),
    events.REPLY_RATING: (Route("checkins", CHECKINS_QUEUE, "services.checkins.jobs.handle_reply_rating"),),
}


CORRELATION_META = "correlation_id"


class SuiteQueue(Queue):
    """An RQ queue that stamps each new job with the current correlation id (in ``job.meta``).

    The worker runs the job under that id again (shared.worker), so one booking's log lines join up from the
    HTTP request through the outbox and the queues into every consumer, and into the jobs those consumers
    enqueue in turn.
    """

    def create_job(self, *args: Any, **kwargs: Any) -> Any:
        cid = get_correlation_id()
        if cid:
            meta = dict(kwargs.get("meta") or {})
            meta.setdefault(CORRELATION_META, cid)
            kwargs["meta"] = meta
        return super().create_job(*args, **kwargs)


def queue(name: str, connection: Redis) -> Queue:
    """The RQ queue ``name`` with the suite's JSON serializer and correlation ids."""
    return SuiteQueue(name, connection=connection, serializer=JSONSerializer)


def job_id_for(route: Route, event_id: str, attempt: int = 0) -> str:
    """The job id of ``route``'s delivery of event ``event_id`` (a redelivery adds its attempt number)."""
    return f"{route.consumer}-{event_id}" + (f"-r{attempt}" if attempt else "")


def route_of_job(func_name: str | None, event_type: object) -> Route | None:
    """The route a job with this handler carrying an event of this type was published on, if any."""
    for route in ROUTES.get(str(event_type), ()):
        if route.handler == func_name:
            return route
    return None


def publish(
    connection: Redis,
    event: dict[str, Any],
    *,
    pipeline: Pipeline | None = None,
    only: str | None = None,
    attempt: int = 0,
) -> list[str]:
    """Enqueue ``event`` for every consumer of its type (or consumer ``only``); return the job ids.

    The job id is derived from the event id, so publishing the same event twice (a relay that crashed
    between enqueueing and marking the row sent) does not queue a second job while the first exists. A
    redelivery (``attempt`` > 0) gets its own id: the first job may still sit, lost, in Redis.
    """
    routes = ROUTES.get(event["type"])
    if not routes:
        raise ValueError(f"no consumer for event type {event['type']!r}")
    job_ids = []
    for route in routes:
        if only is not None and route.consumer != only:
            continue
        job_id = job_id_for(route, event["event_id"], attempt)
        job_ids.append(job_id)
        try:
            queue(route.queue, connection).enqueue_call(
                route.handler,
                args=(event,),
                job_id=job_id,
                retry=EVENT_RETRY,
                timeout=EVENT_JOB_TIMEOUT,
                result_ttl=EVENT_RESULT_TTL,
                failure_ttl=EVENT_FAILURE_TTL,
                description=f"{event['type']} {event['event_id']}",
                # The event's own correlation id, whoever publishes it (the relay, a sweeper's re-send).
                meta={CORRELATION_META: event.get("correlation_id") or get_correlation_id()},
                pipeline=pipeline,
                unique=pipeline is None,
            )
        except DuplicateJobError:
            continue
    return job_ids
