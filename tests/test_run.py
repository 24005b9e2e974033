"""`make run`'s script starts the whole suite on its embedded defaults, prints working links, starts again a process
that dies, and stops on Ctrl-C."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import requests

from tests.support.servers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
STAFF = {"Authorization": "Bearer dev-api-key"}


@dataclasses.dataclass
class Running:
    """The suite as `make run` started it: its ports, the links it printed, and its output so far."""

    ports: dict[str, int]
    links: dict[str, str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _environment(tmp_path: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
        "REDIS_DIR": str(tmp_path / "redis"),
        "BOOKING_DATABASE_URL": f"sqlite:///{tmp_path}/booking.db",
        "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path}/notify.db",
        "CONSULT_DATABASE_URL": f"sqlite:///{tmp_path}/consult.db",
        "CHECKINS_DATABASE_URL": f"sqlite:///{tmp_path}/checkins.db",
    }
    for key in (
        "REDIS_URL",
        "BOOKING_PUBLIC_URL",
        "NOTIFY_PUBLIC_URL",
        "CONSULT_PUBLIC_URL",
        "CHECKINS_PUBLIC_URL",
    ):
        env.pop(key, None)
    return env


@contextlib.contextmanager
def run_script(tmp_path: Path) -> Iterator[Running]:
    """deploy/dev/run.sh until it prints its links; Ctrl-C at the end, and nothing left on the suite's ports."""
    ports = {
        name: free_port()
        for name in ("BOOKING_PORT", "NOTIFY_PORT", "CONSULT_PORT", "CHECKINS_PORT", "REDIS_PORT")
    }
    log = tmp_path / "run.log"
    # A file, not a pipe: nobody reads a pipe while the test works, and a full one would stall the suite.
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(ROOT / "deploy/dev/run.sh")],
            cwd=ROOT,
            env=_environment(tmp_path, ports),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "Press Ctrl-C" in log.read_text() or process.poll() is not None, timeout=120, what="run"
        )
        text = log.read_text()
        assert "Press Ctrl-C to stop everything." in text, text[-3000:]
        links = dict(re.findall(r"^\s{2}(\S[^\n]*?)\s{2,}(http://127\.0\.0\.1:\d+/\S+)", text, flags=re.M))
        yield Running(ports, links, log)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    # Every process of the group is gone: nothing still answers on the suite's ports.
    for port in ports.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


@pytest.mark.slow
def test_run_script_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    with run_script(tmp_path) as suite:
        links = suite.links
        for service in ("Booking", "Notify", "Consult", "Checkins"):
            docs = links[f"{service} API docs"]
            assert requests.get(docs, timeout=10).status_code == 200
        demo = next(url for label, url in links.items() if label.startswith("Demo patient"))
        assert requests.get(demo, timeout=10).status_code == 200
        sheet = requests.get(links["Staff day sheet"], timeout=10)
        assert sheet.status_code == 200
        assert "Dr." in sheet.text  # the demo booking's provider, on the day of the demo booking

        # The seeded booking's event went through the relay and the queue to both consumers.
        def handled(service: str) -> bool:
            with sqlite3.connect(tmp_path / f"{service}.db") as db:
                return bool(db.execute("SELECT count(*) FROM processed_events").fetchone()[0])

        wait_until(
            lambda: handled("notify") and handled("consult") and handled("checkins"),
            timeout=60,
            what="event delivery",
        )

        # The demo booking's confirmation is on the notify outbox page, by SMS and by email.
        outbox = links['Messages "sent"']
        wait_until(
            lambda: (
                "Demo Clinic: your video appointment is booked" in requests.get(outbox, timeout=10).text
                and "Your video appointment on" in requests.get(outbox, timeout=10).text
            ),
            timeout=60,
            what="the demo confirmation on the outbox page",
        )

        # The provider got the demo booking's calendar invite, and their private feed lists it.
        wait_until(
            lambda: "Invitation: Video appointment" in requests.get(outbox, timeout=10).text,
            timeout=60,
            what="the provider's invite on the outbox page",
        )
        feed = requests.get(links["Provider's calendar feed"], timeout=10)
        assert feed.status_code == 200
        assert feed.headers["Content-Type"].startswith("text/calendar")
        assert "BEGIN:VEVENT" in feed.text
        assert "STATUS:CONFIRMED" in feed.text


def _notify_worker_pids(client: redis.Redis) -> set[int]:
    """The processes registered as workers on the notify queue (what SuiteQueueHasNoWorkers counts)."""
    keys = client.smembers("rq:workers") & client.smembers("rq:workers:notify")
    return {int(client.hget(key, "pid") or 0) for key in keys} - {0}


def _book(booking_api: str, email: str) -> None:
    """Book the demo booking's provider and type at their first free time, for a new patient."""
    demo = requests.get(f"{booking_api}/api/v1/bookings", headers=STAFF, timeout=10).json()["items"][0]
    start = datetime.now(UTC)
    ids = {"provider_id": demo["provider"]["id"], "appointment_type_id": demo["appointment_type"]["id"]}
    slots = requests.get(
        f"{booking_api}/api/v1/slots",
        params={**ids, "start": start.isoformat(), "end": (start + timedelta(days=14)).isoformat()},
        timeout=10,
    ).json()["slots"]
    patient = {"name": "Kit Restart", "email": email, "phone": "+14155552671", "time_zone": "Europe/London"}
    answer = requests.post(
        f"{booking_api}/api/v1/bookings",
        headers=STAFF,
        json={**ids, "start": slots[0]["start"], "patient": {**patient, "sms_consent": True}},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


@pytest.mark.slow
def test_a_killed_notify_worker_is_started_again_and_confirmations_keep_going(tmp_path: Path) -> None:
    with run_script(tmp_path) as suite:
        client = redis.Redis(port=suite.ports["REDIS_PORT"])
        # `make run` starts three notify workers (docs/performance.md).
        wait_until(lambda: len(_notify_worker_pids(client)) == 3, timeout=60, what="the notify workers")
        first = _notify_worker_pids(client)
        killed = min(first)
        os.kill(killed, signal.SIGKILL)

        wait_until(
            lambda: len(_notify_worker_pids(client) - first) == 1, timeout=60, what="a new notify worker"
        )
        assert "notify-worker was killed by SIGKILL; starting it again in 1 s" in suite.output()

        # A booking made after the kill gets its confirmation, from the new worker.
        booking_api = suite.links["Booking API docs"].removesuffix("/api/docs")
        _book(booking_api, "kit.restart@example.com")
        outbox = suite.links['Messages "sent"']
        wait_until(
            lambda: "kit.restart@example.com" in requests.get(outbox, timeout=10).text,
            timeout=90,
            what="the new booking's confirmation on the outbox page",
        )
        client.close()
    assert "giving up" not in suite.output()
