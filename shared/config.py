"""Typed configuration read once from the environment, and the one step that decides whether it may run."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

DEV_LINK_KEY = "dev-only-link-signing-key-change-me-0123456789"
DEV_API_KEY = "dev-api-key"
DEV_DASHBOARD_PASSWORD = "dev-dashboard-password"  # noqa: S105 (the public development value)
# Values that are public (in this repository, its docs and examples): never a secret in production.
DEV_VALUES = frozenset({DEV_LINK_KEY, DEV_API_KEY, DEV_DASHBOARD_PASSWORD})
# Words of the examples' placeholders and of hand-made keys: a secret that contains one is not random.
PLACEHOLDER_WORDS = ("change-me", "changeme", "replace", "placeholder", "example", "dev-only", "xxxxxx")
MIN_DISTINCT_CHARACTERS = 8
ENVIRONMENTS = ("development", "production")

Check = Callable[[Any], "str | None"]


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


def one_of(*choices: str) -> Check:
    """A check that the value is one of ``choices``."""

    def check(value: Any) -> str | None:
        return None if value in choices else "must be one of " + ", ".join(choices)

    return check


def between(low: float, high: float, why: str = "") -> Check:
    """A check that ``low <= value <= high``."""

    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}{why}"

    return check


def at_least(low: float, why: str = "") -> Check:
    """A check that ``value >= low``."""
    return lambda value: None if value >= low else f"must be at least {low}{why}"


def positive(value: Any) -> str | None:
    """A check that the value is more than 0."""
    return None if value > 0 else "must be positive"


def setting(
    env: str,
    *,
    default: Any,
    doc: str,
    parse: Callable[[str], Any] = str,
    check: Check | None = None,
    secret: bool = False,
    min_length: int = 0,
    required_in_production: bool = False,
    public_url: bool = False,
    database: bool = False,
    test_only: bool = False,
    production_check: Check | None = None,
) -> Any:
    """Declare a dataclass field read from environment variable ``env``, and what production asks of it."""
    return field(
        default=default,
        metadata={
            "env": env,
            "doc": doc,
            "parse": parse,
            "check": check,
            "secret": secret,
            "min_length": min_length,
            "required_in_production": required_in_production,
            "public_url": public_url,
            "database": database,
            "test_only": test_only,
            "production_check": production_check,
        },
    )


@dataclass(frozen=True)
class CommonConfig:
    """Settings every service reads."""

    environment: str = setting(
        "SUITE_ENV",
        default="development",
        check=one_of(*ENVIRONMENTS),
        doc="`development` or `production`; production refuses to start with any weak setting"
        " (docs/configuration.md)",
    )
    redis_url: str = setting("REDIS_URL", default="redis://127.0.0.1:6379/0", doc="Redis for the RQ queues")
    link_signing_keys: tuple[str, ...] = setting(
        "LINK_SIGNING_KEYS",
        default=(DEV_LINK_KEY,),
        parse=parse_list,
        secret=True,
        min_length=32,
        required_in_production=True,
        doc="comma-separated keys for patient links; the last signs, all verify (rotate by appending)",
    )
    api_keys: tuple[str, ...] = setting(
        "API_KEYS",
        default=(DEV_API_KEY,),
        parse=parse_list,
        secret=True,
        min_length=32,
        required_in_production=True,
        doc="comma-separated bearer keys for the staff API",
    )
    booking_public_url: str = setting(
        "BOOKING_PUBLIC_URL",
        default="http://127.0.0.1:8001",
        public_url=True,
        doc="public base URL of the booking service (patient pages, manage links)",
    )
    notify_public_url: str = setting(
        "NOTIFY_PUBLIC_URL",
        default="http://127.0.0.1:8002",
        public_url=True,
        doc="public base URL of the notify service (webhooks, outbox page)",
    )
    consult_public_url: str = setting(
        "CONSULT_PUBLIC_URL",
        default="http://127.0.0.1:8003",
        public_url=True,
        doc="public base URL of the consult service (join pages)",
    )
    allow_http_public_urls: bool = setting(
        "ALLOW_HTTP_PUBLIC_URLS",
        default=False,
        parse=parse_bool,
        doc="production only: accept `http://` public URLs, for an internal test cluster without TLS (never"
        " where patients or Twilio connect)",
    )
    api_docs: bool | None = setting(
        "API_DOCS",
        default=None,
        parse=parse_bool,
        doc="serve `/api/docs` and `/api/openapi.json`; empty: on in development, off in production",
    )
    log_level: str = setting("LOG_LEVEL", default="INFO", doc="log level")
    log_format: str = setting(
        "LOG_FORMAT", default="json", check=one_of("json", "text"), doc="`json` (one object a line) or `text`"
    )
    max_request_bytes: int = setting(
        "MAX_REQUEST_BYTES",
        default=1_048_576,
        parse=int,
        check=between(65_536, 104_857_600),
        doc="the largest request body any route reads; a larger one is refused (413) before it is read (a"
        " booking, a page form or a Twilio webhook is a few KB)",
    )
    worker_maintenance_seconds: int = setting(
        "WORKER_MAINTENANCE_SECONDS",
        default=60,
        parse=int,
        check=at_least(1),
        doc="how often a worker looks for jobs abandoned by a worker that died (RQ's default is 600); such a "
        "job is retried once its own timeout has passed",
    )
    event_redeliver_seconds: float = setting(
        "EVENT_REDELIVER_SECONDS",
        default=45.0,
        parse=float,
        check=positive,
        doc="an event a consumer has not acknowledged this long after it was published is published to it "
        "again (then after twice as long, and so on, up to an hour)",
    )
    event_delivery_bound_seconds: float = setting(
        "EVENT_DELIVERY_BOUND_SECONDS",
        default=120.0,
        parse=float,
        check=positive,
        doc="an event still unacknowledged this long after it was published counts as unhandled "
        "(`suite_events_unhandled`, `suite status`)",
    )
    metrics_port: int = setting(
        "METRICS_PORT",
        default=0,
        parse=int,
        check=between(0, 65535),
        doc="port on which every process serves `/metrics` (a web process: a second gunicorn listener, and no"
        " longer on its own port); 0 = a web process serves it on its own port in development only, other"
        " processes do not serve it",
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

    @property
    def docs_enabled(self) -> bool:
        """Whether the API docs and the OpenAPI document are served."""
        return not self.is_production if self.api_docs is None else self.api_docs

    def problems(self) -> list[str]:
        """What is wrong across several settings (a service adds its own); fields check themselves."""
        return []


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
        check=positive,
        doc="timeout of one call to the Twilio REST API (a join waits for it when it creates the room)",
    )


C = TypeVar("C", bound=CommonConfig)


def load(cls: type[C], environ: Mapping[str, str] | None = None, **overrides: Any) -> C:
    """Parse ``cls`` from the environment (or ``environ``) plus ``overrides``; :func:`check` judges it."""
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
    return cls(**values)


def validate(config: CommonConfig) -> list[str]:
    """Every problem of ``config``: field checks, the service's cross-field checks, production's rules."""
    found: list[str] = []
    for f in _settings(config):
        check = f.metadata["check"]
        problem = check(getattr(config, f.name)) if check else None
        if problem:
            found.append(f"{f.metadata['env']} {problem}")
    found += config.problems()
    if config.is_production:
        found += _production_problems(config)
    return found


def check(config: CommonConfig) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config`` at once; return if there is none."""
    found = validate(config)
    if found:
        where = "production" if config.is_production else config.environment
        lines = "\n".join(f"  - {problem}" for problem in found)
        raise ConfigError(f"refusing to start ({where}): {len(found)} problem(s) with the settings:\n{lines}")


def _settings(config: CommonConfig) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(config) if "env" in f.metadata]


def _production_problems(config: CommonConfig) -> list[str]:
    found: list[str] = []
    dev_values = DEV_VALUES | frozenset(_secret_defaults(config))
    for f in _settings(config):
        meta, value = f.metadata, getattr(config, f.name)
        name = meta["env"]
        if meta["secret"]:
            found += _secret_problems(name, value, meta, dev_values)
        elif meta["required_in_production"] and not value:
            found.append(f"{name} is required in production")
        if meta["public_url"]:
            found += _public_url_problems(name, value, allow_http=config.allow_http_public_urls)
        if meta["database"] and not str(value).startswith("postgresql"):
            found.append(f"{name} must be a PostgreSQL URL in production (SQLite is for development)")
        if meta["test_only"] and value:
            found.append(f"{name} is a test-only override: leave it empty in production")
        problem = meta["production_check"](value) if meta["production_check"] else None
        if problem:
            found.append(f"{name} {problem}")
    return found + _reused_secrets(config)


def _secret_defaults(config: CommonConfig) -> set[str]:
    found: set[str] = set()
    for f in _settings(config):
        if f.metadata["secret"]:
            found.update(_items(f.default))
    return found


def _items(value: Any) -> tuple[str, ...]:
    if isinstance(value, tuple):
        return value
    return (value,) if value else ()


def _secret_problems(name: str, value: Any, meta: Mapping[str, Any], dev_values: frozenset[str]) -> list[str]:
    """A secret's problems, naming its position in a list but never its value."""
    items = _items(value)
    if not items:
        return [f"{name} is required in production"] if meta["required_in_production"] else []
    found = []
    for index, item in enumerate(items, start=1):
        where = f"{name} (item {index} of {len(items)})" if isinstance(value, tuple) else name
        if item in dev_values:
            found.append(f"{where} is a development value, published with the code")
        elif is_weak(item, meta["min_length"]):
            found.append(
                f"{where} is weak: use at least {meta['min_length']} random characters, e.g. python -c"
                " 'import secrets; print(secrets.token_urlsafe(48))'"
            )
    return found


def is_weak(secret: str, min_length: int) -> bool:
    """Whether ``secret`` is too short, too repetitive or a placeholder to be a real random key."""
    lowered = secret.lower()
    return (
        len(secret) < min_length
        or len(set(secret)) < MIN_DISTINCT_CHARACTERS
        or any(word in lowered for word in PLACEHOLDER_WORDS)
    )


def _public_url_problems(name: str, value: str, *, allow_http: bool) -> list[str]:
    parts = urlsplit(value)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        hint = "" if allow_http else " (ALLOW_HTTP_PUBLIC_URLS=true allows http for an internal test cluster)"
        return [f"{name} must be an https:// URL in production{hint}"]
    return []


def _reused_secrets(config: CommonConfig) -> list[str]:
    owners: dict[str, set[str]] = {}
    for f in _settings(config):
        if f.metadata["secret"]:
            for item in _items(getattr(config, f.name)):
                owners.setdefault(item, set()).add(f.metadata["env"])
    return [
        f"{' and '.join(sorted(names))} share a value: give each secret its own"
        for names in owners.values()
        if len(names) > 1
    ]


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
            rows.append(f"| `{name}` | {_shown_default(f)} | {f.metadata['doc']} |")
    return "\n".join(rows)


def _shown_default(f: dataclasses.Field[Any]) -> str:
    if f.metadata["secret"]:
        required = "; required in production" if f.metadata["required_in_production"] else ""
        return f"(secret{required})"
    if isinstance(f.default, tuple):
        return f"`{','.join(f.default)}`" if f.default else "(empty)"
    return f"`{f.default}`" if f.default not in ("", None) else "(empty)"
