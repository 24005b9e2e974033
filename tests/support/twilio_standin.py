"""A fast local stand-in for Twilio's Messages API, run as its own process.

It does what the notify service needs and no more: ``POST .../Messages.json`` records the message and answers
201 like Twilio; ``GET .../Messages.json?To=`` lists what it recorded for a number (the reconciliation after
an interrupted send). It is for what Prism cannot do: keep what it was sent, answer thousands of calls a
second (the benchmark), and hang on purpose so a test can kill a worker mid-send.

Control endpoints: ``GET /_standin/messages?since=N`` (recorded messages from index N, with arrival times),
``GET /_standin/count``,
``POST /_standin/rules`` (``{"hang_after_record": [numbers], "hang_before_record": [numbers],
"busy_once": [numbers]}``: the next call to a busy_once number answers 503),
``POST /_standin/release`` (wake hung calls and clear the rules), ``GET /_standin/pending`` (hung calls).

Run: ``python -m tests.support.twilio_standin --port N``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.support.servers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.hang_after: set[str] = set()
        self.hang_before: set[str] = set()
        self.busy_once: set[str] = set()
        self.release = threading.Event()
        self.pending: list[str] = []


STATE = _State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the twilio library's session expects
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        return {k: v[0] for k, v in parse_qs(raw).items()}

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_standin/rules":
            rules = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            with STATE.lock:
                STATE.hang_after = set(rules.get("hang_after_record", []))
                STATE.hang_before = set(rules.get("hang_before_record", []))
                STATE.busy_once = set(rules.get("busy_once", []))
                STATE.release.clear()
            self._send(200, {"ok": True})
            return
        if path == "/_standin/release":
            with STATE.lock:
                STATE.hang_after, STATE.hang_before = set(), set()
                STATE.release.set()
            self._send(200, {"ok": True})
            return
        if not path.endswith("/Messages.json"):
            self._send(404, {"status": 404, "message": "not in the stand-in", "code": 20404})
            return
        form = self._form()
        to = form.get("To", "")
        with STATE.lock:
            busy = to in STATE.busy_once
            STATE.busy_once.discard(to)
        if busy:
            self._send(503, {"status": 503, "message": "Service unavailable", "code": 20503})
            return
        if to in STATE.hang_before:
            STATE.pending.append(to)
            STATE.release.wait()
            return  # the caller is gone by now; nothing was recorded
        message = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": path.split("/")[3],
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form.get("Body", ""),
            "status": "accepted",
            "direction": "outbound-api",
            "date_created": formatdate(usegmt=True),
            "date_sent": None,
            "error_code": None,
            "status_callback": form.get("StatusCallback"),
        }
        with STATE.lock:
            message["index"] = len(STATE.messages)
            message["received_at"] = time.time()
            STATE.messages.append(message)
        if to in STATE.hang_after:
            STATE.pending.append(to)
            STATE.release.wait()
            return
        self._send(201, message)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/_standin/messages":
            with STATE.lock:
                self._send(200, {"messages": STATE.messages[int(query.get("since", 0)) :]})
            return
        if parts.path == "/_standin/count":
            self._send(200, {"count": len(STATE.messages)})
            return
        if parts.path == "/_standin/pending":
            self._send(200, {"pending": list(STATE.pending)})
            return
        if parts.path.endswith("/Messages.json"):
            with STATE.lock:
                found = [m for m in reversed(STATE.messages) if m["to"] == query.get("To", m["to"])]
            size = int(query.get("PageSize", 50))
            self._send(
                200,
                {
                    "messages": found[:size],
                    "page": 0,
                    "page_size": size,
                    "start": 0,
                    "end": min(size, len(found)),
                    "first_page_uri": self.path,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "uri": self.path,
                },
            )
            return
        self._send(404, {"status": 404, "message": "not in the stand-in", "code": 20404})


class _Server(ThreadingHTTPServer):
    # Twilio takes every connection: a deep accept queue, so a burst of sends is never kept waiting for a
    # retransmitted SYN (socketserver's default queue holds 5).
    request_queue_size = 128


def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until killed."""
    server = _Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


class StandIn:
    """Client side of a running stand-in process."""

    def __init__(self, port: int, pid: int = 0) -> None:
        self.port = port
        self.pid = pid  # the stand-in's process (0: not started here)
        self.url = f"http://127.0.0.1:{port}"
        self._session = requests.Session()

    def messages(self, since: int = 0) -> list[dict[str, Any]]:
        """What it recorded, in arrival order."""
        answer = self._session.get(f"{self.url}/_standin/messages", params={"since": since}, timeout=10)
        messages: list[dict[str, Any]] = answer.json()["messages"]
        return messages

    def count(self) -> int:
        """How many messages it recorded."""
        count: int = self._session.get(f"{self.url}/_standin/count", timeout=10).json()["count"]
        return count

    def pending(self) -> list[str]:
        """Numbers whose calls are hanging."""
        pending: list[str] = self._session.get(f"{self.url}/_standin/pending", timeout=10).json()["pending"]
        return pending

    def rules(
        self,
        *,
        hang_after_record: Sequence[str] = (),
        hang_before_record: Sequence[str] = (),
        busy_once: Sequence[str] = (),
    ) -> None:
        """Make calls to these numbers hang (after or before recording the message), or fail once with 503."""
        body = {
            "hang_after_record": list(hang_after_record),
            "hang_before_record": list(hang_before_record),
            "busy_once": list(busy_once),
        }
        self._session.post(f"{self.url}/_standin/rules", json=body, timeout=10).raise_for_status()

    def release(self) -> None:
        """Wake the hung calls and clear the rules."""
        self._session.post(f"{self.url}/_standin/release", timeout=10).raise_for_status()

    def close(self) -> None:
        """Close this client's connections."""
        self._session.close()


@contextlib.contextmanager
def running_standin() -> Iterator[StandIn]:
    """Start a stand-in process on a free port; stop it afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.twilio_standin", "--port", str(port)], cwd=ROOT
    )
    client = StandIn(port, process.pid)
    try:
        wait_until(
            lambda: requests.get(f"{client.url}/_standin/pending", timeout=1).ok, timeout=20, what="stand-in"
        )
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
