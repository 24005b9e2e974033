"""Typed configuration read once from the environment.

Each service declares a frozen dataclass whose fields are built with :func:`setting`. :func:`load` reads
every variable once, parses it, and refuses to start in production while a required secret still has its
development default. :func:`settings_table` renders the one table of variables the README shows.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

DEV_LINK_KEY = "dev-only-link-signing-key-change-me-0123456789"
DEV_API_KEY = "dev-api-key"


class ConfigError(RuntimeError):
    """The environment does not describe a runnable service."""


def parse_bool(raw: str) -> bool:
    """Parse 1/0, true/false, yes/no, on/off."""
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def parse_list(raw: str) -> tuple[str, ...]:
    """Parse a comma-separated list, dropping blanks."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def setting(
    env: str,
    *,
    default: Any,
    doc: str,
    parse: Callable[[str], Any] = str,
    secret: bool = False,
    required_in_production: bool = False,
) -> Any:
    """Declare a dataclass field read from environment variable ``env``."""
    return field(
        default=default,
        metadata={
            "env": env,
            "doc": doc,
            "parse": parse,
            "secret": secret,
            "required_in_production": required_in_production,
        },
    )


@dataclass(frozen=True)
class CommonConfig:
    """Settings every service reads."""

    environment: str = setting(
        "SUITE_ENV",
        default="development",
        doc="`development` or `production`; production refuses development secrets",
    )
    redis_url: str = setting("REDIS_URL", default="redis://127.0.0.1:6379/0", doc="Redis for the RQ queues")
    link_signing_keys: tuple[str, ...] = setting(
        "LINK_SIGNING_KEYS",
        default=(DEV_LINK_KEY,),
        parse=parse_list,
        secret=True,
        required_in_production=True,
        doc="comma-separated keys for patient links; the last signs, all verify (rotate by appending)",
    )
    api_keys: tuple[str, ...] = setting(
        "API_KEYS",
        default=(DEV_API_KEY,),
        parse=parse_list,
        secret=True,
        required_in_production=True,
        doc="comma-separated bearer keys for the staff API",
    )
    booking_public_url: str = setting(
        "BOOKING_PUBLIC_URL",
        default="http://127.0.0.1:8001",
        doc="public base URL of the booking service (patient pages, manage links)",
    )
    notify_public_url: str = setting(
        "NOTIFY_PUBLIC_URL",
        default="http://127.0.0.1:8002",
        doc="public base URL of the notify service (webhooks, outbox page)",
    )
    consult_public_url: str = setting(
        "CONSULT_PUBLIC_URL",
        default="http://127.0.0.1:8003",
        doc="public base URL of the consult service (join pages)",
    )
    log_level: str = setting("LOG_LEVEL", default="INFO", doc="log level")
    log_format: str = setting("LOG_FORMAT", default="json", doc="`json` (one object a line) or `text`")
    worker_maintenance_seconds: int = setting(
        "WORKER_MAINTENANCE_SECONDS",
        default=60,
        parse=int,
        doc="how often a worker looks for jobs abandoned by a worker that died (RQ's default is 600); such a "
        "job is retried once its own timeout has passed",
    )
    event_redeliver_seconds: float = setting(
        "EVENT_REDELIVER_SECONDS",
        default=45.0,
        parse=float,
        doc="an event a consumer has not acknowledged this long after it was published is published to it "
        "again (then after twice as long, and so on, up to an hour)",
    )
    event_delivery_bound_seconds: float = setting(
        "EVENT_DELIVERY_BOUND_SECONDS",
        default=120.0,
        parse=float,
        doc="an event still unacknowledged this long after it was published counts as unhandled "
        "(`suite_events_unhandled`, `suite status`)",
    )
    metrics_port: int = setting(
        "METRICS_PORT",
        default=0,
        parse=int,
        doc="port on which a worker, relay or scheduler serves `/metrics` (0 = not served; web processes "
        "serve `/metrics` on their own port)",
    )
    metrics_host: str = setting(
        "METRICS_HOST",
        default="127.0.0.1",
        doc="address the `METRICS_PORT` server binds (`0.0.0.0` in a container)",
    )

    @property
    def is_production(self) -> bool:
        """Whether this runs with production rules."""
        return self.environment == "production"


@dataclass(frozen=True)
class TwilioAccountConfig(CommonConfig):
    """The Twilio account both notify (SMS) and consult (Video) talk to, declared once."""

    twilio_account_sid: str = setting(
        "TWILIO_ACCOUNT_SID",
        default="",
        doc="Twilio account SID (`AC...`): SMS for notify, Video for consult",
    )
    twilio_timeout_seconds: float = setting(
        "TWILIO_TIMEOUT_SECONDS",
        default=8.0,
        parse=float,
        doc="timeout of one call to the Twilio REST API (a join waits for it when it creates the room)",
    )

    def twilio_account_problems(self) -> list[str]:
        """What is wrong with the account settings, whatever the service."""
        return [] if self.twilio_timeout_seconds > 0 else ["TWILIO_TIMEOUT_SECONDS must be positive"]


C = TypeVar("C", bound=CommonConfig)


def load(cls: type[C], environ: Mapping[str, str] | None = None, **overrides: Any) -> C:
    """Build ``cls`` from the environment (or ``environ``), then apply keyword ``overrides``."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    errors: list[str] = []
    for f in dataclasses.fields(cls):
        name = f.metadata.get("env")
        if name is None or name not in env:
            continue
        try:
            values[f.name] = f.metadata["parse"](env[name])
        except ValueError as exc:
            errors.append(f"{name}: {exc}")
    if errors:
        raise ConfigError("invalid configuration: " + "; ".join(errors))
    values.update(overrides)
    config = cls(**values)
    if config.environment not in {"development", "production"}:
        raise ConfigError(f"SUITE_ENV must be development or production, not {config.environment!r}")
    if config.is_production:
        missing = [
            f.metadata["env"]
            for f in dataclasses.fields(cls)
            if f.metadata.get("required_in_production") and getattr(config, f.name) == f.default
        ]
        if missing:
            raise ConfigError("production needs these set to real values: " + ", ".join(missing))
    return config


def settings_table(*classes: type[CommonConfig]) -> str:
    """Render the variables of ``classes`` as one Markdown table (each variable once)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    seen: set[str] = set()
    for cls in classes:
        for f in dataclasses.fields(cls):
            name = f.metadata.get("env")
            if name is None or name in seen:
                continue
            seen.add(name)
            if f.metadata["secret"]:
                shown = "(development value; required in production)"
            elif isinstance(f.default, tuple):
                shown = f"`{','.join(f.default)}`" if f.default else "(empty)"
            else:
                shown = f"`{f.default}`" if f.default not in ("", None) else "(empty)"
            rows.append(f"| `{name}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows)
