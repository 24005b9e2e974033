"""Settings of the checkins service."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import CommonConfig, at_least, between, parse_list, positive, setting


def _some_contact(value: tuple[str, ...]) -> str | None:
    return None if value else "must name at least one on-call contact in production (safety alerts)"


@dataclass(frozen=True)
class CheckinsConfig(CommonConfig):
    """Checkins service settings (plus the common ones)."""

    database_url: str = setting(
        "CHECKINS_DATABASE_URL",
        default="sqlite:///var/checkins.db",
        database=True,
        doc="checkins database (SQLAlchemy URL; `postgresql+psycopg://...` in production); health data: no "
        "other service reads it",
    )
    checkins_public_url: str = setting(
        "CHECKINS_PUBLIC_URL",
        default="http://127.0.0.1:8004",
        public_url=True,
        doc="public base URL of the checkins service (patients' check-in pages, providers' timelines)",
    )
    plans_dir: str = setting(
        "CHECKINS_PLANS_DIR",
        default="",
        doc="folder of check-in plans (`*.toml`); empty: the demo clinic's, shipped in "
        "`services/checkins/plans`",
    )
    scheduler_seconds: float = setting(
        "CHECKINS_SCHEDULER_SECONDS",
        default=5.0,
        parse=float,
        check=positive,
        doc="how often the scheduler sends due check-ins and alerts, expires old ones and redelivers events "
        "notify has not acknowledged",
    )
    inbox_retention_days: int = setting(
        "CHECKINS_INBOX_RETENTION_DAYS",
        default=800,
        parse=int,
        check=at_least(731),
        doc="days the id of a handled event (booking's session events, notify's `reply.rating`) stays, so a"
        " redelivery changes nothing; above 730: booking re-sends what its outbox holds (`outbox-replay`),"
        " notify holds a rating reply until its visit, booked up to 730 days ahead, is over",
    )
    oncall_phones: tuple[str, ...] = setting(
        "CHECKINS_ONCALL_PHONES",
        default=(),
        parse=parse_list,
        production_check=_some_contact,
        doc="comma-separated E.164 numbers that get an SMS at once when a patient reports thoughts of "
        "self-harm (PHQ-9 item 9)",
    )
    oncall_emails: tuple[str, ...] = setting(
        "CHECKINS_ONCALL_EMAILS",
        default=(),
        parse=parse_list,
        production_check=_some_contact,
        doc="comma-separated addresses that get an email at once for the same alerts",
    )
    phq9_rise: int = setting(
        "CHECKINS_PHQ9_RISE",
        default=5,
        parse=int,
        check=between(1, 27),
        doc="a PHQ-9 total this many points above the patient's previous one flags the patient for the "
        "provider",
    )
    gad7_rise: int = setting(
        "CHECKINS_GAD7_RISE",
        default=5,
        parse=int,
        check=between(1, 21),
        doc="a GAD-7 total this many points above the patient's previous one flags the patient",
    )
    reminder_hours: int = setting(
        "CHECKINS_REMINDER_HOURS",
        default=24,
        parse=int,
        check=between(0, 168),
        doc="hours after a check-in was sent, unanswered, before one reminder goes (0: no reminders)",
    )
