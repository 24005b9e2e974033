"""SMS through Twilio Messaging (the twilio library), with Twilio's errors sorted into retry or give up."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import requests
from twilio.base import values
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from services.notify.senders.base import Lookup, Outcome, OutgoingSms, Pool, SendResult

log = logging.getLogger(__name__)
# The twilio library logs every request's URL at INFO, and a Messages list URL carries the patient's number.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

OPTED_OUT_CODE = 21610  # "Attempt to send to unsubscribed recipient"
# How far back to look for a send whose outcome was lost (clock skew between us and Twilio).
LOOKUP_SLACK = timedelta(minutes=5)


def classify_error(status: int, code: int | None, detail: str) -> SendResult:
    """Sort a Twilio error response into retry, opted out or permanent."""
    text = str(code) if code is not None else None
    if code == OPTED_OUT_CODE:
        return SendResult(Outcome.OPTED_OUT, error_code=text, detail="the number opted out (21610)")
    if status == 429 or status >= 500:
        return SendResult(Outcome.RETRY, error_code=text or str(status), detail=f"Twilio answered {status}")
    if status in (401, 403):
        # Our credentials, not the message: retrying lets messages go once ops fix the settings.
        return SendResult(
            Outcome.RETRY, error_code=text or str(status), detail="Twilio refused our credentials"
        )
    return SendResult(Outcome.PERMANENT, error_code=text or str(status), detail=detail[:300])


def _never_reached_twilio(exc: requests.RequestException) -> bool:
    """Whether a transport error happened before the request could have reached Twilio."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        cause: Any = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", None)
        return type(reason).__name__ in {"NewConnectionError", "NameResolutionError"}
    return False


def _close_client(client: Client) -> None:
    session = getattr(client.http_client, "session", None)
    if session is not None:
        session.close()


class TwilioSmsSender:
    """Sends through a Messaging Service (or a From number) with a status callback per message."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str = "",
        from_number: str = "",
        api_base_url: str = "",
        timeout: float = 8.0,
        http_client: HttpClient | None = None,
    ) -> None:
        if not (messaging_service_sid or from_number):
            raise ValueError("a Messaging Service SID or a From number is required")
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._messaging_service_sid = messaging_service_sid
        self._from_number = from_number
        self._api_base_url = api_base_url.rstrip("/")
        self._timeout = timeout
        self._http_client = http_client
        # A client (and its HTTP session) per concurrent call, kept across send jobs for keep-alive.
        self._pool: Pool[Client] = Pool(self._new_client, _close_client)

    def _new_client(self) -> Client:
        http = self._http_client or TwilioHttpClient(timeout=self._timeout)
        client = Client(self._account_sid, self._auth_token, http_client=http)
        if self._api_base_url:
            client.api.base_url = self._api_base_url
        return client

    def close(self) -> None:
        """Close the kept HTTP sessions."""
        self._pool.close()

    def send(self, sms: OutgoingSms) -> SendResult:
        """Create the Message at Twilio."""
        sender: dict[str, Any] = (
            {"messaging_service_sid": self._messaging_service_sid}
            if self._messaging_service_sid
            else {"from_": self._from_number}
        )
        try:
            with self._pool.borrow() as (client, _fresh):
                message = client.messages.create(
                    to=sms.to,
                    body=sms.body,
                    status_callback=sms.status_callback or values.unset,
                    **sender,
                )
        except TwilioRestException as exc:
            return classify_error(exc.status, exc.code, str(exc.msg))
        except TwilioServiceException as exc:
            return classify_error(exc.status, exc.code, exc.detail or exc.title)
        except requests.RequestException as exc:
            if _never_reached_twilio(exc):
                return SendResult(Outcome.RETRY, detail=f"could not connect to Twilio ({type(exc).__name__})")
            return SendResult(Outcome.UNKNOWN, detail=f"no answer from Twilio ({type(exc).__name__})")
        except TwilioException as exc:
            return SendResult(Outcome.UNKNOWN, detail=f"Twilio client error ({type(exc).__name__})")
        return SendResult.accepted(str(message.sid), message.status)

    def find(self, sms: OutgoingSms, *, since: datetime) -> Lookup | None:
        """Look for this body among the latest Messages to this number (Twilio has no idempotency key)."""
        with self._pool.borrow() as (client, _fresh):
            recent = client.messages.list(to=sms.to, limit=50)
        for message in recent:
            created = message.date_created
            if message.body == sms.body and (created is None or created >= since - LOOKUP_SLACK):
                return Lookup(found=True, provider_ref=str(message.sid), provider_status=message.status)
        return Lookup(found=False)
