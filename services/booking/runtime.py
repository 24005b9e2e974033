"""What the booking views, pages and the relay work with, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from services.booking.config import BookingConfig
from shared.db import Database
from shared.links import LinkSigner


@dataclass(frozen=True)
class Runtime:
    """The booking service's parts: settings, database, Redis, link signer."""

    config: BookingConfig
    db: Database
    redis: Redis
    signer: LinkSigner


def get_runtime() -> Runtime:
    """The current app's booking runtime."""
    runtime: Runtime = current_app.extensions["booking"]
    return runtime
