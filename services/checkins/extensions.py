"""The checkins app's long-lived parts, as the current app holds them (a request, a job or a command)."""

from __future__ import annotations

from flask import current_app

from services.checkins.config import CheckinsConfig
from services.checkins.plans import PlanBook
from services.checkins.publishing import Publisher
from services.checkins.service import Rules
from shared.app import get_redis
from shared.db import get_db
from shared.links import current_signer


def get_checkins_config() -> CheckinsConfig:
    """The checkins service's typed settings."""
    config: CheckinsConfig = current_app.extensions["suite_config"]
    return config


def get_plans() -> PlanBook:
    """The check-in plans loaded at start."""
    book: PlanBook = current_app.extensions["checkin_plans"]
    return book


def get_rules() -> Rules:
    """The flagging rules from the settings."""
    config = get_checkins_config()
    return Rules(rises={"phq9": config.phq9_rise, "gad7": config.gad7_rise})


def get_publisher() -> Publisher:
    """The current app's publisher of check-in events."""
    return Publisher(db=get_db(), redis=get_redis(), signer=current_signer(), config=get_checkins_config())
