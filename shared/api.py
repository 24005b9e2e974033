"""flask-smorest wiring shared by the services: problem+json errors, staff API keys, local API docs.

Every route needs a staff key unless it is marked :func:`public` (a view, a MethodView or a whole blueprint):
the app checks the key before any view runs, so a route added without thinking fails closed.
"""

from __future__ import annotations

import hmac
from datetime import date
from typing import Any, TypeVar

import swagger_ui_bundle
from apispec import BasePlugin
from flask import Flask, current_app, request, send_from_directory
from flask_smorest import Api
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, ValidationError

from shared import problems

T = TypeVar("T")

API_PREFIX = "/api/v1"
DOCS_ASSETS = "/api/docs/assets/"
_PUBLIC = "_suite_public"


class ProblemSchema(Schema):
    """An RFC 9457 problem details body."""

    type = fields.String(metadata={"example": "https://telehealth-suite.invalid/problems/slot-taken"})
    title = fields.String(metadata={"example": "Conflict"})
    status = fields.Integer(metadata={"example": 409})
    detail = fields.String()
    errors = fields.Dict(metadata={"description": "validation messages by location and field"})
    invalid_params = fields.List(
        fields.Dict(), metadata={"description": "one entry per field at fault: name, in, reason"}
    )


class DateConverter(BaseConverter):
    """``<isodate:day>``: a ``YYYY-MM-DD`` path segment as a ``date``; anything else is a 404."""

    regex = r"\d{4}-\d{2}-\d{2}"

    def to_python(self, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError() from exc

    def to_url(self, value: date) -> str:
        return value.isoformat()


class ProblemApi(Api):
    """An ``Api`` whose errors are problem+json bodies."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return problems.from_http_exception(error)


def public(target: T) -> T:
    """Open a view function, a MethodView class or a whole blueprint to callers without a staff key."""
    setattr(target, _PUBLIC, True)
    return target


def is_public(app: Flask, endpoint: str) -> bool:
    """Whether ``endpoint`` answers without a staff key (every other route of the app needs one)."""
    view = app.view_functions.get(endpoint)
    owners = (view, getattr(view, "view_class", None), app.blueprints.get(endpoint.rpartition(".")[0]))
    return any(getattr(owner, _PUBLIC, False) for owner in owners if owner is not None)


class StaffKeyPlugin(BasePlugin):
    """Documents the staff key on every operation that is not public (apispec plugin)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or operations is None or is_public(self.app, rule.endpoint):
            return
        for operation in operations.values():
            operation["security"] = [{"staffKey": []}]
            operation.setdefault("responses", {})["401"] = {
                "description": "No or wrong staff key",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }


def init_api(app: Flask, *, title: str, description: str, docs: bool = True) -> ProblemApi:
    """Configure OpenAPI for ``app``; serve ``/api/openapi.json`` and ``/api/docs`` only if ``docs``."""
    app.config.update(
        API_TITLE=title,
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api" if docs else None,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=DOCS_ASSETS,
        API_SPEC_OPTIONS={
            "info": {"description": description},
            "components": {
                "securitySchemes": {
                    "staffKey": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A staff API key from the API_KEYS setting",
                    }
                }
            },
        },
    )
    app.url_map.converters["isodate"] = DateConverter
    api = ProblemApi(app, spec_kwargs={"extra_plugins": [StaffKeyPlugin(app)]})
    api.register_converter(DateConverter, lambda _converter: {"type": "string", "format": "date"})
    if docs:
        public(app.blueprints["api-docs"])

        @app.route(DOCS_ASSETS + "<path:filename>")
        @public
        def _swagger_assets(filename: str) -> Any:
            # Served from the installed swagger-ui-bundle: the docs page loads nothing from outside.
            return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)

    if "static" in app.view_functions:
        public(app.view_functions["static"])
    app.register_error_handler(problems.Problem, problems.from_problem)
    return api


def require_staff_key(app: Flask) -> None:
    """Check the staff key before every request to a route not marked :func:`public` (failing closed)."""

    @app.before_request
    def _staff_key_unless_public() -> None:
        # No endpoint: the router's 404 or 405 follows.
        if request.endpoint is not None and not is_public(current_app, request.endpoint):
            check_api_key()


def _key_matches(presented: str, keys: tuple[str, ...]) -> bool:
    # Compare against every key so timing does not reveal which prefix matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched


def check_api_key() -> None:
    """Raise 401 unless the request carries a configured staff key as a bearer token."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    keys = current_app.extensions["suite_config"].api_keys
    if scheme.lower() != "bearer" or not presented or not _key_matches(presented.strip(), keys):
        raise problems.Unauthorized(
            "A staff API key is required: send 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="staff"'},
        )
