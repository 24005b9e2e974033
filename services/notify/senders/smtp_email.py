"""Email over SMTP: the Twilio SendGrid relay (user ``apikey``) or any server; STARTTLS, SSL or plain."""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage

from services.notify.senders.base import Lookup, Outcome, Pool, SendResult

log = logging.getLogger(__name__)


def _smtp_result(code: int, detail: str) -> SendResult:
    """A 4xx reply is temporary, a 5xx reply is final (RFC 5321)."""
    outcome = Outcome.RETRY if 400 <= code < 500 else Outcome.PERMANENT
    return SendResult(outcome, error_code=f"smtp-{code}", detail=detail[:300])


def _quit(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


class SmtpEmailSender:
    """Sends over pooled connections; one the server closed while idle is replaced once, at once."""

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
        self._pool: Pool[smtplib.SMTP] = Pool(self._connect, _quit)

    def _connect(self) -> smtplib.SMTP:
        connection: smtplib.SMTP
        if self._security == "ssl":
            connection = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=self._ssl_context
            )
        else:
            connection = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            if self._security == "starttls":
                connection.starttls(context=self._ssl_context)
            if self._username:
                connection.login(self._username, self._password)
        except BaseException:
            connection.close()
            raise
        return connection

    def send(self, message: EmailMessage, *, key: str) -> SendResult:
        """Send ``message``."""
        for _attempt in range(2):
            fresh = True
            try:
                with self._pool.borrow() as (connection, fresh):
                    connection.send_message(message)
            except smtplib.SMTPServerDisconnected:
                if fresh:
                    return SendResult(Outcome.RETRY, detail="the mail server closed the connection")
                continue  # a kept connection the server had closed meanwhile: once more on a new one
            except smtplib.SMTPRecipientsRefused as exc:
                code, refusal = next(iter(exc.recipients.values()))
                return _smtp_result(code, refusal.decode(errors="replace"))
            except smtplib.SMTPAuthenticationError as exc:
                # Our credentials, not the message: retrying lets it go once ops fix SMTP_PASSWORD.
                return SendResult(
                    Outcome.RETRY, error_code=f"smtp-{exc.smtp_code}", detail="SMTP login refused"
                )
            except smtplib.SMTPResponseException as exc:
                error = exc.smtp_error
                reply = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
                return _smtp_result(exc.smtp_code, reply)
            except (smtplib.SMTPException, OSError) as exc:
                # SMTP has no way to ask afterwards; a retry sends it again with the same Message-ID.
                return SendResult(Outcome.RETRY, detail=f"mail server unreachable ({type(exc).__name__})")
            return SendResult.accepted(str(message["Message-ID"]), "sent")
        return SendResult(Outcome.RETRY, detail="the mail server keeps closing the connection")

    def find(self, *, key: str, since: datetime) -> Lookup | None:
        """SMTP cannot say whether a message was accepted earlier."""
        return None

    def close(self) -> None:
        """Close the kept connections."""
        self._pool.close()
