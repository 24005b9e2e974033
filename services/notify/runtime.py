"""What the notify jobs, views and the dispatcher work with, built once per process by the app factory."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from flask import current_app
from redis import Redis

from services.notify.calendar.cache import FeedCache
from services.notify.config import NotifyConfig
from services.notify.protocols import ProtocolBook
from services.notify.rendering import Renderer
from services.notify.senders import Senders
from shared.db import Database
from shared.links import LinkSigner
from shared.queues import NOTIFY_QUEUE

# A notify worker takes its queues in this order, each time it is free (docs/performance.md): the patient's
# urgent messages (confirmations, join links), then events (planning), then routine sends (reminders, notices,
# provider invites). A burst of bookings or of due reminders never holds a confirmation back.
URGENT_QUEUE = "notify-urgent"
SEND_QUEUE = "notify-send"


class SendPool:
    """This process's threads for provider calls, started once at first use (after any fork) and reused by
    every batch: a pool per batch started a thread per message, which a busy worker paid on every event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def get(self, threads: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="notify-send")
            return self._pool


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
    send_pool: SendPool = field(default_factory=SendPool)
    feed_salt: str = ""  # what feeds depend on besides their rows (feeds.settings_salt)


def get_runtime() -> Runtime:
    """The current app's notify runtime."""
    runtime: Runtime = current_app.extensions["notify"]
    return runtime


def worker_queues() -> list[str]:
    """The queues a notify worker listens on, first taken first."""
    return [URGENT_QUEUE, NOTIFY_QUEUE, SEND_QUEUE]
