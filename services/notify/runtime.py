"""What the notify jobs, views and the dispatcher work with, built once per process by the app factory."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from flask import current_app
from redis import Redis

from services.notify.config import NotifyConfig
from services.notify.feed_cache import FeedCache
from services.notify.protocols import ProtocolBook
from services.notify.rendering import Renderer
from services.notify.senders import Senders
from shared.db import Database
from shared.links import LinkSigner

SEND_QUEUE = "notify-send"  # due reminders, in batches; the notify queue (events, confirmations) goes first


@dataclass(frozen=True)
class Runtime:
    """The notify service's parts: settings, database, Redis, protocols, templates, senders, link signer,
    and this process's cache of built calendar feeds."""

    config: NotifyConfig
    db: Database
    redis: Redis
    book: ProtocolBook
    renderer: Renderer
    senders: Senders
    signer: LinkSigner
    feed_cache: FeedCache = field(default_factory=FeedCache)
    feed_salt: str = ""  # what feeds depend on besides their rows (feeds.settings_salt)

    @property
    def call_budget_seconds(self) -> float:
        """The longest one provider call can take (SMTP may connect, start TLS and log in first)."""
        return max(self.config.twilio_timeout_seconds, self.config.smtp_timeout_seconds) * 2

    @property
    def send_job_timeout(self) -> int:
        """How long a send job may run before RQ stops it."""
        rounds = math.ceil(self.config.send_batch_size / self.config.send_concurrency)
        return int(rounds * self.call_budget_seconds + 30)


def get_runtime() -> Runtime:
    """The current app's notify runtime."""
    runtime: Runtime = current_app.extensions["notify"]
    return runtime
