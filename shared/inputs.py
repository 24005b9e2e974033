"""The check every request passes before a view reads it: JSON that parses, and no text a database refuses.

Unreadable JSON (bad UTF-8, NaN or Infinity, nesting or numbers beyond the parser) and any string with a NUL
or a lone surrogate, in a JSON body, the query or a form, are a 400 naming where; a NUL in a path names
nothing (404). Fields refuse the other control characters themselves (``shared.fields``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from flask import request

from shared.problems import BadRequest, NotFound

_REASON = "must not contain NUL characters or unpaired surrogates"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a lone surrogate, which "\ud800" in JSON decodes to
    return True


def _bad_strings(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, str):
        if not _storable(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _storable(key):
                yield (*path, "<key>")
            else:
                yield from _bad_strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_strings(item, (*path, str(index)))


def _refuse(location: str, paths: Sequence[tuple[str, ...]], reason: str) -> BadRequest:
    errors: dict[str, Any] = {location: {}}
    for path in paths:
        if not path:  # the whole body is one bad string
            errors[location] = [reason]
            break
        node = errors[location]
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = [reason]
    return BadRequest("The request could not be read; see invalid_params.", errors=errors)


def _check_json() -> None:
    data = request.get_data(cache=True)
    if not data:
        return
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
        bad = list(_bad_strings(document))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = "not valid JSON" + (f": {exc.msg}" if isinstance(exc, json.JSONDecodeError) else "")
        raise BadRequest("The request body is not valid JSON.", errors={"json": [reason]}) from exc
    if bad:
        raise _refuse("json", bad, _REASON)


def check_request() -> None:
    """Refuse a request whose input no view could read or no database could store (a ``before_request``)."""
    if any(isinstance(v, str) and "\x00" in v for v in (request.view_args or {}).values()):
        raise NotFound("No such resource.")
    for location, values in (("query", request.args), ("form", request.form)):
        bad = [(key,) for key, value in values.items(multi=True) if not (_storable(key) and _storable(value))]
        if bad:
            raise _refuse(location, bad, _REASON)
    if request.is_json:
        _check_json()
