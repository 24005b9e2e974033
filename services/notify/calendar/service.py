"""A provider's private calendar feed: ``/calendar/<token>.ics`` (subscribe with ``webcal://``)."""

from __future__ import annotations

import gzip
import hashlib
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from icalendar import Calendar, Event
from icalendar.enums import TRANSP
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from services.notify.calendar.cache import BuiltFeed, FeedCache
from services.notify.calendar.entry import provider_event
from services.notify.config import NotifyConfig
from services.notify.models import CANCELLED, BookingCopy, CalendarInvite, JoinLink, ProviderFeed
from services.notify.protocols import ProtocolBook
from shared import ical, links
from shared.db import dialect_insert
from shared.timeutil import local_date

EXPIRY_WARNING = timedelta(days=30)
# Raise when what the feed says changes for the same rows, so every client's copy is fetched again.
FORMAT = 1
REFRESH = timedelta(minutes=30)  # how often clients are asked to poll (REFRESH-INTERVAL)


@dataclass(frozen=True)
class FeedLink:
    """A provider's current feed link."""

    provider_id: int
    token_version: int
    url: str
    webcal_url: str
    expires_at: datetime
    rotated_at: datetime | None


@dataclass(frozen=True)
class FeedAccess:
    """A verified feed token, and the feed's revision (read in the same query)."""

    provider_id: int
    token_version: int
    expires_at: datetime
    revision: int = 0
    changed_at: datetime | None = None


@dataclass(frozen=True)
class FeedState:
    """What the feed is right now, from one cheap query: enough to answer If-None-Match."""

    etag: str
    last_modified: datetime | None
    warn_until: date | None  # the link's expiry date, when the feed must warn about it


def feed_url(base_url: str, token: str) -> str:
    """The feed's https URL on the notify service."""
    return links.link_url(base_url, "calendar", token) + ".ics"


def webcal_url(url: str) -> str:
    """The same URL as ``webcal://`` (calendar apps open it as a subscription)."""
    return "webcal://" + url.split("://", 1)[1]


def _feed_row(session: Session, provider_id: int) -> ProviderFeed:
    row = session.get(ProviderFeed, provider_id)
    # No row yet: nothing was ever booked with the provider nor a link issued; no token can match it.
    return row if row is not None else ProviderFeed(provider_id=provider_id, token_version=1, revision=0)


def _issuable_row(session: Session, provider_id: int, now: datetime) -> ProviderFeed:
    """The provider's row with a token secret, made now if need be (two at once agree on one)."""
    session.execute(
        dialect_insert(session, ProviderFeed)
        .values(
            provider_id=provider_id,
            token_version=1,
            token_secret=links.new_secret(),
            revision=0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider_id"])
    )
    session.execute(
        update(ProviderFeed)
        .where(ProviderFeed.provider_id == provider_id, ProviderFeed.token_secret.is_(None))
        .values(token_secret=links.new_secret())
    )
    row = session.get(ProviderFeed, provider_id, populate_existing=True)
    assert row is not None
    return row


def feed_link(
    *, session: Session, signer: links.LinkSigner, config: NotifyConfig, provider_id: int, now: datetime
) -> FeedLink:
    """A link to the provider's feed for the token version in force, valid ``NOTIFY_FEED_LINK_DAYS``."""
    row = _issuable_row(session, provider_id, now)
    expires_at = now + timedelta(days=config.feed_link_days)
    token = signer.sign(
        purpose=links.FEED,
        subject=str(provider_id),
        version=row.token_version,
        expires_at=expires_at,
        extra={links.SECRET_CLAIM: row.token_secret},
    )
    url = feed_url(config.notify_public_url, token)
    return FeedLink(
        provider_id=provider_id,
        token_version=row.token_version,
        url=url,
        webcal_url=webcal_url(url),
        expires_at=expires_at.replace(microsecond=0),
        rotated_at=row.rotated_at,
    )


def rotate_link(
    *, session: Session, signer: links.LinkSigner, config: NotifyConfig, provider_id: int, now: datetime
) -> FeedLink:
    """Revoke every link to the provider's feed (a new version and secret) and return a new one."""
    row = session.get(ProviderFeed, provider_id, with_for_update=True)
    if row is None:
        row = ProviderFeed(provider_id=provider_id, token_version=1, revision=0, created_at=now)
        session.add(row)
    row.token_version += 1
    row.token_secret = links.new_secret()
    row.rotated_at = now
    session.flush()
    return feed_link(session=session, signer=signer, config=config, provider_id=provider_id, now=now)


def verify(*, session: Session, signer: links.LinkSigner, token: str, now: datetime) -> FeedAccess:
    """The provider a feed token is for; :class:`links.LinkError` when it is wrong, rotated or expired."""
    claims = signer.verify(token, purpose=links.FEED, now=now)
    try:
        provider_id = int(claims.subject)
    except ValueError as exc:
        raise links.LinkError("invalid") from exc
    row = _feed_row(session, provider_id)
    if claims.version != row.token_version or not links.secret_matches(claims, row.token_secret):
        raise links.LinkError("invalid")  # rotated or forged: a revoked link is simply unknown
    return FeedAccess(
        provider_id=provider_id,
        token_version=row.token_version,
        expires_at=claims.expires_at,
        revision=row.revision,
        changed_at=row.changed_at,
    )


def window_day(now: datetime) -> datetime:
    """The UTC midnight the feed's window is counted from: the window moves once a day, so a feed is the same
    all day unless something is written (and its ETag can say so without looking at the rows)."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _window(provider_id: int, config: NotifyConfig, now: datetime) -> Any:
    day = window_day(now)
    return and_(
        BookingCopy.provider_id == provider_id,
        BookingCopy.end_at >= day - timedelta(days=config.feed_past_days),
        or_(
            BookingCopy.status != CANCELLED,
            BookingCopy.changed_at >= day - timedelta(days=config.feed_cancelled_days),
        ),
    )


def _join_current() -> Any:
    return and_(JoinLink.booking_id == BookingCopy.id, JoinLink.booking_version == BookingCopy.version)


def feed_state(*, access: FeedAccess, salt: str, now: datetime) -> FeedState:
    """The feed's ETag: its revision (raised by every write that changes it), the day its window counts from,
    the link's version and the settings; nothing else is read."""
    warn_until = access.expires_at.date() if access.expires_at - now <= EXPIRY_WARNING else None
    key = "|".join(
        str(part)
        for part in (
            FORMAT,
            salt,
            access.provider_id,
            access.token_version,
            access.revision,
            window_day(now).date(),
            warn_until,
        )
    )
    return FeedState(
        etag=hashlib.sha256(key.encode()).hexdigest()[:40],
        last_modified=access.changed_at,
        warn_until=warn_until,
    )


def settings_salt(config: NotifyConfig, book: ProtocolBook) -> str:
    """What the feed's text depends on besides its rows: part of every ETag."""
    parts = [
        config.booking_public_url,
        config.invite_staff_url,
        config.feed_past_days,
        config.feed_cancelled_days,
        sorted(book.invite_summaries.items()),
        sorted(book.sms_names.items()),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _entry(
    *,
    copy: BookingCopy,
    sequence: int | None,
    invited_at: datetime | None,
    join_url: str | None,
    joined_at: datetime | None,
    config: NotifyConfig,
    book: ProtocolBook,
    cache: FeedCache,
) -> bytes:
    key = (copy.id, copy.updated_at, sequence, invited_at, join_url)
    found: bytes | None = cache.entries.get(key)
    if found is not None:
        return found
    stamp = max(s for s in (copy.updated_at, invited_at, joined_at) if s is not None)
    event = provider_event(
        copy,
        config=config,
        book=book,
        join_url=join_url,
        sequence=sequence or 0,
        stamp=stamp,
        scheduling=False,
    )
    data = bytes(event.to_ical())
    cache.entries.put(key, data)
    return data


def _expiry_notice(access: FeedAccess, *, tz: str, config: NotifyConfig, now: datetime) -> Event:
    """An all-day entry today saying the feed's link expires soon."""
    day = local_date(now, tz)
    provider_id = access.provider_id
    return Event.new(
        uid=f"feed-expiry-{provider_id}-{access.token_version}@{urlsplit(config.notify_public_url).hostname}",
        sequence=0,
        stamp=now.replace(hour=0, minute=0, second=0, microsecond=0),
        start=day,
        end=day + timedelta(days=1),
        summary=f"Calendar feed link expires on {access.expires_at:%d %b %Y}: ask the clinic for a new one",
        description="This calendar stops updating when its link expires. Ask the clinic's staff for a new "
        "link and subscribe to it; then remove this calendar.",
        transparency=TRANSP.TRANSPARENT,
    )


def _feed_rows(session: Session, provider_id: int, config: NotifyConfig, now: datetime) -> Any:
    """The window's bookings of the provider, with their invite sequence and current join link, by start."""
    return session.execute(
        select(
            BookingCopy,
            CalendarInvite.sequence,
            CalendarInvite.updated_at,
            JoinLink.provider_url,
            JoinLink.received_at,
        )
        .outerjoin(CalendarInvite, CalendarInvite.booking_id == BookingCopy.id)
        .outerjoin(JoinLink, _join_current())
        .where(_window(provider_id, config, now))
        .order_by(BookingCopy.start_at, BookingCopy.id)
    ).all()


def build_feed(
    *,
    session: Session,
    access: FeedAccess,
    state: FeedState,
    config: NotifyConfig,
    book: ProtocolBook,
    cache: FeedCache,
    now: datetime,
) -> tuple[BuiltFeed, bool]:
    """The feed's iCalendar text for ``state``, and whether it was built now (not found in the cache)."""
    key = (access.provider_id, state.etag)
    built: BuiltFeed | None = cache.feeds.get(key)
    if built is not None:
        return built, False
    started = time.perf_counter()
    rows = _feed_rows(session, access.provider_id, config, now)
    entries: list[bytes] = []
    moments: list[datetime] = []
    zones: set[str] = set()
    name, tz = "Appointments", "UTC"
    for copy, sequence, invited_at, join_url, joined_at in rows:
        tz = copy.snapshot["provider"]["time_zone"]
        name = f"Appointments: {copy.snapshot['provider']['name']}"
        zones.add(tz)
        moments += [copy.start_at, copy.end_at]
        entries.append(
            _entry(
                copy=copy,
                sequence=sequence,
                invited_at=invited_at,
                join_url=join_url,
                joined_at=joined_at,
                config=config,
                book=book,
                cache=cache,
            )
        )
    if state.warn_until is not None:
        entries.append(bytes(_expiry_notice(access, tz=tz, config=config, now=now).to_ical()))
        moments.append(now)
    body = _assemble(name=name, tz=tz, zones=zones, moments=moments, entries=entries)
    built = BuiltFeed(
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0),
        build_ms=(time.perf_counter() - started) * 1000,
    )
    cache.feeds.put(key, built)
    cache.builds += 1
    return built, True


def _assemble(*, name: str, tz: str, zones: set[str], moments: list[datetime], entries: list[bytes]) -> bytes:
    """VCALENDAR header (icalendar), the VTIMEZONEs in use, then the serialized entries."""
    calendar = ical.new_calendar(
        method=ical.PUBLISH,
        events=[],
        properties=[
            ("name", name),
            ("x-wr-calname", name),
            ("x-wr-timezone", tz),
            ("refresh-interval", REFRESH),
            ("x-published-ttl", "PT30M"),  # Outlook's older name for the same hint
        ],
    )
    calendar["REFRESH-INTERVAL"].params["VALUE"] = "DURATION"
    head = _without_end(calendar)
    parts = [head]
    if moments:
        first, last = ical.timezone_span(moments)
        parts += [ical.vtimezone_ical(zone, first, last) for zone in sorted(zones - {"UTC"})]
    parts += entries
    parts.append(b"END:VCALENDAR\r\n")
    return b"".join(parts)


def _without_end(calendar: Calendar) -> bytes:
    text = bytes(calendar.to_ical())
    end = b"END:VCALENDAR\r\n"
    assert text.endswith(end)
    return text[: -len(end)]
