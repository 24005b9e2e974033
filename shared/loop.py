"""The one background loop of every poller: the relay, notify's dispatcher, consult's sweeper."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

# What a round may meet while Redis or the database is away: the loop backs off and tries again.
UNREACHABLE = (RedisError, OperationalError)


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """The event a loop runs until (``stop`` or a new one); in the main thread SIGTERM and SIGINT set it."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    return stop


def run_loop(
    name: str,
    step: Callable[[], float],
    *,
    max_backoff: float,
    stop: threading.Event | None = None,
) -> None:
    """Run ``step`` until stopped, waiting the seconds it returns between rounds (counted from its start).

    While Redis or the database is unreachable, rounds back off from one second, doubling up to
    ``max_backoff``; the work waits in the database meanwhile.
    """
    stop = stop_on_signals(stop)
    log.info("%s started", name)
    backoff = 0.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            wait = step()
        except UNREACHABLE as exc:
            backoff = min(max(backoff * 2, 1.0), max_backoff)
            log.warning(
                "%s: redis or database unreachable; trying again later",
                name,
                extra={"error": type(exc).__name__, "retry_seconds": backoff},
            )
            stop.wait(backoff)
            continue
        backoff = 0.0
        stop.wait(max(0.0, wait - (time.monotonic() - started)))
    log.info("%s stopped", name)
