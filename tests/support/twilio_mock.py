"""The Twilio contract mock: Prism serving Twilio's own OpenAPI description (npm packages in package.json), and
the error answers the mock cannot give, for ``twilio.http.HttpClient`` doubles.

Prism answers with the examples from the description and refuses requests that break its contract (a missing
``To``, a malformed parameter), so a test against it proves our requests are ones Twilio would accept.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import requests
from twilio.http.response import Response

from tests.support.servers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "node_modules/@twilio-alpha/mcp/twilio-oai/spec/json"
API_SPEC = SPECS / "twilio_api_v2010.json"
VIDEO_SPEC = SPECS / "twilio_video_v1.json"
PRISM = ROOT / "node_modules/.bin/prism"


def ensure_node_parts() -> None:
    """Install the pinned npm packages if they are missing (``npm ci`` from package-lock.json)."""
    if not PRISM.exists() or not API_SPEC.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)


class PrismServer:
    """``prism mock`` on one Twilio description, on 127.0.0.1."""

    def __init__(self, spec: Path, log_path: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ensure_node_parts()
        # The child keeps its own copy of the descriptor; ours is closed at once.
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(self.port), str(self.spec)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # Any HTTP answer (even Prism's 404 for "/") means it is listening.
        wait_until(lambda: requests.get(self.url, timeout=1).status_code > 0, timeout=90, what="prism mock")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def answer(status: int, body: dict[str, Any]) -> Response:
    """A canned Twilio answer."""
    return Response(status, json.dumps(body), {"Content-Type": "application/json"})


def twilio_error(status: int, code: int | None, message: str) -> Response:
    """An error body in Twilio's classic shape (``code`` None: an answer without one, as some 5xx are)."""
    body: dict[str, Any] = {
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    if code is not None:
        body["code"] = code
    return answer(status, body)
