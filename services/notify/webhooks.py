"""Twilio's webhooks: inbound SMS (keywords and replies, services/notify/replies) and status callbacks."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from services.notify import delivery
from services.notify.models import Message, OptOut
from services.notify.replies import publishing
from services.notify.replies import service as replies
from services.notify.runtime import get_runtime
from shared.api import public
from shared.db import unit_of_work
from shared.fields import parse_id
from shared.problems import Forbidden, field_error

# Twilio signs every call (X-Twilio-Signature): the signature is the credential.
bp = public(Blueprint("twilio_webhooks", __name__, url_prefix="/webhooks/twilio"))

INBOUND_PATH = "/webhooks/twilio/inbound"
STATUS_PATH = "/webhooks/twilio/status"
# Twilio's SIDs are 34 characters; anything much longer is no SID of ours, and the request is refused.
SID_MAX = 64


def public_url() -> str:
    """The URL of this request as Twilio called it (behind any proxy), for the signature."""
    base = get_runtime().config.notify_public_url.rstrip("/")
    query = request.query_string.decode()
    return f"{base}{request.path}" + (f"?{query}" if query else "")


def verify_signature() -> None:
    """Raise 403 unless the request carries Twilio's valid signature."""
    token = get_runtime().config.twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature", "")
    if (
        not token
        or not signature
        or not RequestValidator(token).validate(public_url(), request.form, signature)
    ):
        raise Forbidden("The Twilio signature is missing or wrong.", slug="bad-signature")


def _twiml(response: MessagingResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def _fit(value: str | None, column: Any) -> str | None:
    """``value`` cut to ``column``'s length: what Twilio reports about a message is kept, never refused."""
    return value[: column.type.length] if value else None


def _message_id() -> int | None:
    """The message id we put in the callback URL (``?m=``), if any; 422 if it is no id."""
    raw = request.args.get("m")
    if raw is None:
        return None
    message_id = parse_id(raw, bits=64)
    if message_id is None:
        raise field_error("m", "not a message id", location="query")
    return message_id


def _inbound_sid() -> str:
    """The inbound message's MessageSid (each is handled once, whatever Twilio retries)."""
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    if not sid:
        raise field_error("MessageSid", "missing", location="form")
    if len(sid) > SID_MAX:
        raise field_error("MessageSid", f"longer than {SID_MAX} characters", location="form")
    return sid


@bp.post("/inbound")
def inbound() -> Response:
    """An SMS someone sent: STOP/START/HELP first, then a reply to a reminder (C to confirm, R to change)."""
    verify_signature()
    phone = request.form.get("From", "")
    if not phone:
        raise field_error("From", "missing", location="form")
    if len(phone) > OptOut.phone.type.length:
        # No number we text is that long; cut short it could opt out someone else's.
        raise field_error("From", "longer than any phone number", location="form")
    sid = _inbound_sid()
    runtime = get_runtime()
    with unit_of_work() as session:
        outcome = replies.handle_inbound(
            session=session,
            runtime=runtime,
            sid=sid,
            phone=phone,
            body=request.form.get("Body", ""),
            opt_out_type=request.form.get("OptOutType"),
        )
    if outcome.publish_reply_id is not None:
        publishing.publish_after_commit(runtime, outcome.publish_reply_id)
    reply = MessagingResponse()
    if outcome.answer:
        reply.message(outcome.answer)
    return _twiml(reply)


@bp.post("/status")
def status() -> Response:
    """A message's delivery status changed (queued, sent, delivered, undelivered, failed)."""
    verify_signature()
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    state = request.form.get("MessageStatus") or request.form.get("SmsStatus") or ""
    if not sid or not state:
        raise field_error("MessageStatus" if sid else "MessageSid", "missing", location="form")
    if len(sid) > SID_MAX:
        raise field_error("MessageSid", f"longer than {SID_MAX} characters", location="form")
    update = delivery.StatusUpdate(
        message_sid=sid,
        # Lower-cased before the cut: some letters lower-case to two ("İ"), which would overflow the column.
        status=_fit(state.lower(), Message.delivery_status) or "",
        error_code=_fit(request.form.get("ErrorCode"), Message.error_code),
        message_id=_message_id(),
    )
    with unit_of_work() as session:
        delivery.record_status(session=session, update=update)
    # An unknown message is still a 204: Twilio would only retry a callback we can never use.
    return Response(status=204)
