"""Logs carry ids and a correlation id, never contact details or link tokens, on the error paths too.

Each test writes through the suite's real handler (``configure_logging``) and greps what it wrote.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from rq import Retry, SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from services.booking.models import Patient
from shared import queues
from shared.db import Database
from shared.logging import configure_logging, correlation, mask

NAME = "Quill Marchetti"
EMAIL = "quill.marchetti@example.com"
PHONE = "+14155552671"
log = logging.getLogger("suite.test")


def _suite_handler() -> logging.StreamHandler[Any]:
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_suite_handler", False))
    assert isinstance(handler, logging.StreamHandler)
    return handler


@pytest.fixture
def text_stream() -> Iterator[io.StringIO]:
    """What the suite's plain-text handler (development) writes."""
    stream = io.StringIO()
    configure_logging("test", fmt="text")
    old = _suite_handler().setStream(stream)
    yield stream
    _suite_handler().setStream(old)


def _leaks(output: str) -> list[str]:
    return [secret for secret in (NAME, EMAIL, PHONE, "4155552671", "555-2671") if secret in output]


def test_mask_hides_contacts_and_keeps_ids_times_and_codes() -> None:
    booking_id = "2a6446ba-1f7a-4a3d-a4c8-13f5c55e9d11"
    text = f"booking {booking_id} for +1 (415) 555-2671 / pat@example.com at /manage/eyJzIjoiYiJ9.sig?x=1"
    masked = mask(text)
    assert booking_id in masked
    assert "555" not in masked
    assert "pat@example.com" not in masked
    assert "eyJzIjoiYiJ9" not in masked
    for phone in ("+14155552671", "(415) 555-2671", "415-555-2671", "415.555.2671", "To=%2B14155552671&x=1"):
        assert "[phone]" in mask(phone), phone
    for kept in (
        "at 2026-03-03 10:00:00",
        "retry at 2026-12-04 16:12:35.123456+00:00, 7 remaining",
        "epoch 1733325155 took 12345678 ms",
        "twilio error 21610, sid SM0123456789abcdef0123456789abcdef",
        "job notify-2a6446ba-1f7a-4a3d-a4c8-13f5c55e9d11",
    ):
        assert mask(kept) == kept, kept


def test_extras_at_any_depth_are_masked_and_private_ones_dropped(log_stream: io.StringIO) -> None:
    with correlation("corr-1"):
        log.warning(
            "sent to %s",
            PHONE,
            extra={
                "phone": PHONE,
                "patient_name": NAME,
                "booking_id": "b1",
                "details": {"contact": {"email": EMAIL, "name": NAME}, "note": f"call {PHONE}"},
                "recipients": [EMAIL, {"to": PHONE}],
                "status": "sent",
            },
        )
    output = log_stream.getvalue()
    record = json.loads(output.splitlines()[-1])
    assert record["correlation_id"] == "corr-1"
    assert (record["booking_id"], record["status"]) == ("b1", "sent")
    assert record["details"] == {"contact": {}, "note": "call [phone]"}
    assert record["recipients"] == ["[email]", {}]
    assert record["message"] == "sent to [phone]"
    assert not _leaks(output)


def test_exception_text_and_stack_are_masked(log_stream: io.StringIO, text_stream: io.StringIO) -> None:
    for stream in (text_stream, log_stream):
        configure_logging("test", fmt="json" if stream is log_stream else "text")
        _suite_handler().setStream(stream)
        try:
            raise ValueError(f"no mailbox for <{EMAIL}>, call {PHONE}")
        except ValueError:
            log.exception(
                "could not deliver", stack_info=True, extra={"payload": {"email": EMAIL, "name": NAME}}
            )
        output = stream.getvalue()
        assert "ValueError: no mailbox for <[email]>, call [phone]" in output
        assert not _leaks(output)
    configure_logging("test", fmt="json")
    _suite_handler().setStream(log_stream)


def test_a_database_error_does_not_carry_the_bound_values(
    log_stream: io.StringIO, backend: str, make_database_url: Callable[[str, str], str]
) -> None:
    database = Database(make_database_url("booking", backend))
    # email_key NOT NULL: PostgreSQL quotes the whole failing row, SQLAlchemy the bound parameters.
    statement = insert(Patient).values(
        id=uuid.uuid4(), clinic_id=1, name=NAME, phone=PHONE, email=EMAIL, email_key=None, time_zone="UTC"
    )
    try:
        with pytest.raises(IntegrityError) as caught, database.transaction() as session:
            session.execute(statement)
        assert "SQL parameters hidden" in str(caught.value)
        try:
            raise caught.value
        except IntegrityError:
            log.exception("could not save the patient")
    finally:
        database.dispose()
    output = log_stream.getvalue()
    assert "IntegrityError" in output
    if backend == "postgresql":
        assert "Failing row contains ([row])" in output
    assert not _leaks(output)


def failing_handler(event: dict[str, Any]) -> None:
    """A queue handler whose provider refuses the patient's address and number (for the RQ test)."""
    patient = event["patient"]
    raise RuntimeError(f"550 <{patient['email']}> refused; then {patient['phone']} refused too")


def test_an_rq_retry_keeps_its_timestamp_and_the_failure_its_secrets(
    log_stream: io.StringIO, redis_client: redis.Redis
) -> None:
    event = {"type": "booking.confirmed", "patient": {"name": NAME, "email": EMAIL, "phone": PHONE}}
    job = queues.queue(queues.NOTIFY_QUEUE, redis_client).enqueue_call(
        f"{__name__}.failing_handler", args=(event,), retry=Retry(max=2, interval=[60]), description="test"
    )
    worker = SimpleWorker(
        [queues.queue(queues.NOTIFY_QUEUE, redis_client)], connection=redis_client, serializer=JSONSerializer
    )
    # Other tests' burst workers (logging_level="WARNING") leave RQ's loggers at WARNING; the suite's own
    # workers leave them alone (logging_level=None), so RQ's INFO lines reach the suite's handler.
    rq_job = logging.getLogger("rq.job")
    level = rq_job.level
    rq_job.setLevel(logging.NOTSET)
    try:
        worker.work(burst=True, logging_level=None)
    finally:
        rq_job.setLevel(level)
    output = log_stream.getvalue()
    retry = next(line for line in output.splitlines() if "scheduled for retry at" in line)
    assert re.search(r"retry at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00:00, 1 remaining", retry), retry
    assert "[phone]" not in retry
    assert job.id in output
    assert "RuntimeError: 550 <[email]> refused" in output
    assert not _leaks(output)  # the job's arguments (the whole event) are not logged either
