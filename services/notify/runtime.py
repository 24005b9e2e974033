"""What the notify jobs, views and the dispatcher work with, built once per process by the app factory."""

from __future__ import annotations

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


def get_runtime() -> Runtime:
    """The current app's notify runtime."""
    runtime: Runtime = current_app.extensions["notify"]
    return runtime
