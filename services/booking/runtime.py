"""What the booking views, pages and the relay work with, built once per process by the app factory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import current_app
from redis import Redis

from services.booking.config import BookingConfig
from services.booking.readiness.checklists import Checklist
from shared.db import Database
from shared.links import LinkSigner


@dataclass(frozen=True)
class Runtime:
    """The booking service's parts: settings, database, Redis, link signer, day-before checklists."""

    config: BookingConfig
    db: Database
    redis: Redis
    signer: LinkSigner
    checklists: Mapping[str, Checklist]  # by reminder protocol


def get_runtime() -> Runtime:
    """The current app's booking runtime."""
    runtime: Runtime = current_app.extensions["booking"]
    return runtime
