"""A body over MAX_REQUEST_BYTES is refused before it is read, on every route that takes one, in every service."""

from __future__ import annotations

from flask import Flask

from tests.shared.test_staff_key import _path, service  # noqa: F401 (the fixture)

WRITES = ("POST", "PUT", "PATCH")
STAFF = {"Authorization": "Bearer dev-api-key"}


def test_every_route_refuses_a_body_over_the_limit(service: tuple[str, Flask]) -> None:  # noqa: F811
    name, app = service
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 1_048_576  # the default (shared.config MAX_REQUEST_BYTES)
    body = b'{"x": "' + b"y" * limit + b'"}'
    client = app.test_client()
    answered = []
    for rule in app.url_map.iter_rules():
        for method in WRITES:
            if method not in (rule.methods or ()):
                continue
            path = _path(rule)
            for content_type in ("application/json", "application/x-www-form-urlencoded"):
                answer = client.open(path, method=method, data=body, content_type=content_type, headers=STAFF)
                # Refused unread (413), or earlier by what needs no body: a wrong link (404), no such method here.
                assert answer.status_code in {404, 405, 413}, (name, method, path, answer.status_code)
                answered.append(answer.status_code)
                if answer.status_code == 413:
                    assert answer.mimetype in {"application/problem+json", "text/html"}, (name, path)
    assert 413 in answered, name
