"""Settings of the consult service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.config import ConfigError, TwilioAccountConfig, setting
from shared.links import JOIN_LINK_GRACE

LOCAL = "local"
TWILIO = "twilio"
VIDEO_PROVIDERS = (LOCAL, TWILIO)


@dataclass(frozen=True)
class ConsultConfig(TwilioAccountConfig):
    """Consult service settings (plus the common ones)."""

    database_url: str = setting(
        "CONSULT_DATABASE_URL",
        default="sqlite:///var/consult.db",
        doc="consult database (SQLAlchemy URL; `postgresql+psycopg://...` in production)",
    )
    join_opens_minutes: int = setting(
        "CONSULT_JOIN_OPENS_MINUTES",
        default=15,
        parse=int,
        doc="minutes before the start a join link starts working (0-1440)",
    )
    join_closes_minutes: int = setting(
        "CONSULT_JOIN_CLOSES_MINUTES",
        default=30,
        parse=int,
        doc="minutes after the end a join link stops working and the room is completed "
        f"(0 to {int(JOIN_LINK_GRACE.total_seconds() // 60)}, the join token's own grace)",
    )
    sweep_seconds: float = setting(
        "CONSULT_SWEEP_SECONDS",
        default=10.0,
        parse=float,
        doc="how often the sweeper completes rooms that are due, re-sends unpublished links and redelivers "
        "links notify has not acknowledged",
    )
    video_provider: str = setting(
        "VIDEO_PROVIDER",
        default=LOCAL,
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
        doc="secret of the Twilio API key (at least 32 characters)",
    )
    twilio_video_base_url: str = setting(
        "TWILIO_VIDEO_BASE_URL",
        default="",
        doc="override of `https://video.twilio.com` (the contract mock in tests); empty in production",
    )
    room_max_participants: int = setting(
        "VIDEO_ROOM_MAX_PARTICIPANTS", default=2, parse=int, doc="participants a room admits at once (2-50)"
    )
    room_empty_timeout_minutes: int = setting(
        "VIDEO_ROOM_EMPTY_TIMEOUT_MINUTES",
        default=10,
        parse=int,
        doc="minutes a room stays open after the last participant left (1-60; the next join reopens it)",
    )
    room_unused_timeout_minutes: int = setting(
        "VIDEO_ROOM_UNUSED_TIMEOUT_MINUTES",
        default=10,
        parse=int,
        doc="minutes a new room waits for its first participant (1-60)",
    )

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ConfigError("invalid consult configuration: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        found = self.twilio_account_problems()
        grace_minutes = int(JOIN_LINK_GRACE.total_seconds() // 60)
        if not 0 <= self.join_opens_minutes <= 1440:
            found.append("CONSULT_JOIN_OPENS_MINUTES must be between 0 and 1440")
        if not 0 <= self.join_closes_minutes <= grace_minutes:
            # A join token expires at end + JOIN_LINK_GRACE whatever this says; a later close would
            # promise patients a window their links cannot honour.
            found.append(
                f"CONSULT_JOIN_CLOSES_MINUTES must be between 0 and {grace_minutes} "
                "(join links expire that long after the end)"
            )
        if self.sweep_seconds <= 0:
            found.append("CONSULT_SWEEP_SECONDS must be positive")
        if not 2 <= self.room_max_participants <= 50:
            found.append("VIDEO_ROOM_MAX_PARTICIPANTS must be between 2 and 50")
        for env, value in (
            ("VIDEO_ROOM_EMPTY_TIMEOUT_MINUTES", self.room_empty_timeout_minutes),
            ("VIDEO_ROOM_UNUSED_TIMEOUT_MINUTES", self.room_unused_timeout_minutes),
        ):
            if not 1 <= value <= 60:
                found.append(f"{env} must be between 1 and 60 (Twilio's range)")
        if self.video_provider not in VIDEO_PROVIDERS:
            found.append(f"VIDEO_PROVIDER must be one of {', '.join(VIDEO_PROVIDERS)}")
        elif self.video_provider == TWILIO:
            found.extend(self._twilio_problems())
        elif self.is_production:
            found.append("VIDEO_PROVIDER=local is a development stand-in; production needs twilio")
        return found

    def _twilio_problems(self) -> list[str]:
        found = []
        if not self.twilio_account_sid.startswith("AC"):
            found.append("TWILIO_ACCOUNT_SID must be set to an account SID (AC...)")
        if not self.twilio_api_key_sid.startswith("SK"):
            found.append("TWILIO_API_KEY_SID must be set to an API key SID (SK...)")
        if len(self.twilio_api_key_secret) < 32:
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
