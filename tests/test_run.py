"""`make run`'s script starts the whole suite on its embedded defaults, prints working links, and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.servers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_run_script_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("BOOKING_PORT", "NOTIFY_PORT", "CONSULT_PORT", "REDIS_PORT")}
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
        "REDIS_DIR": str(tmp_path / "redis"),
        "BOOKING_DATABASE_URL": f"sqlite:///{tmp_path}/booking.db",
        "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path}/notify.db",
        "CONSULT_DATABASE_URL": f"sqlite:///{tmp_path}/consult.db",
    }
    for key in ("REDIS_URL", "BOOKING_PUBLIC_URL", "NOTIFY_PUBLIC_URL", "CONSULT_PUBLIC_URL"):
        env.pop(key, None)
    process = subprocess.Popen(
        [str(ROOT / "deploy/dev/run.sh")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(output)
        assert "Press Ctrl-C to stop everything." in text, text[-3000:]

        links = dict(re.findall(r"^\s{2}(\S[^\n]*?)\s{2,}(http://127\.0\.0\.1:\d+/\S+)", text, flags=re.M))
        for service in ("Booking", "Notify", "Consult"):
            docs = links[f"{service} API docs"]
            assert requests.get(docs, timeout=10).status_code == 200
        demo = next(url for label, url in links.items() if label.startswith("Demo patient"))
        assert requests.get(demo, timeout=10).status_code == 200

        # The seeded booking's event went through the relay and the queue to both consumers.
        def handled(service: str) -> bool:
            with sqlite3.connect(tmp_path / f"{service}.db") as db:
                return bool(db.execute("SELECT count(*) FROM processed_events").fetchone()[0])

        wait_until(lambda: handled("notify") and handled("consult"), timeout=60, what="event delivery")

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
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        finally:
            if process.stdout is not None:
                process.stdout.close()
    # Every process of the group is gone: nothing still answers on the suite's ports.
    for port in ports.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
