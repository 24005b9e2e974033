"""What the consult jobs, views and the sweeper work with, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from services.consult.config import ConsultConfig
from services.consult.video import VideoProvider
from shared.db import Database
from shared.links import LinkSigner


@dataclass(frozen=True)
class Runtime:
    """The consult service's parts: settings, database, Redis, link signer, video provider."""

    config: ConsultConfig
    db: Database
    redis: Redis
    signer: LinkSigner
    video: VideoProvider
    sdk_fingerprint: str | None = None  # the join page's Twilio Video SDK build, when Twilio is the provider


def get_runtime() -> Runtime:
    """The current app's consult runtime."""
    runtime: Runtime = current_app.extensions["consult"]
    return runtime
