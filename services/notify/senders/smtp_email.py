"""Email over SMTP: the Twilio SendGrid relay (user ``apikey``) or any server; STARTTLS, SSL or plain."""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from datetime import datetime
from email.message import EmailMessage

from services.notify.senders.base import Lookup, Outcome, SendResult

log = logging.getLogger(__name__)


def _smtp_result(code: int, detail: str) -> SendResult:
    """A 4xx reply is temporary, a 5xx reply is final (RFC 5321)."""
    outcome = Outcome.RETRY if 400 <= code < 500 else Outcome.PERMANENT
    return SendResult(outcome, error_code=f"smtp-{code}", detail=detail[:300])


class SmtpEmailSender:
    """Sends each message over a connection kept per thread and reopened when the server dropped it."""

    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str = "",
        password: str = "",
        security: str = "starttls",
        timeout: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"unknown SMTP security {security!r}")
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._security = security
        self._timeout = timeout
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._local = threading.local()

    def _connect(self) -> smtplib.SMTP:
        connection: smtplib.SMTP
        if self._security == "ssl":
            connection = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=self._ssl_context
            )
        else:
            connection = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            if self._security == "starttls":
                connection.starttls(context=self._ssl_context)
        if self._username:
            connection.login(self._username, self._password)
        return connection

    def _drop(self) -> None:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.close()
            except OSError:
                log.debug("closing a broken SMTP connection failed")

    def _send_once(self, message: EmailMessage) -> None:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        connection.send_message(message)

    def send(self, message: EmailMessage, *, key: str) -> SendResult:
        """Send ``message``; a kept connection the server closed meanwhile is reopened once."""
        reused = getattr(self._local, "connection", None) is not None
        try:
            try:
                self._send_once(message)
            except smtplib.SMTPServerDisconnected:
                self._drop()
                if not reused:
                    raise
                self._send_once(message)
        except smtplib.SMTPRecipientsRefused as exc:
            self._drop()
            code, reply = next(iter(exc.recipients.values()))
            return _smtp_result(code, reply.decode(errors="replace"))
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            # Our credentials, not the message: retrying lets it go once ops fix SMTP_PASSWORD.
            return SendResult(Outcome.RETRY, error_code=f"smtp-{exc.smtp_code}", detail="SMTP login refused")
        except smtplib.SMTPResponseException as exc:
            self._drop()
            error = exc.smtp_error
            return _smtp_result(
                exc.smtp_code, error.decode(errors="replace") if isinstance(error, bytes) else error
            )
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            # SMTP has no way to ask afterwards; the message is sent again with the same Message-ID.
            return SendResult(Outcome.RETRY, detail=f"mail server unreachable ({type(exc).__name__})")
        return SendResult.accepted(str(message["Message-ID"]), "sent")

    def find(self, *, key: str, since: datetime) -> Lookup | None:
        """SMTP cannot say whether a message was accepted earlier."""
        return None

    def close(self) -> None:
        """Close this thread's connection."""
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                log.debug("quitting the SMTP connection failed")
        self._local.connection = None
