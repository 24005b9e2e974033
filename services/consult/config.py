"""Settings of the consult service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.config import TwilioAccountConfig, at_least, between, one_of, positive, setting
from shared.links import JOIN_LINK_GRACE, MANAGE_LINK_GRACE

LOCAL = "local"
TWILIO = "twilio"
VIDEO_PROVIDERS = (LOCAL, TWILIO)
GRACE_MINUTES = int(JOIN_LINK_GRACE.total_seconds() // 60)
MANAGE_DAYS = MANAGE_LINK_GRACE.days


@dataclass(frozen=True)
class ConsultConfig(TwilioAccountConfig):
    """Consult service settings (plus the common ones)."""

    database_url: str = setting(
        "CONSULT_DATABASE_URL",
        default="sqlite:///var/consult.db",
        database=True,
        doc="consult database (SQLAlchemy URL; `postgresql+psycopg://...` in production)",
    )
    join_opens_minutes: int = setting(
        "CONSULT_JOIN_OPENS_MINUTES",
        default=15,
        parse=int,
        check=between(0, 1440),
        doc="minutes before the start a join link starts working (0-1440)",
    )
    join_closes_minutes: int = setting(
        "CONSULT_JOIN_CLOSES_MINUTES",
        default=30,
        parse=int,
        # A join token expires at end + JOIN_LINK_GRACE whatever this says; a later close would promise
        # patients a window their links cannot honour.
        check=between(0, GRACE_MINUTES, " (join links expire that long after the end)"),
        doc="minutes after the end a join link stops working and the room is completed "
        f"(0 to {GRACE_MINUTES}, the join token's own grace)",
    )
    sweep_seconds: float = setting(
        "CONSULT_SWEEP_SECONDS",
        default=10.0,
        parse=float,
        check=positive,
        doc="how often the sweeper completes rooms that are due, re-sends unpublished links and redelivers "
        "links notify has not acknowledged",
    )
    inbox_retention_days: int = setting(
        "CONSULT_INBOX_RETENTION_DAYS",
        default=800,
        parse=int,
        check=at_least(731),
        doc="days the id of a handled booking event stays, so a redelivery changes nothing; above 730:"
        " booking re-sends what its outbox holds (`outbox-replay`), and a visit is booked up to 730 days"
        " ahead (keep it above `OUTBOX_RETENTION_DAYS` too)",
    )
    visit_retention_days: int = setting(
        "CONSULT_VISIT_RETENTION_DAYS",
        default=90,
        parse=int,
        # A manage link still asks this service for the visit's join link until it expires.
        check=at_least(MANAGE_DAYS, f" (a manage link works {MANAGE_DAYS} days after the visit)"),
        doc="days a consultation (its window, link secret, rooms and acknowledged link deliveries) stays"
        f" after its join window closed, for staff and `suite timeline`; at least {MANAGE_DAYS}: a manage"
        " link asks for the join link until then. A room not yet completed always stays",
    )
    video_provider: str = setting(
        "VIDEO_PROVIDER",
        default=LOCAL,
        check=one_of(*VIDEO_PROVIDERS),
        production_check=lambda value: (
            "must be twilio in production (local is a development stand-in)" if value == LOCAL else None
        ),
        doc="`local` (a room page on this service, for development) or `twilio` (Twilio Video; "
        "required in production)",
    )
    twilio_api_key_sid: str = setting(
        "TWILIO_API_KEY_SID",
        default="",
        doc="Twilio API key SID (`SK...`): signs Video access tokens and calls the Rooms API",
    )
    twilio_api_key_secret: str = setting(
        "TWILIO_API_KEY_SECRET",
        default="",
        secret=True,
        min_length=32,
        required_in_production=True,
        doc="secret of the Twilio API key (at least 32 characters)",
    )
    twilio_video_base_url: str = setting(
        "TWILIO_VIDEO_BASE_URL",
        default="",
        test_only=True,
        doc="override of `https://video.twilio.com` (the contract mock in tests); empty in production",
    )
    room_max_participants: int = setting(
        "VIDEO_ROOM_MAX_PARTICIPANTS",
        default=2,
        parse=int,
        check=between(2, 50),
        doc="participants a room admits at once (2-50)",
    )
    room_empty_timeout_minutes: int = setting(
        "VIDEO_ROOM_EMPTY_TIMEOUT_MINUTES",
        default=10,
        parse=int,
        check=between(1, 60, " (Twilio's range)"),
        doc="minutes a room stays open after the last participant left (1-60; the next join reopens it)",
    )
    room_unused_timeout_minutes: int = setting(
        "VIDEO_ROOM_UNUSED_TIMEOUT_MINUTES",
        default=10,
        parse=int,
        check=between(1, 60, " (Twilio's range)"),
        doc="minutes a new room waits for its first participant (1-60)",
    )

    def problems(self) -> list[str]:
        """Settings that cannot work together (each field checks itself)."""
        found = super().problems()
        if self.video_provider == TWILIO:
            found.extend(self._twilio_problems())
        return found

    def _twilio_problems(self) -> list[str]:
        found = []
        if not self.twilio_account_sid.startswith("AC"):
            found.append("TWILIO_ACCOUNT_SID must be set to an account SID (AC...)")
        if not self.twilio_api_key_sid.startswith("SK"):
            found.append("TWILIO_API_KEY_SID must be set to an API key SID (SK...)")
        if len(self.twilio_api_key_secret) < 32 and not self.is_production:  # production: the secret rule
            found.append("TWILIO_API_KEY_SECRET must be set (an API key secret, 32 characters)")
        return found

    @property
    def opens_before(self) -> timedelta:
        """How long before the start a join link works."""
        return timedelta(minutes=self.join_opens_minutes)

    @property
    def closes_after(self) -> timedelta:
        """How long after the end a join link works."""
        return timedelta(minutes=self.join_closes_minutes)
