"""Settings of the consult service."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import CommonConfig, setting


@dataclass(frozen=True)
class ConsultConfig(CommonConfig):
    """Consult service settings (plus the common ones)."""

    database_url: str = setting(
        "CONSULT_DATABASE_URL",
        default="sqlite:///var/consult.db",
        doc="consult database (SQLAlchemy URL; `postgresql+psycopg://...` in production)",
    )
