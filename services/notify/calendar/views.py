"""A provider's calendar feed: ``GET /calendar/<token>.ics`` for calendar apps, and its links (staff)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint

from services.notify.calendar import service as feeds
from services.notify.calendar.schemas import FeedLinkOut
from services.notify.metrics import FEED_ANSWERS
from services.notify.runtime import get_runtime
from shared import links
from shared.api import API_PREFIX, public
from shared.db import get_session, unit_of_work
from shared.problems import Gone, NotFound
from shared.timeutil import utcnow

bp = public(Blueprint("calendar_feed", __name__))  # the feed token in the path is the credential
staff = ApiBlueprint(
    "calendar_feeds",
    __name__,
    url_prefix=API_PREFIX,
    description="Providers' private calendar feed links (staff)",
)
CACHE_CONTROL = "private, no-cache"  # keep a copy, but ask (cheaply, with If-None-Match) before using it


def _matches(etags: tuple[str, ...]) -> bool:
    condition = request.if_none_match
    return bool(condition) and (condition.star_tag or any(condition.contains_weak(e) for e in etags))


@bp.get("/calendar/<token>.ics")
def feed(token: str) -> Response:
    """The provider's appointments as iCalendar; 304 when the client's copy (If-None-Match) is current."""
    started = time.perf_counter()
    runtime = get_runtime()
    session = get_session()
    now = utcnow()
    try:
        access = feeds.verify(session=session, signer=runtime.signer, token=token, now=now)
    except links.LinkError as exc:
        FEED_ANSWERS.labels(answer="refused").inc()
        if exc.reason == "expired":
            raise Gone(
                "This calendar link has expired. Ask the clinic for a new one.", slug="feed-link-expired"
            ) from exc
        raise NotFound("There is no calendar at this address.", slug="feed-unknown") from exc
    state = feeds.feed_state(access=access, salt=runtime.feed_salt, now=now)
    etag_ms = (time.perf_counter() - started) * 1000
    gzip_ok = request.accept_encodings["gzip"] > 0
    # One ETag per representation (RFC 9110); either one proves the client's copy is current.
    etags = (state.etag, f"{state.etag}-gz")
    headers = {
        "ETag": f'"{etags[1] if gzip_ok else etags[0]}"',
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Accept-Encoding",
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex",
    }
    if _matches(etags):
        headers["Server-Timing"] = f"etag;dur={etag_ms:.2f}"
        FEED_ANSWERS.labels(answer="not_modified").inc()
        return Response(status=304, headers=headers)
    built, fresh = feeds.build_feed(
        session=session,
        access=access,
        state=state,
        config=runtime.config,
        book=runtime.book,
        cache=runtime.feed_cache,
        now=now,
    )
    FEED_ANSWERS.labels(answer="built" if fresh else "cached").inc()
    total_ms = (time.perf_counter() - started) * 1000
    timing = f"etag;dur={etag_ms:.2f}, feed;dur={total_ms - etag_ms:.2f}"
    response = Response(built.gzipped if gzip_ok else built.body, mimetype="text/calendar")
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = 'inline; filename="appointments.ics"'
    if gzip_ok:
        response.headers["Content-Encoding"] = "gzip"
    if state.last_modified is not None:
        response.last_modified = state.last_modified
    response.headers.update(headers)
    # "build" appears only when this request built the feed (the benchmark counts them).
    response.headers["Server-Timing"] = timing + (f", build;dur={built.build_ms:.2f}" if fresh else "")
    return response


def _issue(issue: Callable[..., feeds.FeedLink], provider_id: int) -> feeds.FeedLink:
    runtime = get_runtime()
    with unit_of_work() as session:  # the first link of a provider gives its feed a token secret
        return issue(
            session=session,
            signer=runtime.signer,
            config=runtime.config,
            provider_id=provider_id,
            now=utcnow(),
        )


@staff.route("/providers/<id:provider_id>/calendar-feed")
class ProviderFeed(MethodView):
    @staff.response(200, FeedLinkOut)
    def get(self, provider_id: int) -> Any:
        """The provider's calendar feed link: subscribe to it (webcal); valid a year, fetch again to renew."""
        return _issue(feeds.feed_link, provider_id)


@staff.route("/providers/<id:provider_id>/calendar-feed/rotate")
class RotateProviderFeed(MethodView):
    @staff.response(200, FeedLinkOut)
    def post(self, provider_id: int) -> Any:
        """Revoke every link to the provider's feed at once (e.g. one was shared) and return a new one."""
        return _issue(feeds.rotate_link, provider_id)
