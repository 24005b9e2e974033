"""Providers that deliver messages, behind two small interfaces: SMS and email.

Each has a real implementation (Twilio Messaging, SMTP) and a console one that records into the notify
database for the /outbox page. ``build_senders`` picks them from the settings. The same contract tests run
against every implementation.
"""

from __future__ import annotations

from services.notify.senders.base import (
    EmailSender,
    Lookup,
    Outcome,
    OutgoingSms,
    Senders,
    SendResult,
    SmsSender,
)
from services.notify.senders.factory import build_senders

__all__ = [
    "EmailSender",
    "Lookup",
    "Outcome",
    "OutgoingSms",
    "SendResult",
    "Senders",
    "SmsSender",
    "build_senders",
]
