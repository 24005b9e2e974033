"""Logs carry ids and a correlation id, never contact details or link tokens."""

from __future__ import annotations

import io
import json
import logging

from shared.logging import PrivacyFilter, correlation, mask


def test_mask_keeps_ids_and_hides_contacts() -> None:
    booking_id = "2a6446ba-1f7a-4a3d-a4c8-13f5c55e9d11"
    text = f"booking {booking_id} for +1 (415) 555-2671 / pat@example.com at /manage/eyJzIjoiYiJ9.sig?x=1"
    masked = mask(text)
    assert booking_id in masked
    assert "555" not in masked
    assert "pat@example.com" not in masked
    assert "eyJzIjoiYiJ9" not in masked
    assert "2026-03-03 10:00:00" in mask("at 2026-03-03 10:00:00")


def test_filter_drops_private_extras(log_stream: io.StringIO) -> None:
    log = logging.getLogger("suite.test")
    with correlation("corr-1"):
        log.warning(
            "sent to %s",
            "+14155552671",
            extra={"phone": "+14155552671", "patient_name": "Pat", "booking_id": "b1"},
        )
    record = json.loads(log_stream.getvalue().splitlines()[-1])
    assert record["correlation_id"] == "corr-1"
    assert record["booking_id"] == "b1"
    assert "phone" not in record
    assert "patient_name" not in record
    assert "+14155552671" not in log_stream.getvalue()
    assert PrivacyFilter().filter(logging.makeLogRecord({"msg": "x"}))
