"""Console senders: the embedded default. They record each message in the notify database instead of sending
it, for the /outbox page where a person running ``make run`` reads every SMS and email the suite "sent".
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.notify.models import EMAIL, SMS, OutboxAttachment, OutboxMessage
from services.notify.senders.base import Lookup, OutgoingSms, SendResult
from shared.db import Database, is_unique_violation

log = logging.getLogger(__name__)


def _ref(row_id: int) -> str:
    return f"console-{row_id}"


class _ConsoleBase:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _record(self, row: OutboxMessage) -> SendResult:
        # Idempotent by key: the same planned message recorded twice stays one entry.
        try:
            with self._db.transaction() as session:
                session.add(row)
                session.flush()
                ref = _ref(row.id)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            found = self._lookup(row.message_key)
            assert found is not None
            return SendResult.accepted(found, "delivered")
        log.info("console %s recorded", row.channel, extra={"outbox_id": ref})
        return SendResult.accepted(ref, "delivered")

    def _lookup(self, key: str) -> str | None:
        with self._db.transaction() as session:
            row_id = session.scalar(select(OutboxMessage.id).where(OutboxMessage.message_key == key))
        return _ref(row_id) if row_id is not None else None

    def _find(self, key: str) -> Lookup:
        ref = self._lookup(key)
        return Lookup(found=ref is not None, provider_ref=ref, provider_status="delivered" if ref else None)


class ConsoleSmsSender(_ConsoleBase):
    """Records SMS in the console outbox."""

    name = "console"

    def send(self, sms: OutgoingSms) -> SendResult:
        """Record ``sms``."""
        return self._record(OutboxMessage(message_key=sms.key, channel=SMS, recipient=sms.to, text=sms.body))

    def find(self, sms: OutgoingSms, *, since: datetime) -> Lookup | None:
        """Whether ``sms`` was recorded."""
        return self._find(sms.key)


def _attachments(message: EmailMessage, *, body_parts: tuple[Any, ...]) -> list[OutboxAttachment]:
    """The files of ``message`` as the outbox page offers them (a calendar alternative part as invite.ics)."""
    named = {p.get_filename() for p in message.walk() if not p.is_multipart()}
    found = []
    for part in message.walk():
        if part.is_multipart() or part in body_parts:
            continue
        content_type = part.get_content_type()
        filename = part.get_filename()
        if filename is None and content_type == "text/calendar" and "invite.ics" not in named:
            filename = "invite.ics"  # a calendar alternative part, shown as a file (unless attached as one)
        if filename is None:
            continue
        payload = part.get_payload(decode=True)
        found.append(
            OutboxAttachment(
                filename=filename,
                content_type=content_type,
                data=payload if isinstance(payload, bytes) else b"",
            )
        )
    return found


class ConsoleEmailSender(_ConsoleBase):
    """Records email, with its parts and attachments, in the console outbox."""

    name = "console"

    def send(self, message: EmailMessage, *, key: str) -> SendResult:
        """Record ``message``."""
        text_part = message.get_body(preferencelist=("plain",))
        html_part = message.get_body(preferencelist=("html",))
        row = OutboxMessage(
            message_key=key,
            channel=EMAIL,
            recipient=parseaddr(str(message["To"]))[1] or str(message["To"]),
            sender=str(message["From"] or ""),
            subject=str(message["Subject"] or ""),
            text=text_part.get_content() if text_part is not None else "",
            html=html_part.get_content() if html_part is not None else "",
            raw=message.as_bytes(),
        )
        row.attachments.extend(_attachments(message, body_parts=(text_part, html_part)))
        return self._record(row)

    def find(self, *, key: str, since: datetime) -> Lookup | None:
        """Whether the message ``key`` was recorded."""
        return self._find(key)
