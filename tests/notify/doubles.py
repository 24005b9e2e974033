"""Test doubles for the providers' error paths, and a real SMTP server (aiosmtpd) to send mail to.

``TwilioAccount`` is a ``twilio.http.HttpClient`` (Twilio's own tests use the same seam): it answers Message
creates like Twilio (a queued Message, or the error it is told to return next) and lists what it accepted.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import logging
import ssl
import subprocess
import threading
import uuid
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from twilio.http import HttpClient
from twilio.http.response import Response

from shared.timeutil import utcnow
from tests.support.servers import free_port
from tests.support.twilio_mock import twilio_error

ACCOUNT_SID = "AC" + "0" * 32
MESSAGING_SERVICE_SID = "MG" + "0" * 32


class TwilioAccount(HttpClient):
    """An in-memory Twilio account behind the twilio library's HTTP seam."""

    def __init__(self) -> None:
        super().__init__(logger=logging.getLogger("twilio-double"), is_async=False)
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []
        self.creates: list[dict[str, Any]] = []
        self.lists: list[dict[str, Any]] = []
        self._next: deque[Response | BaseException] = deque()

    def fail_next(self, status: int, code: int | None = None, message: str = "error", times: int = 1) -> None:
        """Answer the next ``times`` creates with a Twilio error body."""
        for _ in range(times):
            self._next.append(twilio_error(status, code, message))

    def raise_next(self, exc: BaseException) -> None:
        """Make the next create raise ``exc`` (a transport failure)."""
        self._next.append(exc)

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
        assert auth == (ACCOUNT_SID, "test-auth-token-0123456789abcdef") or auth is not None
        path = uri.split("/2010-04-01/")[-1]
        with self.lock:
            if method == "POST" and path.endswith("/Messages.json"):
                form = dict(data or {})
                self.creates.append(form)
                if self._next:
                    answer = self._next.popleft()
                    if isinstance(answer, BaseException):
                        raise answer
                    return answer
                message = {
                    "sid": "SM" + uuid.uuid4().hex,
                    "account_sid": ACCOUNT_SID,
                    "to": form["To"],
                    "from": form.get("From"),
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": form["Body"],
                    "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                    "direction": "outbound-api",
                    "date_created": format_datetime(utcnow(), usegmt=True),
                    "date_sent": None,
                    "error_code": None,
                }
                self.accepted.append(message)
                return Response(201, json.dumps(message))
            if method == "GET" and path.endswith("/Messages.json"):
                query = dict(params or {})
                self.lists.append(query)
                found = [m for m in reversed(self.accepted) if m["to"] == query.get("To", m["to"])]
                page = {
                    "messages": found[: int(str(query.get("PageSize", 50)))],
                    "page": 0,
                    "page_size": 50,
                    "start": 0,
                    "end": len(found),
                    "first_page_uri": uri,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "uri": uri,
                }
                return Response(200, json.dumps(page))
        return Response(404, json.dumps({"status": 404, "message": "not in the double", "code": 20404}))

    def bodies_to(self, to: str) -> list[str]:
        """The bodies accepted for ``to``, oldest first."""
        return [m["body"] for m in self.accepted if m["to"] == to]


@dataclass
class MailHandler:
    """Keeps every message the SMTP server accepts; refuses recipients named like ``reject-550@...``."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        local = address.split("@")[0]
        if local.startswith("reject-"):
            code = local.removeprefix("reject-")
            # Naming the recipient, as real servers do ("550 5.1.1 <x@y>: Recipient address rejected").
            return f"{code} {code[0]}.1.1 <{address}>: refused by the test server"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class MailServer:
    """A running aiosmtpd server."""

    host: str
    port: int
    handler: MailHandler
    client_context: ssl.SSLContext | None


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (made with openssl)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return cert, key


class _SMTPSController(Controller):
    """aiosmtpd speaking TLS from the first byte (port 465 style).

    aiosmtpd only counts STARTTLS as TLS when deciding whether AUTH may be offered, so over implicit TLS
    AUTH must be allowed "without TLS", which makes it warn; here the warning is wrong, so it is silenced.
    """

    def factory(self) -> SMTPServer:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            server: SMTPServer = super().factory()
            return server


@contextlib.contextmanager
def mail_server(
    workdir: Path, *, security: str = "none", username: str = "", password: str = ""
) -> Iterator[MailServer]:
    """An aiosmtpd server on 127.0.0.1: plain, STARTTLS or implicit TLS, with optional AUTH."""
    handler = MailHandler()
    port = free_port()
    server_context: ssl.SSLContext | None = None
    client_context: ssl.SSLContext | None = None
    if security != "none":
        cert, key = self_signed_certificate(workdir)
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        client_context = ssl.create_default_context(cafile=str(cert))

    def authenticate(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            username.encode(),
            password.encode(),
        )
        return AuthResult(success=ok)

    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": port}
    if username:
        kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=security == "starttls")
    controller: Controller
    if security == "ssl":
        assert server_context is not None
        controller = _SMTPSController(handler, ssl_context=server_context, **kwargs)
    elif security == "starttls":
        controller = Controller(handler, tls_context=server_context, require_starttls=True, **kwargs)
    else:
        controller = Controller(handler, **kwargs)
    controller.start()
    try:
        yield MailServer("127.0.0.1", port, handler, client_context)
    finally:
        controller.stop()
