"""Named points where a test may have a process SIGKILL itself, to prove nothing is lost whoever dies.

``SUITE_KILL_AT=<point>`` (or ``<point>@<n>``: at the n-th time the point is reached) makes this process kill
itself there; unset, ``reached`` is a dictionary look-up and nothing else. Production refuses the setting.
"""

from __future__ import annotations

import os
import signal

ENV = "SUITE_KILL_AT"
_point, _, _nth = os.environ.get(ENV, "").partition("@")
_remaining = int(_nth) if _nth.isdigit() else 1


def reached(point: str) -> None:
    """Die here (SIGKILL, no clean-up) if this process was told to."""
    global _remaining
    if point != _point:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
