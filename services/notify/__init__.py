"""The notify service: confirmations and preparation reminders by SMS and email, provider invites."""

from services.notify.app import create_app

__all__ = ["create_app"]
