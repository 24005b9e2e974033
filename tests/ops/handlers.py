"""Job functions for the worker tests (enqueued by dotted name, like the services' handlers)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def succeed(payload: dict[str, Any]) -> str:
    """Log one line under the job's correlation id and succeed."""
    log.info("test job ran", extra={"n": payload.get("n")})
    return "ok"


def fail(payload: dict[str, Any]) -> str:
    """Always fail (as a handler whose provider is down would)."""
    raise RuntimeError("provider unavailable")


def slow_first_time(payload: dict[str, Any]) -> str:
    """Note each run in a file; the first run hangs (long enough for the test to kill its worker)."""
    marks = Path(payload["marks"])
    with marks.open("a") as handle:
        handle.write("run\n")
    if marks.read_text().count("run") == 1:
        time.sleep(60)
    return "done"
