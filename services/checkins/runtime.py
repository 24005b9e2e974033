"""What the checkins jobs, pages, views and scheduler work with, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from services.checkins.config import CheckinsConfig
from services.checkins.plans import PlanBook
from services.checkins.publishing import Publisher
from services.checkins.service import Rules
from shared.db import Database
from shared.links import LinkSigner


@dataclass(frozen=True)
class Runtime:
    """The checkins service's parts: settings, database, Redis, link signer, plans, flagging rules."""

    config: CheckinsConfig
    db: Database
    redis: Redis
    signer: LinkSigner
    plans: PlanBook
    rules: Rules

    @property
    def publisher(self) -> Publisher:
        """What publishing check-in events needs, from these parts."""
        return Publisher(db=self.db, redis=self.redis, signer=self.signer, config=self.config)


def get_runtime() -> Runtime:
    """The current app's checkins runtime."""
    runtime: Runtime = current_app.extensions["checkins"]
    return runtime
