"""Job functions for the worker tests (enqueued by dotted name, like the services' handlers)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def succeed(payload: dict[str, Any]) -> str:
    """Log one line under the job's correlation id and succeed."""
    log.info("test job ran", extra={"n": payload.get("n")})
    return "ok"


def fail(payload: dict[str, Any]) -> str:
    """Always fail (as a handler whose provider is down would)."""
    raise RuntimeError("provider unavailable")
