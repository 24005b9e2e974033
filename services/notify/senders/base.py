"""The sender interfaces and what a send attempt can come back with."""

from __future__ import annotations

import contextlib
import enum
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Outcome(enum.Enum):
    """How one send attempt ended."""

    ACCEPTED = "accepted"  # the provider took the message
    RETRY = "retry"  # not taken, for a reason that may pass (rate limit, provider down): try again later
    PERMANENT = "permanent"  # refused for good (invalid or landline number, mailbox rejected)
    OPTED_OUT = "opted_out"  # the recipient opted out of SMS at the carrier (Twilio 21610)
    UNKNOWN = "unknown"  # the call may or may not have reached the provider: reconcile, never guess


@dataclass(frozen=True)
class SendResult:
    """The outcome of one send, with the provider's reference or the error."""

    outcome: Outcome
    provider_ref: str | None = None
    provider_status: str | None = None
    error_code: str | None = None
    detail: str = ""

    @classmethod
    def accepted(cls, ref: str, status: str | None = None) -> SendResult:
        """The provider took the message under reference ``ref``."""
        return cls(Outcome.ACCEPTED, provider_ref=ref, provider_status=status)


@dataclass(frozen=True)
class Lookup:
    """What a provider says about an earlier send whose outcome was not recorded."""

    found: bool
    provider_ref: str | None = None
    provider_status: str | None = None


@dataclass(frozen=True)
class OutgoingSms:
    """One SMS to send. ``key`` identifies the planned message (the same on every retry)."""

    key: str
    to: str
    body: str
    status_callback: str | None = None


class SmsSender(Protocol):
    """Sends SMS."""

    name: str

    def send(self, sms: OutgoingSms) -> SendResult:
        """Hand ``sms`` to the provider."""
        ...

    def find(self, sms: OutgoingSms, *, since: datetime) -> Lookup | None:
        """Whether ``sms`` already reached the provider (sent at or after ``since``); None: cannot tell.

        Raises when the provider cannot be asked right now.
        """
        ...


class EmailSender(Protocol):
    """Sends email built as :class:`email.message.EmailMessage` (so parts and attachments can be added)."""

    name: str

    def send(self, message: EmailMessage, *, key: str) -> SendResult:
        """Hand ``message`` to the mail server."""
        ...

    def find(self, *, key: str, since: datetime) -> Lookup | None:
        """Whether the message ``key`` already reached the server; None when the transport cannot tell."""
        ...


class Pool(Generic[T]):
    """Connections (SMTP sessions, HTTP clients) reused across send jobs and threads."""

    def __init__(self, create: Callable[[], T], close: Callable[[T], None], *, keep: int = 16) -> None:
        self._create = create
        self._close = close
        self._idle: queue.LifoQueue[T] = queue.LifoQueue(maxsize=keep)

    @contextlib.contextmanager
    def borrow(self) -> Iterator[tuple[T, bool]]:
        """A connection and whether it is new; one that raised is closed rather than given back."""
        try:
            item, fresh = self._idle.get_nowait(), False
        except queue.Empty:
            item, fresh = self._create(), True
        try:
            yield item, fresh
        except BaseException:
            self._discard(item)
            raise
        try:
            self._idle.put_nowait(item)
        except queue.Full:
            self._discard(item)

    def _discard(self, item: T) -> None:
        with contextlib.suppress(Exception):
            self._close(item)

    def close(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return


@dataclass(frozen=True)
class Senders:
    """The SMS and email senders a notify app uses."""

    sms: SmsSender
    email: EmailSender

    def close(self) -> None:
        """Close the senders' kept connections."""
        for sender in (self.sms, self.email):
            close = getattr(sender, "close", None)
            if close is not None:
                close()
