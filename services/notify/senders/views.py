"""The console outbox page: every SMS and email the console senders "sent", with attachments to download.

Registered only while a console sender is in use, which production refuses; it shows patient contact details
and message texts, which is the point on a developer's machine and must never be reachable in production.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from sqlalchemy import func, select

from services.notify.models import CHANNELS, OutboxAttachment, OutboxMessage
from shared.api import public
from shared.db import get_session
from shared.problems import NotFound

# Development only: registered with the console senders, which production refuses.
bp = public(Blueprint("outbox", __name__, url_prefix="/outbox", template_folder="../templates"))
PAGE_SIZE = 100


def _message(message_id: int) -> OutboxMessage:
    row = get_session().get(OutboxMessage, message_id)
    if row is None:
        raise NotFound(f"No outbox message {message_id}.")
    return row


@bp.get("")
def index() -> str:
    """The newest messages first, optionally only SMS or only email."""
    channel = request.args.get("channel")
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(PAGE_SIZE)
    count = select(func.count()).select_from(OutboxMessage)
    if channel in CHANNELS:
        query = query.where(OutboxMessage.channel == channel)
        count = count.where(OutboxMessage.channel == channel)
    session = get_session()
    return render_template(
        "outbox/index.html",
        messages=session.scalars(query).all(),
        total=session.scalar(count) or 0,
        channel=channel if channel in CHANNELS else None,
    )


@bp.get("/<id(bits=64):message_id>")
def detail(message_id: int) -> str:
    """One message: SMS text, or email headers, text, HTML and attachments."""
    return render_template("outbox/detail.html", message=_message(message_id))


@bp.get("/<id(bits=64):message_id>/html")
def html(message_id: int) -> Response:
    """An email's HTML part, sandboxed: no scripts, no same-origin access."""
    response = Response(_message(message_id).html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    return response


@bp.get("/<id(bits=64):message_id>/raw")
def raw(message_id: int) -> Response:
    """An email as the mail server would have received it (.eml)."""
    message = _message(message_id)
    if message.raw is None:
        raise NotFound("Only emails have a raw form.")
    return Response(
        message.raw,
        mimetype="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="message-{message.id}.eml"'},
    )


@bp.get("/<id(bits=64):message_id>/attachments/<id(bits=64):attachment_id>")
def attachment(message_id: int, attachment_id: int) -> Response:
    """Download one attachment."""
    found = get_session().get(OutboxAttachment, attachment_id)
    if found is None or found.message_id != message_id:
        raise NotFound(f"No attachment {attachment_id} on message {message_id}.")
    safe_name = "".join(c for c in found.filename if c.isalnum() or c in "._-") or "attachment"
    return Response(
        found.data,
        mimetype=found.content_type,
        headers={"Content-Disposition": f'attachment; filename="{safe_name}"'},
    )
