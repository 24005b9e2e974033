"""Settings of the booking service."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from shared.config import CommonConfig, at_least, positive, setting


def shared_storage(url: str) -> str | None:
    """Production check: rate-limit counts must be shared by every process (not ``memory://``)."""
    if url.startswith("memory:"):
        return "must not be memory:// in production: each process would count alone (empty: the Redis)"
    return None


@dataclass(frozen=True)
class BookingConfig(CommonConfig):
    """Booking service settings (plus the common ones)."""

    database_url: str = setting(
        "BOOKING_DATABASE_URL",
        default="sqlite:///var/booking.db",
        database=True,
        doc="booking database (SQLAlchemy URL; `postgresql+psycopg://...` in production)",
    )
    outbox_poll_seconds: float = setting(
        "OUTBOX_POLL_SECONDS",
        default=0.2,
        parse=float,
        check=positive,
        doc="how often the relay looks for new events",
    )
    outbox_batch_size: int = setting(
        "OUTBOX_BATCH_SIZE",
        default=200,
        parse=int,
        check=at_least(1),
        doc="events the relay moves to Redis per round",
    )
    outbox_retention_days: int = setting(
        "OUTBOX_RETENTION_DAYS",
        default=14,
        parse=int,
        check=at_least(1),
        doc="days a published event stays in the outbox table",
    )
    inbox_retention_days: int = setting(
        "BOOKING_INBOX_RETENTION_DAYS",
        default=800,
        parse=int,
        check=at_least(731),
        doc="days the id of a handled event (notify's `notify.sms_reply`) stays, so a redelivery changes"
        " nothing; above 730: notify holds a reply until its visit, booked up to 730 days ahead, is over and"
        " re-sends it while unacknowledged",
    )
    secret_key: str = setting(
        "BOOKING_SECRET_KEY",
        default="",
        secret=True,
        min_length=32,
        doc="signs the booking pages' session cookie (CSRF tokens); the same on every replica; "
        "empty = derived from the signing key of LINK_SIGNING_KEYS",
    )

    @property
    def cookie_key(self) -> str:
        """The pages' session-cookie key: BOOKING_SECRET_KEY, or one derived from the link-signing key."""
        if self.secret_key:
            return self.secret_key
        # A separate key per use, derived from the secret ops already manage (HMAC as the KDF).
        return hmac.new(
            self.link_signing_keys[-1].encode(), b"booking-pages-session", hashlib.sha256
        ).hexdigest()

    booking_rate_limit: str = setting(
        "BOOKING_RATE_LIMIT",
        default="10 per minute;40 per hour",
        doc="limit on the patient pages' form submissions per client address (Flask-Limiter syntax)",
    )
    link_resend_per_hour: int = setting(
        "LINK_RESEND_PER_HOUR",
        default=3,
        parse=int,
        check=at_least(0),
        doc="times per hour a booking's current manage link is sent again when asked for from an older or "
        "cancelled link (0: never); further asks get the same answer and send nothing",
    )
    rate_limit_storage_url: str = setting(
        "RATE_LIMIT_STORAGE_URL",
        default="",
        production_check=shared_storage,
        doc="where rate-limit counts live: empty = the REDIS_URL Redis (shared by replicas); "
        "`memory://` = in each process (one process only)",
    )
    trusted_proxies: int = setting(
        "TRUSTED_PROXIES",
        default=0,
        parse=int,
        check=at_least(0),
        doc="how many reverse proxies in front set X-Forwarded-For/-Proto (the rate limit keys on the client "
        "address they report)",
    )
