"""Settings of the notify service."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from email.utils import parseaddr
from pathlib import Path

from shared.config import Check, TwilioAccountConfig, at_least, between, one_of, parse_bool, positive, setting

PROTOCOLS_DIR = Path(__file__).resolve().parent / "protocols"
SMS_BACKENDS = ("console", "twilio")
EMAIL_BACKENDS = ("console", "smtp")
SMTP_SECURITY = ("starttls", "ssl", "none")


def parses(parse: Callable[[str], object]) -> Check:
    """A check that ``parse`` accepts the raw value (the property that uses it parses it again)."""

    def check(raw: str) -> str | None:
        try:
            parse(raw)
        except ValueError as exc:
            return f"is not valid: {exc}"
        return None

    return check


def real_sender(backend: str) -> str | None:
    """Production check: messages go to patients, not to the console outbox page."""
    return "must not be console in production (production sends for real)" if backend == "console" else None


def encrypted_smtp(security: str) -> str | None:
    """Production check: email carries patient details, so the connection to the relay is encrypted."""
    return (
        "must be starttls or ssl in production (email carries patient details)"
        if security == "none"
        else None
    )


def parse_quiet_hours(raw: str) -> tuple[time, time] | None:
    """Parse ``21:00-08:00`` into (start, end); an empty value turns quiet hours off."""
    if not raw.strip():
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in raw.split("-"))
    except ValueError as exc:
        raise ValueError(f"use HH:MM-HH:MM, e.g. 21:00-08:00, not {raw!r}") from exc
    if start == end:
        raise ValueError("quiet hours must not start and end at the same time")
    return start, end


def parse_backoff(raw: str) -> tuple[int, ...]:
    """Parse a comma-separated list of positive seconds."""
    values = tuple(int(part) for part in raw.split(",") if part.strip())
    if not values or any(v <= 0 for v in values):
        raise ValueError("give one or more positive numbers of seconds, e.g. 30,120,600")
    return values


@dataclass(frozen=True)
class NotifyConfig(TwilioAccountConfig):
    """Notify service settings (plus the common ones)."""

    database_url: str = setting(
        "NOTIFY_DATABASE_URL",
        default="sqlite:///var/notify.db",
        database=True,
        doc="notify database (SQLAlchemy URL; `postgresql+psycopg://...` in production)",
    )
    protocols_dir_raw: str = setting(
        "NOTIFY_PROTOCOLS_DIR",
        default="",
        doc="folder of reminder protocols (`<slug>.toml`) and message templates (`templates/`); empty: the"
        " demo clinic's, shipped in `services/notify/protocols`",
    )
    sms_backend: str = setting(
        "NOTIFY_SMS_BACKEND",
        default="console",
        check=one_of(*SMS_BACKENDS),
        production_check=real_sender,
        doc="`twilio` (Twilio Messaging) or `console` (the /outbox page; refused in production)",
    )
    email_backend: str = setting(
        "NOTIFY_EMAIL_BACKEND",
        default="console",
        check=one_of(*EMAIL_BACKENDS),
        production_check=real_sender,
        doc="`smtp` (an SMTP relay; for patient data one whose vendor signs a BAA, deploy/README.md) or"
        " `console` (refused in production)",
    )
    twilio_auth_token: str = setting(
        "TWILIO_AUTH_TOKEN",
        default="",
        secret=True,
        min_length=32,
        required_in_production=True,
        doc="Twilio auth token: authenticates API calls and verifies webhook signatures",
    )
    twilio_messaging_service_sid: str = setting(
        "TWILIO_MESSAGING_SERVICE_SID",
        default="",
        doc="Messaging Service (MG...) SMS are sent through; preferred over a From number",
    )
    twilio_from_number: str = setting(
        "TWILIO_FROM_NUMBER", default="", doc="sender number in E.164, when no Messaging Service is set"
    )
    twilio_api_base_url: str = setting(
        "TWILIO_API_BASE_URL",
        default="",
        test_only=True,
        doc="override of `https://api.twilio.com` (a regional edge, or a contract mock in tests)",
    )
    smtp_host: str = setting(
        "SMTP_HOST", default="", doc="SMTP server (`email-smtp.<region>.amazonaws.com` for Amazon SES)"
    )
    smtp_port: int = setting(
        "SMTP_PORT", default=587, parse=int, check=between(1, 65535), doc="SMTP port (587 STARTTLS, 465 SSL)"
    )
    smtp_username: str = setting("SMTP_USERNAME", default="", doc="SMTP user (the SES SMTP user name)")
    smtp_password: str = setting(
        "SMTP_PASSWORD",
        default="",
        secret=True,
        min_length=16,
        required_in_production=True,
        doc="SMTP password (the SES SMTP password)",
    )
    smtp_security: str = setting(
        "SMTP_SECURITY",
        default="starttls",
        check=one_of(*SMTP_SECURITY),
        production_check=encrypted_smtp,
        doc="`starttls`, `ssl` (implicit TLS) or `none` (local relays in development; refused in production)",
    )
    smtp_from: str = setting(
        "SMTP_FROM",
        default="Appointments <appointments@localhost>",
        doc="From header of every email, e.g. `Demo Clinic <appointments@clinic.example>`",
    )
    smtp_timeout_seconds: float = setting(
        "SMTP_TIMEOUT_SECONDS",
        default=15.0,
        parse=float,
        check=positive,
        doc="timeout of one SMTP conversation step",
    )
    quiet_hours_raw: str = setting(
        "NOTIFY_QUIET_HOURS",
        default="21:00-08:00",
        check=parses(parse_quiet_hours),
        doc="`HH:MM-HH:MM` in the patient's zone when non-urgent SMS wait (empty: no quiet hours)",
    )
    sms_opt_out_hint: str = setting(
        "NOTIFY_SMS_OPT_OUT_HINT",
        default="Reply STOP to opt out.",
        doc="sentence every SMS ends with (carrier rules for recurring messages)",
    )
    sms_help_reply: str = setting(
        "NOTIFY_SMS_HELP_REPLY",
        default="",
        doc="answer to an inbound HELP (empty: leave it to Twilio's Advanced Opt-Out reply)",
    )
    dispatch_interval_seconds: float = setting(
        "NOTIFY_DISPATCH_INTERVAL_SECONDS",
        default=5.0,
        parse=float,
        check=positive,
        doc="how often the dispatcher looks for due messages",
    )
    send_batch_size: int = setting(
        "NOTIFY_SEND_BATCH_SIZE",
        default=50,
        parse=int,
        check=at_least(1),
        doc="messages one send job carries",
    )
    send_concurrency: int = setting(
        "NOTIFY_SEND_CONCURRENCY",
        default=8,
        parse=int,
        check=at_least(1),
        doc="provider calls one send job makes at the same time",
    )
    retry_backoff_raw: str = setting(
        "NOTIFY_RETRY_BACKOFF_SECONDS",
        default="30,120,600,1800",
        check=parses(parse_backoff),
        doc="waits before each retry of a temporary provider error; attempts = this many + 1",
    )
    queued_stale_seconds: int = setting(
        "NOTIFY_QUEUED_STALE_SECONDS",
        default=30,
        parse=int,
        check=at_least(1),
        doc="after this long a queued message whose job is gone from Redis is queued again",
    )
    sending_stale_seconds: int = setting(
        "NOTIFY_SENDING_STALE_SECONDS",
        default=300,
        parse=int,
        doc="after this long an unfinished send is checked with the provider (over a send job's timeout)",
    )
    provider_invites: bool = setting(
        "NOTIFY_PROVIDER_INVITES",
        default=True,
        parse=parse_bool,
        doc="email each provider a calendar invite (iTIP REQUEST/CANCEL) for every booking, and updates",
    )
    invite_organizer: str = setting(
        "NOTIFY_INVITE_ORGANIZER",
        default="",
        doc="ORGANIZER of provider invites, `Name <address>` (the clinic's scheduling address); empty:"
        " `SMTP_FROM`",
    )
    invite_staff_url: str = setting(
        "NOTIFY_INVITE_STAFF_URL",
        default="",
        doc="staff link in a provider's calendar entry, with `{booking_id}`; empty: the booking's staff API"
        " URL on `BOOKING_PUBLIC_URL`",
    )
    feed_link_days: int = setting(
        "NOTIFY_FEED_LINK_DAYS",
        default=365,
        parse=int,
        check=at_least(1),
        doc="days a provider's calendar feed link works; staff issue a new one before (the feed warns 30"
        " days ahead)",
    )
    feed_past_days: int = setting(
        "NOTIFY_FEED_PAST_DAYS",
        default=30,
        parse=int,
        check=at_least(0),
        doc="days of past appointments a provider's calendar feed keeps (all upcoming ones are in it)",
    )
    feed_cancelled_days: int = setting(
        "NOTIFY_FEED_CANCELLED_DAYS",
        default=7,
        parse=int,
        check=at_least(0),
        doc="days a cancelled appointment stays in the feed, marked cancelled, before it is dropped",
    )

    reply_retention_days: int = setting(
        "NOTIFY_REPLY_RETENTION_DAYS",
        default=90,
        parse=int,
        check=at_least(7),
        doc="days an inbound SMS (and the text kept for staff) stays after its booking ended, or after it"
        " came when it matched no booking; at least 7: the row also makes a webhook Twilio retries (within"
        " minutes) change nothing. A reply whose event is not yet published or acknowledged always stays",
    )
    inbox_retention_days: int = setting(
        "NOTIFY_INBOX_RETENTION_DAYS",
        default=800,
        parse=int,
        check=at_least(731),
        doc="days the id of a handled event stays, so a redelivery changes nothing; above 730: consult's"
        " `links-replay` re-sends a join link while its window is open, and a visit is booked up to 730"
        " days ahead (keep it above `OUTBOX_RETENTION_DAYS` too)",
    )

    def problems(self) -> list[str]:
        """Settings that cannot work together (each field checks itself)."""
        return [
            *super().problems(),
            *self._provider_problems(),
            *self._invite_problems(),
            *self._send_problems(),
        ]

    def _provider_problems(self) -> list[str]:
        found = []
        if self.sms_backend == "twilio":
            if not (self.twilio_account_sid and self.twilio_auth_token):
                found.append("NOTIFY_SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
            if not (self.twilio_messaging_service_sid or self.twilio_from_number):
                found.append(
                    "NOTIFY_SMS_BACKEND=twilio needs TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER"
                )
        if self.email_backend == "smtp" and not self.smtp_host:
            found.append("NOTIFY_EMAIL_BACKEND=smtp needs SMTP_HOST")
        return found

    def _invite_problems(self) -> list[str]:
        found = []
        if self.invite_staff_url and "{booking_id}" not in self.invite_staff_url:
            found.append("NOTIFY_INVITE_STAFF_URL must contain {booking_id}")
        if self.invite_organizer and "@" not in parseaddr(self.invite_organizer)[1]:
            found.append(
                "NOTIFY_INVITE_ORGANIZER must be an email address, e.g. Clinic <desk@clinic.example>"
            )
        return found

    def _send_problems(self) -> list[str]:
        found = []
        if self.send_batch_size >= 1 and self.send_concurrency >= 1:
            floor = self.send_job_timeout + self.call_budget_seconds
            if self.sending_stale_seconds <= floor:
                found.append(
                    f"NOTIFY_SENDING_STALE_SECONDS must exceed {int(floor)} (a send job's timeout plus one"
                    " provider call), or an interrupted send could be checked while it is still in flight"
                )
        return found

    @property
    def call_budget_seconds(self) -> float:
        """The longest one provider call can take (SMTP may connect, start TLS and log in first)."""
        return max(self.twilio_timeout_seconds, self.smtp_timeout_seconds) * 2

    @property
    def send_job_timeout(self) -> int:
        """How long a send job may run before RQ stops it."""
        rounds = math.ceil(self.send_batch_size / self.send_concurrency)
        return int(rounds * self.call_budget_seconds + 30)

    @property
    def protocols_dir(self) -> Path:
        """Where the reminder protocols are."""
        return Path(self.protocols_dir_raw) if self.protocols_dir_raw else PROTOCOLS_DIR

    @property
    def quiet_hours(self) -> tuple[time, time] | None:
        """Quiet hours as (start, end) wall-clock times, or None."""
        return parse_quiet_hours(self.quiet_hours_raw)

    @property
    def retry_backoff_seconds(self) -> tuple[int, ...]:
        """Waits before each retry."""
        return parse_backoff(self.retry_backoff_raw)

    @property
    def organizer(self) -> tuple[str, str]:
        """(name, address) of provider invites' ORGANIZER."""
        name, address = parseaddr(self.invite_organizer or self.smtp_from)
        return name, address

    def staff_url(self, booking_id: str) -> str:
        """The staff link of a booking in a provider's calendar entry (never the patient's manage link)."""
        if self.invite_staff_url:
            return self.invite_staff_url.replace("{booking_id}", booking_id)
        return f"{self.booking_public_url.rstrip('/')}/api/v1/bookings/{booking_id}"

    @property
    def max_attempts(self) -> int:
        """How many times a message is tried in all."""
        return len(self.retry_backoff_seconds) + 1
