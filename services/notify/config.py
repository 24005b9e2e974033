"""Settings of the notify service."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import CommonConfig, setting


@dataclass(frozen=True)
class NotifyConfig(CommonConfig):
    """Notify service settings (plus the common ones)."""

    database_url: str = setting(
        "NOTIFY_DATABASE_URL",
        default="sqlite:///var/notify.db",
        doc="notify database (SQLAlchemy URL; `postgresql+psycopg://...` in production)",
    )
