"""flask-smorest wiring shared by the services: problem+json errors, staff API keys, local API docs.

Every route needs a staff key unless it is marked :func:`public` (a view, a MethodView or a whole blueprint):
the app checks the key before any view runs, so a route added without thinking fails closed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar, cast

import swagger_ui_bundle
from apispec import APISpec, BasePlugin
from flask import Flask, current_app, request, send_from_directory
from flask_smorest import Api, Blueprint
from marshmallow import INCLUDE, Schema, fields
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, IntegerConverter, Map, ValidationError

from shared import problems
from shared.fields import DAY_PATTERN, is_day, largest_id

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

API_PREFIX = "/api/v1"
DOCS_ASSETS = "/api/docs/assets/"
_PUBLIC = "_suite_public"


class ProblemSchema(Schema):
    """An RFC 9457 problem details body (with extension members, such as a conflict's alternatives)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(metadata={"example": "https://telehealth-suite.invalid/problems/slot-taken"})
    title = fields.String(metadata={"example": "Conflict"})
    status = fields.Integer(metadata={"example": 409})
    detail = fields.String()
    errors = fields.Dict(metadata={"description": "validation messages by location and field"})
    invalid_params = fields.List(
        fields.Dict(), metadata={"description": "one entry per field at fault: name, in, reason"}
    )


class DateConverter(BaseConverter):
    """``<isodate:day>``: a ``YYYY-MM-DD`` path segment (years 1900-8999) as a ``date``; else a 404."""

    regex = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"

    def to_python(self, value: str) -> date:
        try:
            if not is_day(value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError() from exc

    def to_url(self, value: date) -> str:
        return value.isoformat()


class IdConverter(IntegerConverter):
    """``<id:name>``: a row id within its column's range (``<id(bits=64):name>`` for BIGINT); else a 404."""

    regex = r"[0-9]{1,19}"

    def __init__(self, map: Map, bits: int = 32) -> None:
        super().__init__(map, min=1, max=largest_id(bits))


class ProblemPlugin(BasePlugin):
    """Documents error responses as ``application/problem+json`` and lets a schema set ``minProperties``."""

    def schema_helper(self, name: str, definition: Any, **kwargs: Any) -> dict[str, Any] | None:
        schema = kwargs.get("schema")
        minimum = getattr(schema, "MIN_PROPERTIES", None)
        return {"minProperties": minimum} if minimum else None

    def operation_helper(self, path: str | None = None, operations: Any = None, **kwargs: Any) -> None:
        for operation in (operations or {}).values():
            for status, response in operation.get("responses", {}).items():
                if str(status)[0] in "45d":  # 4xx, 5xx and "default"
                    _problem_content(response)


def _nullable_ref(_converter: Any, field: Any, ret: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 for a nullable nested schema: the schema or null, not apispec's "or any object"."""
    branches = ret.get("anyOf", [])
    if field.allow_none and len(branches) == 2 and {"type": "object", "nullable": True} in branches:
        ret.pop("anyOf")
        return {"nullable": True, "allOf": [b for b in branches if "$ref" in b]}
    return {}


def _problem_content(response: Any) -> None:
    content = response.get("content") if isinstance(response, dict) else None
    if content and "application/json" in content:
        content[problems.PROBLEM_MIMETYPE] = content.pop("application/json")


class ProblemApi(Api):
    """An ``Api`` whose errors are problem+json bodies, and whose document says so."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return problems.from_http_exception(error)

    def _register_responses(self) -> None:
        super()._register_responses()
        spec: APISpec = self.spec
        for response in spec.components.responses_lazy.values():
            _problem_content(response)


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
    app.url_map.converters["id"] = IdConverter
    api = ProblemApi(app, spec_kwargs={"extra_plugins": [StaffKeyPlugin(app), ProblemPlugin()]})
    api.ma_plugin.converter.add_attribute_function(_nullable_ref)
    api.register_converter(
        DateConverter, lambda _converter: {"type": "string", "format": "date", "pattern": DAY_PATTERN}
    )
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


def links(bp: Blueprint, status: int, targets: dict[str, tuple[str, str, str]]) -> Callable[[F], F]:
    """Document OpenAPI links: ``{name: (method, path, parameter)}`` each filled with the response's ``id``.

    They say which operations a created resource leads to (clients and the API fuzzer follow them).
    """
    documented = {
        name: {
            "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method,
            "parameters": {parameter: "$response.body#/id"},
        }
        for name, (method, path, parameter) in targets.items()
    }
    return cast(Callable[[F], F], bp.doc(responses={status: {"links": documented}}))


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
