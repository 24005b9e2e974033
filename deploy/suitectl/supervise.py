"""``suite run NAME --supervise``: run a process, start it again when it dies, give up when it keeps dying.

`make run` starts every process this way under honcho, which restarts nothing and does not always see a death
(docs/ops.md, "Processes that die under make run"). Containers need none of it: their runtime restarts them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("suite.supervise")


@dataclass(frozen=True)
class Policy:
    """When a process that exited on its own is started again, and when the supervisor gives up instead."""

    max_restarts: int = 5  # restarts allowed within window_seconds; the death after them is the last
    window_seconds: float = 60.0
    first_delay: float = 1.0  # the pause before a restart doubles with each recent death, up to max_delay
    max_delay: float = 16.0
    group_grace_seconds: float = 10.0  # what is left of a dead process's group gets this long after SIGTERM

    def delay(self, recent_deaths: int) -> float:
        """The pause before the next start, after ``recent_deaths`` deaths within the window."""
        return float(min(self.first_delay * 2 ** max(recent_deaths - 1, 0), self.max_delay))


class Deaths:
    """The times a process died, forgotten once older than the policy's window."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.times: deque[float] = deque()

    def record(self, now: float) -> int:
        """Count a death at ``now``; the deaths within the window, this one included."""
        self.times.append(now)
        while self.times and self.times[0] <= now - self.policy.window_seconds:
            self.times.popleft()
        return len(self.times)

    def too_many(self) -> bool:
        """Whether one more start would exceed the restarts the policy allows within its window."""
        return len(self.times) > self.policy.max_restarts


class _Stop:
    """SIGTERM and SIGINT: pass the signal to the running process's group and start nothing more."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.event = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum
        self.event.set()
        if self.child is not None and self.child.poll() is None:
            _signal_group(self.child.pid, signum)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to process group ``pgid``; False if no process is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def end_group(pgid: int, grace: float) -> None:
    """End what is left in a process group (a dead worker's scheduler, gunicorn workers): TERM, then KILL."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _signal_group(pgid, 0):
            return
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)


def describe_exit(code: int) -> str:
    """How a process ended, for a log line: its exit status or the signal that killed it."""
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _run_once(argv: Sequence[str], stop: _Stop, grace: float) -> int:
    # Its own process group, so that whatever the process leaves behind when it dies can be ended with it.
    child = subprocess.Popen(list(argv), process_group=0)  # noqa: S603 - the command comes from our own table
    stop.child = child
    if stop.signum is not None:  # asked to stop while it was starting
        _signal_group(child.pid, stop.signum)
    code = child.wait()
    end_group(child.pid, grace)
    return code


def supervise(name: str, argv: Sequence[str], policy: Policy | None = None) -> int:
    """Run ``argv`` until SIGTERM or SIGINT, starting it again whenever it exits; the status to exit with."""
    policy = policy or Policy()
    stop, deaths = _Stop(), Deaths(policy)
    while True:
        code = _run_once(argv, stop, policy.group_grace_seconds)
        if stop.signum is not None:
            return code if code >= 0 else 128 - code
        recent = deaths.record(time.monotonic())
        if deaths.too_many():
            log.error(
                "%s %s and has died %d times within %.0f s: giving up, which stops the suite",
                name,
                describe_exit(code),
                recent,
                policy.window_seconds,
            )
            return 1
        delay = policy.delay(recent)
        log.warning("%s %s; starting it again in %.0f s", name, describe_exit(code), delay)
        if stop.event.wait(delay):
            return 0
