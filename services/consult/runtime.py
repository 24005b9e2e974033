"""The consult app's long-lived parts, as the current app holds them (a request, a job or a command)."""

from __future__ import annotations

from flask import current_app

from services.consult.config import ConsultConfig
from services.consult.video import VideoProvider


def get_consult_config() -> ConsultConfig:
    """The consult service's typed settings."""
    config: ConsultConfig = current_app.extensions["suite_config"]
    return config


def get_video() -> VideoProvider:
    """The configured video provider."""
    video: VideoProvider = current_app.extensions["video_provider"]
    return video
