"""The join page a patient or a provider opens from their link, in their own time zone.

Opening the page has no effect: link scanners in mail and SMS apps fetch every link they see, so the room
is opened and the access token issued only when the page POSTs to the access endpoint (the Join button).
The page names no clinic, provider, patient or visit type: whoever holds the link sees only times.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask.wrappers import Response

from services.consult import local_video, service
from services.consult.config import TWILIO
from services.consult.runtime import get_runtime
from shared.api import public
from shared.db import get_session
from shared.links import current_signer
from shared.timeutil import format_local

bp = public(Blueprint("pages", __name__))  # the join token in the path is the credential

SDK_FILE = "vendor/twilio-video.min.js"
STATUS = {
    service.INVALID: 404,
    service.EXPIRED: 410,
    service.ENDED: 410,
    service.CANCELLED_STATE: 410,
    service.REPLACED: 410,
}
# Twilio's SDK signals over wss and fetches its settings over https from twilio.com; media flows over
# WebRTC, which connect-src does not govern. Nothing else leaves the page.
CSP = (
    "default-src 'self'; script-src 'self'{eval}; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' https://*.twilio.com wss://*.twilio.com; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# twilio-video 2.x builds `new Function("url", "return import(url)")` when it loads (its loader for the
# noise-cancellation plugins), which a CSP without 'unsafe-eval' refuses, and the SDK then fails to load.
# Scripts still come only from this origin and inline scripts stay forbidden.
TWILIO_SCRIPT_EVAL = " 'unsafe-eval'"


def sdk_path(app_root: str) -> Path:
    """Where the Twilio Video SDK is served from (copied there from node_modules by ``make install``)."""
    return Path(app_root) / "static" / SDK_FILE


def sdk_fingerprint(path: Path) -> str | None:
    """A short hash of the SDK file, for cache-busting its URL; None if the file is missing."""
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@bp.after_request
def _page_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    # The URL carries the join token: it must not travel in a Referer header, nor be indexed.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["X-Content-Type-Options"] = "nosniff"
    twilio = get_runtime().config.video_provider == TWILIO
    response.headers["Content-Security-Policy"] = CSP.format(eval=TWILIO_SCRIPT_EVAL if twilio else "")
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(self), geolocation=()"
    return response


@bp.get("/join/<string:token>")
def join_page(token: str) -> ResponseReturnValue:
    """The join page: when to come back, the Join button, or why the link no longer works."""
    status = service.join_status(session=get_session(), signer=current_signer(), token=token)
    html = render_template("join.html", **_context(status, token))
    return html, STATUS.get(status.state, 200)


@bp.get("/join/manage/<string:token>")
def join_from_manage_link(token: str) -> ResponseReturnValue:
    """The patient's join page from their booking's manage page: on to the current version's join link."""
    found = service.patient_token_for_manage_link(session=get_session(), signer=current_signer(), token=token)
    if isinstance(found, str):
        return redirect(url_for("pages.join_page", token=found), code=303)
    html = render_template("join.html", **_context(found, ""))
    return html, STATUS.get(found.state, 200)


def _context(status: service.JoinStatus, token: str) -> dict[str, Any]:
    config = get_runtime().config
    c, zone = status.consultation, status.time_zone
    times: dict[str, str] = {}
    if c is not None and zone is not None:
        times = {
            "start": format_local(c.start_at, zone),
            "end": format_local(c.end_at, zone),
            "opens": format_local(c.opens_at, zone),
            "closes": format_local(c.closes_at, zone),
        }
    sdk_version = get_runtime().sdk_fingerprint
    is_open = status.state == service.OPEN
    local = config.video_provider != TWILIO
    return {
        "state": status.state,
        "participant": status.participant,
        "consultation": c,
        "times": times,
        "time_zone": zone,
        "opens_minutes": config.join_opens_minutes,
        "provider": config.video_provider,
        "access_url": url_for("join.Access", token=token) if is_open else "",
        "presence_url": url_for("local_video.Presence") if is_open and local else "",
        "leave_url": url_for("local_video.Leave") if is_open and local else "",
        "heartbeat_seconds": local_video.HEARTBEAT_SECONDS,
        "sdk_url": url_for("static", filename=SDK_FILE, v=sdk_version) if is_open and not local else "",
    }
