"""The part of every service's ``create_app`` that is the same: logging, database, Redis, API, health."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Flask, current_app, g, request
from flask.wrappers import Response
from redis import Redis
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import NotFound

from shared import db as dbmod
from shared import health, inputs, metrics, migrate
from shared.api import ProblemApi, init_api, public, require_staff_key
from shared.config import CommonConfig, check
from shared.links import LinkSigner
from shared.logging import configure_logging, new_correlation_id, set_correlation_id
from shared.problems import ServiceUnavailable

log = logging.getLogger("suite.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# How long a client should wait after a lost database connection: about a PostgreSQL restart or failover.
DATABASE_RETRY_AFTER_SECONDS = 5
_READS = ("GET", "HEAD")


class SuiteFlask(Flask):
    """Flask that logs unhandled errors by route template (request paths carry signed patient tokens), and
    answers a lost database connection with a 503 after trying a read once more."""

    def log_exception(self, exc_info: Any) -> None:
        rule = request.url_rule.rule if request.url_rule else "<unmatched>"
        self.logger.error("Exception on %s [%s]", rule, request.method, exc_info=exc_info)

    def dispatch_request(self) -> Any:
        try:
            return super().dispatch_request()
        except DBAPIError as exc:
            if not dbmod.is_connection_lost(exc):
                raise
            lost = exc
        rule = request.url_rule.rule if request.url_rule else "<unmatched>"
        if request.method in _READS:
            # A read changes nothing, so it may run again on a new connection (the pool was invalidated).
            log.warning("database connection lost on %s [%s]; reading again", rule, request.method)
            dbmod.close_sessions()
            try:
                return super().dispatch_request()
            except DBAPIError as exc:
                if not dbmod.is_connection_lost(exc):
                    raise
                lost = exc
        log.warning("database connection lost on %s [%s]", rule, request.method)
        raise ServiceUnavailable(
            "The database is not answering. Try again shortly.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        ) from lost


def make_redis(url: str) -> Redis:
    """A Redis client with timeouts, so a dead Redis fails fast instead of hanging a request."""
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


def _start_request() -> None:
    """Stamp the request with its correlation id and start time, then refuse unreadable input."""
    incoming = request.headers.get("X-Request-ID", "")
    cid = incoming if _REQUEST_ID.match(incoming) else new_correlation_id()
    g.correlation_token = set_correlation_id(cid)
    g.correlation_id = cid
    g.request_started = time.perf_counter()
    inputs.check_request()


def _finish_request(response: Response) -> Response:
    """Echo the correlation id; count and log the request by route template, never the path (tokens)."""
    cid = g.get("correlation_id")
    if cid:
        response.headers["X-Request-ID"] = cid
    started = g.get("request_started")
    if started is not None:
        rule = request.url_rule.rule if request.url_rule else "<unmatched>"
        seconds = time.perf_counter() - started
        metrics.observe_request(
            service=current_app.config["SERVICE_NAME"],
            method=request.method,
            endpoint=rule,
            status=response.status_code,
            seconds=seconds,
        )
        log.info(
            "%s %s %s",
            request.method,
            rule,
            response.status_code,
            extra={"duration_ms": round(seconds * 1000, 2)},
        )
    return response


def create_service_app(
    *,
    service: str,
    config: CommonConfig,
    database_url: str,
    title: str,
    description: str,
    import_name: str,
) -> tuple[Flask, ProblemApi]:
    """Build the common skeleton of a service app; the caller registers its blueprints on the Api."""
    check(config)  # the one validation step of every process: web, workers, relay, dispatcher, sweeper
    configure_logging(service, level=config.log_level, fmt=config.log_format)
    app = SuiteFlask(import_name)
    app.config["SERVICE_NAME"] = service
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes  # werkzeug refuses more, unread (413)
    app.extensions["suite_config"] = config
    app.extensions["link_signer"] = LinkSigner(config.link_signing_keys)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    database = dbmod.Database(database_url)
    dbmod.init_app(app, database)
    redis = make_redis(config.redis_url)
    app.extensions["redis"] = redis

    api = init_api(app, title=title, description=description, docs=config.docs_enabled)
    app.register_blueprint(health.bp)
    health.add_readiness_check(app, "database", database.ping)
    health.add_readiness_check(app, "redis", lambda: bool(redis.ping()))
    migrate.register_cli(app, service=service)
    app.extensions.setdefault("metrics_collectors", [])

    app.before_request(_start_request)
    _serve_metrics(app, config)
    require_staff_key(app)  # after the request is stamped, so a refusal is logged and counted too
    app.after_request(_finish_request)
    return app, api


def common_parts(app: Flask) -> dict[str, Any]:
    """The parts every service's ``Runtime`` holds, as ``create_service_app`` made them."""
    return {
        "config": app.extensions["suite_config"],
        "db": app.extensions["db"],
        "redis": app.extensions["redis"],
        "signer": app.extensions["link_signer"],
    }


def add_metrics_collector(app: Flask, collector: Any) -> None:
    """Report ``collector``'s scrape-time figures on ``app``'s ``/metrics``."""
    app.extensions.setdefault("metrics_collectors", []).append(collector)


def _serve_metrics(app: Flask, config: CommonConfig) -> None:
    """Add ``/metrics``; with METRICS_PORT set, its listener (gunicorn's second bind) answers nothing else."""
    app.add_url_rule("/metrics", "metrics", public(_metrics_page))
    if not config.metrics_port:
        return
    metrics_port = str(config.metrics_port)

    @app.before_request
    def _metrics_listener_serves_metrics_only() -> None:
        if request.environ.get("SERVER_PORT") == metrics_port and request.endpoint != "metrics":
            raise NotFound()


def metrics_reachable(config: CommonConfig, server_port: str) -> bool:
    """Whether ``/metrics`` answers on ``server_port``: METRICS_PORT's if set, else in development only."""
    if config.metrics_port:
        return server_port == str(config.metrics_port)
    return not config.is_production


def _metrics_page() -> Response:
    """Prometheus metrics of this service (every gunicorn worker's, added up) and its scrape-time gauges."""
    if not metrics_reachable(current_app.extensions["suite_config"], request.environ.get("SERVER_PORT", "")):
        raise NotFound()
    body, content_type = metrics.render(
        current_app.extensions.get("metrics_collectors", []), accept=request.headers.get("Accept", "")
    )
    return Response(body, content_type=content_type)


def get_redis() -> Redis:
    """The current app's Redis client."""
    redis: Redis = current_app.extensions["redis"]
    return redis
