"""The page fuzzer's parts: crawl an app's pages from a few entry links, list every route of its url_map, and
send each GET page and POST form hostile values (tests/fuzz/test_pages.py runs it per service and engine)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, quote, quote_from_bytes, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from shared.db import get_db

# Answers a 200 form answer shows its errors with (booking's summary; checkins' per-field message).
ERROR_MARKERS = ('class="error-summary"', 'class="error"')
# Values no form expects: empty, huge, control and format characters, other scripts' digits, wrong types,
# impossible dates, markup, bytes that are not UTF-8 (an encoded lone surrogate among them).
SPECIALS: tuple[bytes, ...] = tuple(
    v if isinstance(v, bytes) else v.encode()
    for v in (
        "",
        " ",
        "\x00",
        "\r\n",
        "\x1b[31m",
        "\ufeff",
        "\u202e",
        "١٢٣",
        "\uff11\uff12",
        "\U0001d7d8",
        "-1",
        "0",
        "1e309",
        "NaN",
        "inf",
        "true",
        "null",
        "[]",
        "{}",
        "2026-02-30",
        "2026-03-03T25:00",
        "9999-12-31T23:59:59+14:00",
        "0001-01-01",
        "2026-03-03T10:00:00",
        "../../etc/passwd",
        "<script>x</script>",
        "' OR 1=1--",
        "%",
        "+",
        "99999999999999999999999",
        b"\xed\xa0\x80",
        b"\xff\xfe",
        b"\xc3",
    )
)
HOSTILE = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(max_size=30).map(str.encode),
    st.binary(max_size=12),
    st.integers().map(lambda n: str(n).encode()),
    st.builds(
        lambda unit, n: unit * n,
        st.sampled_from([b"9", b"a", "\u00e9".encode()]),
        st.sampled_from([300, 100_000]),
    ),
)
# A form's body is sent as a browser sends it, mostly; sometimes under a type no form sends.
CONTENT_TYPES = st.sampled_from(
    ("application/x-www-form-urlencoded",) * 6
    + (
        "application/x-www-form-urlencoded; charset=latin-1",
        "application/json",
        "text/plain",
        "multipart/form-data",
    )
)
ACTIONS = ("keep", "keep", "drop", "hostile", "repeat")


@dataclass
class Target:
    """One route and method to fuzz: a real URL of it and the fields (or query) a real request sends."""

    endpoint: str
    method: str
    path: str
    fields: list[tuple[str, str]]
    arguments: dict[str, Any] = field(default_factory=dict)


class _Reader(HTMLParser):
    """The links and forms of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[tuple[str, str, list[tuple[str, str]]]] = []
        self._radios: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self.forms.append((a.get("method", "get").upper(), a.get("action", ""), []))
            self._radios = set()
        elif tag in ("input", "select", "textarea", "button") and self.forms and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("radio", "checkbox"):
                if a["name"] in self._radios:
                    return
                self._radios.add(a["name"])
            self.forms[-1][2].append((a["name"], a.get("value", "")))


def _local(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("", "http", "https") or not parts.path.startswith("/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def crawl(
    client: FlaskClient,
    app: Flask,
    entries: Iterable[str],
    *,
    headers: dict[str, str],
    limit: int = 1000,
    per_route: int = 3,
) -> list[Target]:
    """Every route the entry pages and what they link to reach, with its forms: GETs first, then POSTs."""
    adapter = app.url_map.bind("localhost")
    queue, seen, targets = list(entries), set[str](), dict[tuple[str, str], Target]()
    visits: dict[str, int] = {}
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        path, _, query = url.partition("?")
        try:
            endpoint, arguments = adapter.match(path, method="GET")
        except HTTPException:
            continue
        # A few pages of each route are enough to find its forms; a slot list links to hundreds of its own.
        visits[endpoint] = visits.get(endpoint, 0) + 1
        if visits[endpoint] > per_route:
            continue
        targets.setdefault(
            (endpoint, "GET"),
            Target(endpoint, "GET", path, parse_qsl(query, keep_blank_values=True), arguments),
        )
        answer = client.get(url, headers=headers)
        if answer.status_code in (301, 302, 303, 307) and (location := _local(answer.location)):
            queue.append(location)
        if answer.mimetype != "text/html":
            continue
        reader = _Reader()
        reader.feed(answer.get_data(as_text=True))
        queue.extend(u for href in reader.links if (u := _local(href)) and "/static/" not in u)
        for method, action, fields in reader.forms:
            action_path = _local(action or path) or path
            try:
                endpoint, arguments = adapter.match(action_path.partition("?")[0], method=method)
            except HTTPException:
                continue
            if method == "GET":
                queue.append(action_path)
                targets.setdefault((endpoint, "GET"), Target(endpoint, "GET", action_path, fields, arguments))
            else:
                targets.setdefault(
                    (endpoint, method), Target(endpoint, method, action_path, fields, arguments)
                )
    return sorted(targets.values(), key=lambda t: (t.method != "GET", "cancel" in t.endpoint, t.endpoint))


def routes(app: Flask, excluded: Iterable[str]) -> set[tuple[str, str]]:
    """Every (endpoint, method) of the app's url_map outside the JSON API and ``excluded``."""
    rules: list[Rule] = [r for r in app.url_map.iter_rules() if not r.rule.startswith("/api/")]
    return {
        (r.endpoint, m)
        for r in rules
        if r.endpoint not in excluded and not r.endpoint.endswith("static")
        for m in (r.methods or set()) - {"HEAD", "OPTIONS"}
    }


def borrow(app: Flask, missing: Iterable[tuple[str, str]], found: list[Target], csrf: str) -> list[Target]:
    """POST routes no crawled form posts to (a form shown only on an expired link's page), built from the
    arguments of a crawled route with the same ones and the session's CSRF token."""
    adapter = app.url_map.bind("localhost")
    built = []
    for endpoint, method in sorted(missing):
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        donor = next((t for t in found if set(t.arguments) == set(rule.arguments)), None)
        if donor is not None:
            path = adapter.build(endpoint, donor.arguments)
            built.append(Target(endpoint, method, path, [("csrf_token", csrf)], donor.arguments))
    return built


def fingerprint(app: Flask, metadata: MetaData) -> str:
    """A digest of every row of every table of the service."""
    digest = hashlib.sha256()
    with app.app_context(), get_db().transaction() as session:
        for table in metadata.sorted_tables:
            for row in session.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def mutate(data: st.DataObject, pairs: list[tuple[str, str]], keys: list[str]) -> list[tuple[str, bytes]]:
    """``pairs`` with some fields dropped, repeated or hostile, and up to three extra fields."""
    sent: list[tuple[str, bytes]] = []
    # Half the cases change one field and keep the rest as the page gave them, so they get past the other
    # fields' checks to the code behind (a booking made with one odd value); the others change any.
    focus = data.draw(st.none() | st.integers(0, len(pairs) - 1)) if pairs else None
    for n, (key, value) in enumerate(pairs):
        if focus is not None:
            action = data.draw(st.sampled_from(ACTIONS[2:])) if n == focus else "keep"
        else:
            # The form's CSRF token is kept nine times in ten, so most cases reach the form's own checks.
            action = data.draw(
                st.sampled_from(ACTIONS if key != "csrf_token" else ("keep",) * 9 + ("hostile",))
            )
        if action in ("keep", "repeat"):
            sent.append((key, value.encode()))
        if action in ("hostile", "repeat"):
            sent.append((key, data.draw(HOSTILE)))
    extra_key = st.sampled_from(keys) if keys else st.text(max_size=10)
    extras = data.draw(st.lists(st.tuples(st.one_of(extra_key, st.text(max_size=10)), HOSTILE), max_size=3))
    return sent + [(k, v) for k, v in extras]


def encode(pairs: list[tuple[str, bytes]]) -> str:
    """``pairs`` as a form body or query string, every byte percent-encoded as it is."""
    return "&".join(
        f"{quote_from_bytes(k.encode(), safe='')}={quote_from_bytes(v, safe='')}" for k, v in pairs
    )


def fuzz(
    client: FlaskClient,
    app: Flask,
    target: Target,
    *,
    metadata: MetaData,
    query_keys: list[str],
    headers: dict[str, str],
    examples: int,
    failures: list[str],
    statuses: Counter[int],
) -> None:
    """Send ``examples`` hostile variants of ``target`` (derandomized), recording each broken answer."""

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=["generate"],
    )
    @given(st.data())
    def probe(data: st.DataObject) -> None:
        path, _, action_query = target.path.partition("?")
        arguments = target.arguments
        if arguments and data.draw(st.integers(0, 5)) == 0:
            # One path segment (a token, a slug, an id) garbled; a converter that refuses it is a 404.
            name = data.draw(st.sampled_from(sorted(arguments)))
            segments = path.split("/")
            shown = quote(str(arguments[name]), safe="")
            if shown in segments:
                segments[segments.index(shown)] = quote_from_bytes(data.draw(HOSTILE) or b"x", safe="")
                path = "/".join(segments)
        if target.method == "GET":
            url, body = f"{path}?{encode(mutate(data, target.fields, query_keys))}", None
            content_type = None
        else:
            # A form's action may carry its own query (the chosen slot): kept, and fuzzed like the fields.
            query = encode(mutate(data, parse_qsl(action_query, keep_blank_values=True), query_keys))
            url = f"{path}?{query}" if query else path
            body = encode(mutate(data, target.fields, query_keys)).encode()
            content_type = data.draw(CONTENT_TYPES)
        before = fingerprint(app, metadata)
        answer = client.open(
            url,
            method=target.method,
            data=body,
            content_type=content_type,
            headers=headers,
        )
        statuses[answer.status_code] += 1
        problem = _judge(answer, target, changed=lambda: fingerprint(app, metadata) != before)
        if problem:
            failures.append(f"{target.method} {url[:300]!r} body={body[:300] if body else None!r}: {problem}")

    probe()


def _judge(answer: Any, target: Target, *, changed: Callable[[], bool]) -> str | None:
    status = answer.status_code
    if status >= 500:
        return f"{status}"
    if 300 <= status < 400:
        return None
    text = answer.get_data(as_text=True) if answer.mimetype == "text/html" else ""
    failed = status >= 400 or any(marker in text for marker in ERROR_MARKERS)
    if target.method == "GET" and status < 300:
        return None
    if status < 300 and answer.mimetype != "text/html":
        return f"{status} {answer.mimetype}, not a page"
    if failed and changed():
        return f"{status} changed the database"
    return None
