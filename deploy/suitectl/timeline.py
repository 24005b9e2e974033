"""A booking's whole timeline, assembled from each service's staff API.

Services never read each other's databases, and neither does this: it asks each service over HTTP with a
staff key, as any client would. So it runs wherever the APIs answer (an ops laptop, a pod) without database
credentials, each service stays the only reader of its tables and the only judge of what it shows, and a
service that is down leaves a gap that says so instead of failing the whole timeline.

Nothing here prints patient details: entries name ids, states, channels and times.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One thing that happened to a booking."""

    at: datetime
    source: str
    what: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timeline:
    """A booking's entries, oldest first, and the sources that could not be read."""

    booking_id: uuid.UUID
    summary: dict[str, Any] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    gaps: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "booking_id": str(self.booking_id),
            "summary": self.summary,
            "entries": [
                {"at": e.at.isoformat(), "source": e.source, "what": e.what, "detail": e.detail}
                for e in self.entries
            ],
            "gaps": self.gaps,
        }

    def as_text(self) -> str:
        """Lines for a terminal."""
        lines = [f"booking {self.booking_id}"]
        if self.summary:
            lines.append("  " + ", ".join(f"{k}={v}" for k, v in self.summary.items()))
        for e in self.entries:
            extra = " ".join(f"{k}={v}" for k, v in e.detail.items() if v not in (None, ""))
            lines.append(f"{e.at.strftime('%Y-%m-%dT%H:%M:%SZ')}  {e.source:<8} {e.what}  {extra}".rstrip())
        for source, reason in self.gaps.items():
            lines.append(f"(no {source} entries: {reason})")
        return "\n".join(lines)


class ApiError(RuntimeError):
    """A service answered with an error (``status``) or not at all (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Api:
    """A service's staff API."""

    base_url: str
    api_key: str
    timeout: float = 10.0

    def get(self, path: str) -> Any:
        """GET ``path`` as JSON; raise ApiError on anything but 200."""
        if not self.base_url.startswith(("http://", "https://")):
            raise ApiError(f"not an http(s) URL: {self.base_url}")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            self.base_url.rstrip("/") + path,
            headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - ops-given URL
                return json.load(answer)
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{exc.code} from {path}", exc.code) from exc
        except urllib.error.URLError as exc:
            raise ApiError(f"unreachable ({exc.reason})") from exc
        except OSError as exc:
            raise ApiError(f"unreachable ({type(exc).__name__})") from exc


def parse_time(value: str) -> datetime:
    """An ISO time as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def booking_part(api: Api, booking_id: uuid.UUID, timeline: Timeline) -> None:
    """The booking as it is now, and every event it recorded and when the relay sent each on."""
    booking = api.get(f"/api/v1/bookings/{booking_id}")
    timeline.summary.update(
        status=booking["status"],
        version=booking["version"],
        start=booking["start"],
        end=booking["end"],
        provider_id=(booking.get("provider") or {}).get("id"),
        appointment_type=(booking.get("appointment_type") or {}).get("slug"),
    )
    for event in api.get(f"/api/v1/bookings/{booking_id}/events"):
        timeline.entries.append(
            Entry(
                at=parse_time(event["occurred_at"]),
                source="booking",
                what=f"{event['type']} v{event['version']}",
                detail={
                    "start": event["start"],
                    "event_id": event["event_id"],
                    "correlation_id": event["correlation_id"],
                },
            )
        )
        if event.get("published_at"):
            timeline.entries.append(
                Entry(
                    at=parse_time(event["published_at"]),
                    source="relay",
                    what=f"queued {event['type']} v{event['version']}",
                    detail={"event_id": event["event_id"]},
                )
            )
        else:
            timeline.gaps.setdefault("relay", f"event {event['event_id']} not yet on a queue")


def consult_part(api: Api, booking_id: uuid.UUID, timeline: Timeline) -> None:
    """The video consultation: its join links (issued, sent to notify) and its rooms (opened, completed)."""
    try:
        consultation = api.get(f"/api/v1/consultations/{booking_id}")
    except ApiError as exc:
        if exc.status == 404:
            timeline.gaps["consult"] = "no video consultation (in person, or its event has not arrived)"
            return
        raise
    links = consultation["links"]
    window = consultation["window"]
    timeline.summary.update(consult_window=window["state"], consult_version=consultation["version"])
    if links.get("issued_at"):
        timeline.entries.append(
            Entry(
                at=parse_time(links["issued_at"]),
                source="consult",
                what=f"join links v{links['version']} issued",
                detail={"opens_at": window["opens_at"], "closes_at": window["closes_at"]},
            )
        )
    if links.get("published_at"):
        timeline.entries.append(
            Entry(
                at=parse_time(links["published_at"]),
                source="consult",
                what=f"join links v{links['version']} sent to notify",
            )
        )
    elif links.get("issued"):
        timeline.gaps.setdefault("consult", f"join links v{links['version']} not yet on the queue")
    for room in consultation["rooms"]:
        timeline.entries.append(
            Entry(
                at=parse_time(room["created_at"]),
                source="consult",
                what=f"room v{room['version']} opened",
                detail={"provider": room["provider"], "room_sid": room["sid"]},
            )
        )
        if room.get("completed_at"):
            timeline.entries.append(
                Entry(
                    at=parse_time(room["completed_at"]),
                    source="consult",
                    what=f"room v{room['version']} completed",
                    detail={"room_sid": room["sid"]},
                )
            )


def notify_part(api: Api, booking_id: uuid.UUID, timeline: Timeline) -> None:
    """Notify's messages: sent, skipped, cancelled or failed ones when that was, pending ones when due."""
    try:
        found = api.get(f"/api/v1/bookings/{booking_id}/messages")
    except ApiError as exc:
        if exc.status == 404:
            timeline.gaps["notify"] = "notify has not seen this booking (its event has not arrived)"
            return
        raise
    timeline.summary.update(notify_version=found["version"], protocol=found["protocol"])
    for message in found["messages"]:
        name = f"{message['step']} by {message['channel']} v{message['booking_version']}"
        status = message["status"]
        detail = {"message_id": message["id"]}
        if status == "sent":
            at = message["sent_at"] or message["updated_at"]
            detail.update(delivery=message.get("delivery_status"), attempts=message["attempts"])
        elif status in ("planned", "queued", "sending"):
            at = message["due_at"]
            detail.update(waiting_for=message.get("blocked_on"))
        else:
            at = message["updated_at"]
            detail.update(reason=message.get("reason"), error=message.get("error_code"))
        timeline.entries.append(
            Entry(at=parse_time(at), source="notify", what=f"{status} {name}", detail=detail)
        )


Part = Callable[[Api, uuid.UUID, Timeline], None]


def build_timeline(booking_id: uuid.UUID, parts: dict[str, tuple[Api, Part]]) -> Timeline:
    """Ask every service for its part; a service that fails is named in ``gaps``."""
    timeline = Timeline(booking_id=booking_id)
    for source, (api, part) in parts.items():
        try:
            part(api, booking_id, timeline)
        except ApiError as exc:
            timeline.gaps[source] = str(exc)
        except (KeyError, TypeError, ValueError) as exc:
            timeline.gaps[source] = f"unexpected answer ({type(exc).__name__})"
    timeline.entries.sort(key=lambda e: (e.at, e.source))
    return timeline


def timeline_parts(
    *, key: str, booking_url: str, notify_url: str, consult_url: str
) -> dict[str, tuple[Api, Part]]:
    """Where each part of a timeline comes from."""
    return {
        "booking": (Api(booking_url, key), booking_part),
        "notify": (Api(notify_url, key), notify_part),
        "consult": (Api(consult_url, key), consult_part),
    }
