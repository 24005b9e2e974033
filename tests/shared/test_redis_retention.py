"""How long Redis holds an event, whose payload carries the patient's contact details (deploy/README.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from shared import queues
from tests.notify.factories import Booking

HOUR = 3600


def _published(redis_client: redis.Redis) -> list[Job]:
    event = Booking(start=datetime(2026, 3, 5, 15, tzinfo=UTC)).confirmed(at=datetime(2026, 3, 2, tzinfo=UTC))
    job_ids = queues.publish(redis_client, event)
    return [Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer) for job_id in job_ids]


def test_an_event_job_is_kept_minutes_after_it_finishes_and_days_after_it_fails(
    redis_client: redis.Redis,
) -> None:
    jobs = _published(redis_client)
    retries = sum(queues.EVENT_RETRY.intervals)
    assert timedelta(seconds=retries) < timedelta(hours=3)  # what the docs promise for a retrying event
    for job in jobs:
        assert job.result_ttl is not None
        assert job.result_ttl <= 600
        assert job.failure_ttl is not None
        assert job.failure_ttl <= 3 * 24 * HOUR


def test_a_failed_event_leaves_redis_within_three_days(redis_client: redis.Redis) -> None:
    (notify_job, _consult_job, _checkins_job) = _published(redis_client)
    notify_job.retries_left = 0  # its retries used up
    notify_job.save()
    # No app context here, so the handler fails: the job goes to the failed registry.
    worker = SimpleWorker(
        [queues.queue(queues.NOTIFY_QUEUE, redis_client)], connection=redis_client, serializer=JSONSerializer
    )
    worker.work(burst=True, logging_level=None)
    assert notify_job.get_status(refresh=True) == "failed"
    assert 2 * 24 * HOUR < redis_client.ttl(notify_job.key) <= 3 * 24 * HOUR
