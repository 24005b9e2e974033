"""Errors as RFC 9457 problem details (``application/problem+json``).

Service functions raise :class:`Problem` subclasses; views never build error bodies by hand. Validation
errors name the field at fault twice: nested under ``errors`` (as webargs reports them) and flattened in
``invalid_params`` (``{"name": "patient.phone", "in": "json", "reason": ...}``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flask import Response, current_app, has_app_context, json
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://telehealth-suite.invalid/problems/"


class Problem(Exception):
    """An error a client can act on, with an HTTP status and a stable type slug."""

    status = 400
    slug = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Mapping[str, Any] | None = None,
        slug: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = dict(errors or {})
        self.slug = slug or self.slug
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class BadRequest(Problem):
    status = 400
    slug = "bad-request"


class Unauthorized(Problem):
    status = 401
    slug = "unauthorized"


class Forbidden(Problem):
    status = 403
    slug = "forbidden"


class NotFound(Problem):
    status = 404
    slug = "not-found"


class Conflict(Problem):
    status = 409
    slug = "conflict"


class Gone(Problem):
    status = 410
    slug = "gone"


class Unprocessable(Problem):
    status = 422
    slug = "unprocessable"


class TooManyRequests(Problem):
    status = 429
    slug = "too-many-requests"


class ServiceUnavailable(Problem):
    status = 503
    slug = "unavailable"


def field_error(field: str, message: str, *, location: str = "json") -> Unprocessable:
    """A 422 naming one field, for rules that need the database (schemas check shape only)."""
    errors: dict[str, Any] = {}
    node = errors.setdefault(location, {})
    parts = field.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = [message]
    return Unprocessable(f"{field}: {message}", errors=errors)


def _flatten(errors: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            yield from _flatten(value, name)
    elif isinstance(errors, list | tuple):
        for item in errors:
            if isinstance(item, Mapping | list | tuple):
                yield from _flatten(item, prefix)
            else:
                yield prefix, str(item)
    else:
        yield prefix, str(errors)


def invalid_params(errors: Mapping[str, Any]) -> list[dict[str, str]]:
    """Flatten ``{"json": {"patient": {"phone": [...]}}}`` into named parameters."""
    params = []
    for location, nested in errors.items():
        for name, reason in _flatten(nested):
            params.append({"name": name or location, "in": str(location), "reason": reason})
    return params


def problem_body(
    status: int,
    detail: str | None = None,
    *,
    slug: str | None = None,
    errors: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a problem response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug if slug else "about:blank",
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = dict(errors)
        body["invalid_params"] = invalid_params(errors)
    if extra:
        body.update(extra)
    return body


def problem_response(body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    """Wrap a problem body in a response with the problem media type."""
    response = Response(json.dumps(body), status=int(body["status"]), mimetype=PROBLEM_MIMETYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def from_problem(exc: Problem) -> Response:
    """Render a raised :class:`Problem`."""
    body = problem_body(exc.status, exc.detail, slug=exc.slug, errors=exc.errors, extra=exc.extra)
    return problem_response(body, exc.headers)


def _body_limit() -> int | None:
    return current_app.config.get("MAX_CONTENT_LENGTH") if has_app_context() else None


def from_http_exception(exc: HTTPException) -> Response:
    """Render a werkzeug/webargs HTTP error (webargs puts validation messages in ``exc.data``)."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    detail: str | None
    if status == 422 and errors:
        detail = "The request has invalid fields; see invalid_params."
    elif status == 400 and errors:
        detail = "The request could not be read; see invalid_params."
    elif status >= 500:
        detail = "Something went wrong on our side. It has been logged."
    elif status == 413:
        detail = f"The request body is larger than the {_body_limit()} bytes this service reads."
    else:
        detail = data.get("message") or exc.description
    body = problem_body(status, detail, errors=errors)
    headers = dict(data.get("headers") or {})
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    return problem_response(body, headers)
