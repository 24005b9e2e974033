"""Settings of the booking service."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import CommonConfig, setting


@dataclass(frozen=True)
class BookingConfig(CommonConfig):
    """Booking service settings (plus the common ones)."""

    database_url: str = setting(
        "BOOKING_DATABASE_URL",
        default="sqlite:///var/booking.db",
        doc="booking database (SQLAlchemy URL; `postgresql+psycopg://...` in production)",
    )
    outbox_poll_seconds: float = setting(
        "OUTBOX_POLL_SECONDS", default=0.2, parse=float, doc="how often the relay looks for new events"
    )
    outbox_batch_size: int = setting(
        "OUTBOX_BATCH_SIZE", default=200, parse=int, doc="events the relay moves to Redis per round"
    )
    outbox_retention_days: int = setting(
        "OUTBOX_RETENTION_DAYS", default=14, parse=int, doc="days a published event stays in the outbox table"
    )
