"""The provider's private calendar feed: what it lists, its signed and rotatable link, and cheap polling."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, timedelta

import sqlalchemy as sa
import time_machine
import vobject
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar

from services.notify.calendar import service as feeds
from services.notify.runtime import Runtime
from shared import events, links
from shared.db import make_engine
from shared.migrate import alembic_config
from shared.timeutil import utcnow
from tests.notify.calendar.support import PROVIDER_EMAIL, parse, provider_invites
from tests.notify.conftest import MONDAY_NOON, STAFF, deliver, work
from tests.notify.factories import PROVIDER, Booking
from tests.ops.conftest import samples

BASE = "https://notify.example.test"


def feed_link(client: FlaskClient, provider_id: int = PROVIDER.id) -> dict[str, str]:
    answer = client.get(f"/api/v1/providers/{provider_id}/calendar-feed", headers=STAFF)
    assert answer.status_code == 200, answer.json
    return answer.json  # type: ignore[no-any-return]


def path_of(url: str) -> str:
    assert url.startswith(BASE + "/calendar/")
    assert url.endswith(".ics")
    return url.removeprefix(BASE)


def answers(client: FlaskClient, answer: str) -> float:
    """The feed answers of one kind counted on the service's /metrics page."""
    return samples(
        client.get("/metrics").get_data(as_text=True),
        "suite_notify_calendar_feed_answers_total",
        answer=answer,
    )


def builds(app: Flask) -> int:
    runtime: Runtime = app.extensions["notify"]
    return runtime.feed_cache.builds


def test_the_feed_lists_recent_and_upcoming_bookings_as_the_invites_say_them(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    upcoming = Booking(start=MONDAY_NOON + timedelta(days=3))
    recent = Booking(start=MONDAY_NOON - timedelta(days=20), kind="infusion-session")
    old = Booking(start=MONDAY_NOON - timedelta(days=40))
    cancelled = Booking(start=MONDAY_NOON + timedelta(days=5))
    someone_else = Booking(
        start=MONDAY_NOON + timedelta(days=4),
        provider=events.ProviderRef(id=2, name="Dr. Sam Ortiz", email="sam@example.com", time_zone="UTC"),
    )
    for booking in (recent, old):
        deliver(invite_app, booking.confirmed(at=booking.start - timedelta(days=7)))
    for booking in (upcoming, cancelled, someone_else):
        deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    deliver(invite_app, upcoming.links_ready(at=MONDAY_NOON))
    work(invite_app)
    deliver(invite_app, cancelled.cancel(at=MONDAY_NOON))
    work(invite_app)

    client = invite_app.test_client()
    link = feed_link(client)
    assert link["webcal_url"] == "webcal://" + link["url"].removeprefix("https://")
    assert link["expires_at"] == (MONDAY_NOON + timedelta(days=365)).isoformat()
    response = client.get(path_of(link["url"]))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    feed = parse_feed(response.data)
    by_uid = {str(e["UID"]): e for e in feed.events}
    uid = "booking-{}@booking.example.test".format
    assert set(by_uid) == {uid(upcoming.id), uid(recent.id), uid(cancelled.id)}  # not the old, not Sam's
    assert str(feed["X-WR-CALNAME"]) == "Appointments: Dr. Maya Chen"
    assert str(feed["METHOD"]) == "PUBLISH"
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT30M" in response.data

    # The same event as the latest invite: UID, SEQUENCE, times, title, place.
    latest = {i.uid: i for i in provider_invites(invite_app)}
    assert set(latest) == {uid(upcoming.id), uid(cancelled.id)}  # the recent one was over when booked
    assert int(by_uid[uid(recent.id)]["SEQUENCE"]) == 0
    for key, invited in latest.items():
        entry, invite = by_uid[key], invited.event
        assert int(entry["SEQUENCE"]) == int(invite["SEQUENCE"])
        assert entry.start == invite.start
        assert entry.end == invite.end
    live = by_uid[uid(upcoming.id)]
    assert str(live["SUMMARY"]) == "Video appointment: Alex D."
    # The invite's day-sheet link (a bearer link to the provider's whole day) stays out of the feed.
    assert "staff/day/" in str(latest[uid(upcoming.id)].event["DESCRIPTION"])
    assert "staff/day/" not in response.data.decode()
    assert str(live["LOCATION"]).endswith(f"provider-{upcoming.id.hex[:8]}-v1")
    assert int(live["SEQUENCE"]) == 0  # the links came before the first invite went: it carried them
    gone = by_uid[uid(cancelled.id)]
    assert (str(gone["STATUS"]), str(gone["SUMMARY"])) == (
        "CANCELLED",
        "Cancelled: Video appointment: Alex D.",
    )
    assert str(gone["TRANSP"]) == "TRANSPARENT"
    # Read-only: no organizer or attendees, so no patient address in a document fetched by URL.
    text = response.data.decode()
    assert "ATTENDEE" not in text
    assert "ORGANIZER" not in text
    assert "alex@example.com" not in text
    assert PROVIDER_EMAIL not in text
    assert "/manage/" not in text
    assert "infusion" not in text.lower()

    # A week after the cancellation it is gone; thirty days after the recent visit ended, that one too.
    clock.move_to(MONDAY_NOON + timedelta(days=8))
    uids = {str(e["UID"]) for e in parse_feed(client.get(path_of(link["url"])).data).events}
    assert uids == {uid(upcoming.id), uid(recent.id)}
    clock.move_to(MONDAY_NOON + timedelta(days=11))
    uids = {str(e["UID"]) for e in parse_feed(client.get(path_of(link["url"])).data).events}
    assert uids == {uid(upcoming.id)}


def parse_feed(data: bytes) -> Calendar:
    """The feed as icalendar reads it, after vobject has read every entry of it too."""
    other = vobject.readOne(data.decode("utf-8"))
    calendar = Calendar.from_ical(data)
    assert len(list(other.components())) == len(calendar.subcomponents)
    for entry in calendar.events:
        parse(
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
            + b"".join(bytes(tz.to_ical()) for tz in calendar.timezones)
            + bytes(entry.to_ical())
            + b"END:VCALENDAR\r\n"
        )
    return calendar


def test_the_feed_refuses_wrong_other_purpose_rotated_and_expired_tokens(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON + timedelta(days=3))
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    client = invite_app.test_client()
    link = feed_link(client)
    good = path_of(link["url"])
    assert client.get(good).status_code == 200

    signer: links.LinkSigner = invite_app.extensions["link_signer"]
    later = MONDAY_NOON + timedelta(days=30)
    manage = links.manage_token(signer, booking_id=str(booking.id), version=1, ends_at=later)
    join = links.join_token(
        signer, booking_id=str(booking.id), version=1, participant="provider", ends_at=later, secret="s"
    )
    other_key = links.LinkSigner(["another-deployment-key-0123456789abcdef"]).sign(
        purpose=links.FEED, subject="1", version=1, expires_at=later
    )
    not_a_provider = signer.sign(purpose=links.FEED, subject="maya", version=1, expires_at=later)
    # With the deployment's own signing key (leaked, or the development one) and the provider's id and
    # version, but not the secret stored in the provider's feed row: refused.
    forged = signer.sign(purpose=links.FEED, subject="1", version=1, expires_at=later)
    wrong_secret = signer.sign(
        purpose=links.FEED, subject="1", version=1, expires_at=later, extra={links.SECRET_CLAIM: "guess"}
    )
    tampered = good.replace(".ics", "x.ics")
    for token_path in (
        f"/calendar/{manage}.ics",
        f"/calendar/{join}.ics",
        f"/calendar/{other_key}.ics",
        f"/calendar/{not_a_provider}.ics",
        f"/calendar/{forged}.ics",
        f"/calendar/{wrong_secret}.ics",
        tampered,
        "/calendar/nothing.ics",
    ):
        refused = client.get(token_path)
        assert refused.status_code == 404, token_path
        assert refused.mimetype == "application/problem+json"
        assert refused.json["type"].endswith("feed-unknown")

    rotated = client.post("/api/v1/providers/1/calendar-feed/rotate", headers=STAFF)
    assert rotated.status_code == 200
    assert rotated.json["token_version"] == 2
    assert rotated.json["rotated_at"] == MONDAY_NOON.isoformat()
    assert client.get(good).status_code == 404  # the old link stopped at once
    assert client.get(path_of(rotated.json["url"])).status_code == 200
    # The old secret with the new version: still refused (rotation replaced the secret too).
    old_secret = signer.verify(
        good.removeprefix("/calendar/").removesuffix(".ics"), purpose=links.FEED
    ).extra[links.SECRET_CLAIM]
    again = signer.sign(
        purpose=links.FEED, subject="1", version=2, expires_at=later, extra={links.SECRET_CLAIM: old_secret}
    )
    assert client.get(f"/calendar/{again}.ics").status_code == 404
    assert feed_link(client)["token_version"] == 2  # fetching the link again gives the new version's

    clock.move_to(MONDAY_NOON + timedelta(days=366))
    expired = client.get(path_of(rotated.json["url"]))
    assert expired.status_code == 410
    assert expired.json["detail"] == "This calendar link has expired. Ask the clinic for a new one."


def test_the_link_warns_in_the_feed_before_it_expires(
    make_invite_app: object, clock: time_machine.Coordinates
) -> None:
    app = make_invite_app(feed_link_days=40)  # type: ignore[operator]
    client = app.test_client()
    link = feed_link(client)
    assert all(
        "expires" not in str(e["SUMMARY"]) for e in parse_feed(client.get(path_of(link["url"])).data).events
    )
    clock.move_to(MONDAY_NOON + timedelta(days=15))
    (notice,) = parse_feed(client.get(path_of(link["url"])).data).events
    assert str(notice["SUMMARY"]) == "Calendar feed link expires on 11 Apr 2026: ask the clinic for a new one"
    assert notice.start.isoformat() == "2026-03-17"


def test_polling_an_unchanged_feed_answers_304_without_building_it(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON + timedelta(days=3))
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)
    client = invite_app.test_client()
    path = path_of(feed_link(client)["url"])
    before = {answer: answers(client, answer) for answer in ("built", "cached", "not_modified")}
    first = client.get(path)
    etag = first.headers["ETag"]
    assert first.headers["Server-Timing"].count("build;") == 1
    assert builds(invite_app) == 1

    for _ in range(3):
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.data == b""
        assert again.headers["ETag"] == etag
        assert "build" not in again.headers["Server-Timing"]
        assert "feed;" not in again.headers["Server-Timing"]
    assert builds(invite_app) == 1
    # Without the ETag the same body comes from this process's cache, still not rebuilt.
    cached = client.get(path)
    assert cached.data == first.data
    assert "build" not in cached.headers["Server-Timing"]
    assert builds(invite_app) == 1
    # Ops see the same on /metrics.
    assert answers(client, "built") - before["built"] == 1
    assert answers(client, "cached") - before["cached"] == 1
    assert answers(client, "not_modified") - before["not_modified"] == 3

    # gzip for clients that ask for it; either representation's ETag proves the copy is current.
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(zipped.data) == first.data
    assert zipped.headers["ETag"] == etag[:-1] + '-gz"'
    assert client.get(path, headers={"If-None-Match": zipped.headers["ETag"]}).status_code == 304

    # Anything the feed shows changes the ETag: join links, a move, a new booking, a cancellation.
    seen = {etag}
    for change in (
        lambda: deliver(invite_app, booking.links_ready(at=MONDAY_NOON)),
        lambda: deliver(invite_app, booking.reschedule(MONDAY_NOON + timedelta(days=4), at=MONDAY_NOON)),
        lambda: deliver(invite_app, Booking(start=MONDAY_NOON + timedelta(days=9)).confirmed(at=MONDAY_NOON)),
        lambda: deliver(invite_app, booking.cancel(at=MONDAY_NOON)),
    ):
        change()
        work(invite_app)
        changed = client.get(path, headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["ETag"] not in seen
        seen.add(changed.headers["ETag"])
        etag = changed.headers["ETag"]
    # A booking leaving the window changes it too, though nothing was written.
    clock.move_to(MONDAY_NOON + timedelta(days=8))
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 200


def test_feed_link_needs_a_staff_key_and_a_provider_id(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    client = invite_app.test_client()
    assert client.get("/api/v1/providers/1/calendar-feed").status_code == 401
    assert client.post("/api/v1/providers/1/calendar-feed/rotate").status_code == 401
    # No provider has id 0 (ids start at 1), or one beyond the column: nothing there.
    for bad in ("0", "abc", str(2**31)):
        assert client.get(f"/api/v1/providers/{bad}/calendar-feed", headers=STAFF).status_code == 404
    assert client.post("/api/v1/providers/0/calendar-feed/rotate", headers=STAFF).status_code == 404
    # A provider with no booking yet can subscribe before the first one: the feed is empty, not an error.
    empty = client.get(path_of(feed_link(client, provider_id=77)["url"]))
    assert empty.status_code == 200
    assert parse_feed(empty.data).events == []


def test_the_same_uid_in_feed_and_invite_across_zones(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    provider = events.ProviderRef(
        id=5, name="Dr. Aiko Tanaka", email="aiko@example.com", time_zone="Asia/Tokyo"
    )
    booking = Booking(start=MONDAY_NOON + timedelta(days=7), provider=provider)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)
    client = invite_app.test_client()
    data = client.get(path_of(feed_link(client, provider_id=5)["url"])).data
    assert b"DTSTART;TZID=Asia/Tokyo:20260309T210000" in data
    (entry,) = parse_feed(data).events
    assert entry.start.astimezone(UTC) == MONDAY_NOON + timedelta(days=7)


def test_whenever_the_feed_would_say_something_else_its_etag_changes(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    """The ETag is the provider's revision, not a hash of the rows: check it against a feed built from scratch
    after every kind of write and the passing of days."""
    runtime: Runtime = invite_app.extensions["notify"]
    signer: links.LinkSigner = invite_app.extensions["link_signer"]
    token = (
        path_of(feed_link(invite_app.test_client())["url"]).removeprefix("/calendar/").removesuffix(".ics")
    )

    def fresh() -> tuple[str, bytes]:
        with invite_app.app_context(), runtime.db.transaction() as session:
            now = utcnow()
            access = feeds.verify(session=session, signer=signer, token=token, now=now)
            state = feeds.feed_state(access=access, salt=runtime.feed_salt, now=now)
            built, rebuilt = feeds.build_feed(
                session=session,
                access=access,
                state=state,
                config=runtime.config,
                book=runtime.book,
                cache=feeds.FeedCache(),
                now=now,
            )
            assert rebuilt
            return state.etag, built.body

    a = Booking(start=MONDAY_NOON + timedelta(days=2))
    b = Booking(start=MONDAY_NOON + timedelta(days=3), kind="infusion-session")
    steps = [
        lambda: deliver(invite_app, a.confirmed(at=MONDAY_NOON)),
        lambda: work(invite_app),  # the invite takes SEQUENCE 0
        lambda: deliver(invite_app, a.links_ready(at=MONDAY_NOON)),
        lambda: work(invite_app),  # the update takes SEQUENCE 1
        lambda: deliver(invite_app, b.confirmed(at=MONDAY_NOON)),
        lambda: deliver(invite_app, b.confirmed(at=MONDAY_NOON)),  # redelivered: nothing changes
        lambda: deliver(invite_app, a.reschedule(MONDAY_NOON + timedelta(days=4), at=MONDAY_NOON)),
        lambda: work(invite_app),
        lambda: deliver(invite_app, a.links_ready(at=MONDAY_NOON)),
        lambda: deliver(invite_app, b.cancel(at=MONDAY_NOON)),
        lambda: work(invite_app),
        lambda: clock.move_to(MONDAY_NOON + timedelta(hours=6)),  # same day: same feed
        lambda: clock.move_to(MONDAY_NOON + timedelta(days=9)),  # b's cancellation is a week old
        lambda: clock.move_to(MONDAY_NOON + timedelta(days=40)),  # a ended more than 30 days ago
        lambda: clock.move_to(MONDAY_NOON + timedelta(days=70)),  # the link expires within 30 days
    ]
    etag, body = fresh()
    changes = 0
    for step in steps:
        step()
        new_etag, new_body = fresh()
        if new_body != body:
            changes += 1
            assert new_etag != etag, "the feed changed but its ETag did not"
        etag, body = new_etag, new_body
    assert changes >= 10


def test_ops_can_print_and_rotate_a_feed_link_from_the_command_line(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    runner = invite_app.test_cli_runner()
    printed = runner.invoke(args=["feed-link", "3"])
    assert printed.exit_code == 0, printed.output
    link = json.loads(printed.output.strip().splitlines()[-1])
    assert (link["provider_id"], link["token_version"]) == (3, 1)
    client = invite_app.test_client()
    assert client.get(path_of(link["url"])).status_code == 200
    rotated = json.loads(runner.invoke(args=["feed-link", "3", "--rotate"]).output.strip().splitlines()[-1])
    assert rotated["token_version"] == 2
    assert client.get(path_of(link["url"])).status_code == 404
    assert client.get(path_of(rotated["url"])).status_code == 200
    assert runner.invoke(args=["feed-link", "0"]).exit_code == 2


def test_the_migration_gives_every_existing_feed_its_own_secret(
    backend: str, make_database_url: Callable[[str, str], str], clock: time_machine.Coordinates
) -> None:
    url = make_database_url("notify", backend)
    cfg = alembic_config(service="notify", url=url)
    command.downgrade(cfg, "1400c62c5665")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO provider_feeds (provider_id, token_version, revision, created_at)"
                    " VALUES (1, 3, 5, :now), (2, 1, 0, :now)"
                ),
                {"now": MONDAY_NOON.replace(tzinfo=None) if backend == "sqlite" else MONDAY_NOON},
            )
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            secrets = conn.execute(sa.text("SELECT token_secret FROM provider_feeds")).scalars().all()
    finally:
        engine.dispose()
    assert len(secrets) == 2
    assert all(secrets)
    assert len(set(secrets)) == 2
