"""``twilio.http.HttpClient`` doubles for answers the contract mock cannot give (Twilio's own tests do this).

``ScriptedHttpClient`` answers from a list; ``RoomRegistryClient`` forwards to Prism but remembers which
unique names it created, and answers a second create of the same name the way Twilio does (400, 53113).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from tests.support.twilio_mock import twilio_error


@dataclass
class Sent:
    """One request the client was asked to make."""

    method: str
    url: str
    data: dict[str, Any] = field(default_factory=dict)
    auth: tuple[str, str] | None = None


def room_body(sid: str, status: str = "in-progress", unique_name: str = "room") -> dict[str, Any]:
    """A room resource as Twilio returns it."""
    return {
        "sid": sid,
        "status": status,
        "unique_name": unique_name,
        "account_sid": "AC" + "1" * 32,
        "type": "group",
        "max_participants": 2,
        "date_created": "2026-03-03T14:45:00Z",
        "date_updated": "2026-03-03T14:45:00Z",
        "url": f"https://video.twilio.com/v1/Rooms/{sid}",
        "links": {},
    }


class ScriptedHttpClient(HttpClient):
    """Answers each request with the next scripted response (or raises the next scripted exception)."""

    def __init__(self, *answers: Response | Exception) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.answers: deque[Response | Exception] = deque(answers)
        self.sent: list[Sent] = []

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.sent.append(Sent(method.upper(), uri, dict(data or {}), auth))
        if not self.answers:
            raise AssertionError(f"unexpected request {method} {uri}")
        next_answer = self.answers.popleft()
        if isinstance(next_answer, Exception):
            raise next_answer
        return next_answer


class RoomRegistryClient(TwilioHttpClient):
    """Prism for every request, except that a second create of one unique name gets Twilio's 53113."""

    def __init__(self) -> None:
        super().__init__(timeout=10)
        self.created: set[str] = set()
        self.sent: list[Sent] = []

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.sent.append(Sent(method.upper(), url, dict(data or {}), auth))
        name = str((data or {}).get("UniqueName", ""))
        if method.upper() == "POST" and url.endswith("/v1/Rooms") and name:
            if name in self.created:
                return twilio_error(400, 53113, "Room exists")
            self.created.add(name)
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)
