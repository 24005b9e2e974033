"""`make bench` keeps working: every benchmark runs to the end at a small size, and its correctness checks hold.

Figures are never asserted here (speed is the benchmarks' business, on a quiet machine); what is asserted is that
each benchmark still runs against the current code and schema, and that the checks of what the suite did under
load (nothing lost or doubled, no reminder twice, 304 without a rebuild) are met.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "BENCH_SECONDS": "1",
    "BENCH_FEED_BOOKINGS": "60",
    "BENCH_REMINDERS": "300",
    "BENCH_NOOP_JOBS": "100",
    "BENCH_BOOKINGS": "10",
    "BENCH_UPCOMING": "1000",
    "BENCH_COURSE_ROUNDS": "5",
    "BENCH_COURSE_RACERS": "10",
    "BENCH_REPLIES": "50",
    "BENCH_CHECKINS": "300",
    # A send job cut short by the suite benchmark's kill is settled after NOTIFY_SENDING_STALE_SECONDS (300 s
    # by default); shorter provider timeouts let it be shorter here.
    "TWILIO_TIMEOUT_SECONDS": "2",
    "SMTP_TIMEOUT_SECONDS": "2",
    "NOTIFY_SENDING_STALE_SECONDS": "70",
}
CORRECTNESS = (
    "unchanged ETag answered 304 without building",
    "no reminder twice",
    "nothing lost or doubled",
    "no chair held twice, no partial course, every loser given a plan",
    "every reply processed once",
)


@pytest.mark.slow
@pytest.mark.postgres  # the benchmarks run on their own PostgreSQL
@pytest.mark.timeout(900)  # about 6 minutes: seven benchmarks, each starting its own servers
def test_every_benchmark_runs_and_its_correctness_checks_hold() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench"],
        cwd=ROOT,
        env={**os.environ, **SMALL},
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    output = done.stdout + done.stderr
    # Shown whole if the test fails (pytest cuts long assertion messages short, and the tables say which check
    # failed and by how much); the services' JSON log lines are left out.
    print("\n".join(line for line in done.stdout.splitlines() if not line.startswith('{"time"')))
    assert done.returncode == 0, output[-5000:]
    benchmarks = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "tests/bench").glob("bench_*.py"))
    assert re.findall(r"^=== benchmark: (\w+) ===$", done.stdout, flags=re.M) == benchmarks
    verdicts = re.findall(r"^\s+(MET|MISSED)\s+(.+?):", done.stdout, flags=re.M)
    for check in CORRECTNESS:
        found = [outcome for outcome, name in verdicts if name == check]
        assert found, f"{check!r} was not reported"
        assert set(found) == {"MET"}, f"{check!r} missed: see the tables in the captured stdout"
