"""The checkins service: scheduled follow-up check-ins (PHQ-9, GAD-7, mood and pain), scored and watched."""

from services.checkins.app import create_app

__all__ = ["create_app"]
