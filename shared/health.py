"""``/healthz`` (the process answers) and ``/readyz`` (its database and Redis answer)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue

from shared.api import public

log = logging.getLogger(__name__)
bp = public(Blueprint("health", __name__))  # probes carry no key

Check = Callable[[], object]


def add_readiness_check(app: Flask, name: str, check: Check) -> None:
    """Make ``/readyz`` call ``check`` (which raises when ``name`` is not reachable)."""
    app.extensions.setdefault("readiness_checks", {})[name] = check


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: the process is up and serving."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness: every dependency answers; 503 names the one that does not."""
    results: dict[str, str] = {}
    for name, check in current_app.extensions.get("readiness_checks", {}).items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", whatever its type
            log.warning("readiness check failed", extra={"check": name, "error": type(exc).__name__})
            results[name] = "unavailable"
        else:
            results[name] = "ok"
    ready = all(v == "ok" for v in results.values())
    return jsonify(status="ok" if ready else "unavailable", checks=results), 200 if ready else 503
