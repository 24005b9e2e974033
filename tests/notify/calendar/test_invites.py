"""Provider invites: REQUEST on booking, updates on reschedule and when the join links arrive, CANCEL on cancel;
one UID, SEQUENCE strictly rising for every invite that goes, whatever order events come in."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask

from services.notify import sending
from services.notify.models import CANCELLED, INVITE, INVITE_LINK, SENT, SKIPPED
from services.notify.senders import Outcome, SendResult
from services.notify.senders.console import ConsoleEmailSender
from shared import events, links
from shared.config import DEV_LINK_KEY
from shared.links import LinkSigner
from tests.notify.calendar.support import (
    PATIENT_EMAIL,
    PROVIDER_EMAIL,
    emails,
    invite_rows,
    patient_calendar,
    physical_lines,
    provider_invites,
)
from tests.notify.conftest import MONDAY_NOON, STAFF, deliver, outbox, tick, use_senders, work
from tests.notify.factories import PROVIDER, Booking

WEEK_AHEAD = MONDAY_NOON + timedelta(days=7)  # Monday 9 March 2026, 12:00 UTC = 8:00 EDT (after the change)


def test_a_booking_sends_the_provider_a_request_with_everything_a_calendar_needs(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)

    (invite,) = provider_invites(invite_app)
    assert invite.method == "REQUEST"
    event = invite.event
    assert invite.uid == f"booking-{booking.id}@booking.example.test"
    assert invite.sequence == 0
    assert event.DTSTAMP == MONDAY_NOON
    # The provider's zone, and the VTIMEZONE it needs; booked in EST for a visit in EDT.
    assert b"DTSTART;TZID=America/New_York:20260309T080000" in invite.raw
    assert b"DTEND;TZID=America/New_York:20260309T084500" in invite.raw
    assert [tz.tz_name for tz in invite.calendar.timezones] == ["America/New_York"]
    assert str(event["ORGANIZER"]) == "mailto:desk@clinic.example"
    assert event["ORGANIZER"].params["CN"] == "Demo Clinic"
    # The provider only: the patient's address stays out of the provider's calendar (docs/invites.md).
    attendee = event["ATTENDEE"]
    assert str(attendee) == f"mailto:{PROVIDER_EMAIL}"
    assert (attendee.params["PARTSTAT"], attendee.params["RSVP"]) == ("ACCEPTED", "FALSE")
    assert PATIENT_EMAIL not in invite.raw.decode()
    assert "Alex Demo" not in invite.raw.decode()
    # A neutral title: the mode and the patient's first name and initial, no visit type.
    assert str(event["SUMMARY"]) == "Video appointment: Alex D."
    assert str(event["CLASS"]) == "PRIVATE"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["LOCATION"]) == "Video call: the join link follows in an updated invitation"
    description = str(event["DESCRIPTION"])
    assert f"https://booking.example.test/api/v1/bookings/{booking.id}" in description
    # The provider's day sheet of that day: signed for day_sheet, scoped to this provider, until the day ends.
    (sheet,) = re.findall(r"day sheet\): https://booking\.example\.test/staff/day/(\S+)", description)
    claims = LinkSigner((DEV_LINK_KEY,)).verify(sheet, purpose=links.DAY_SHEET)
    assert (claims.subject, claims.extra) == ("7", {"d": "2026-03-09", "p": PROVIDER.id})
    assert claims.expires_at == datetime(2026, 3, 10, 4, tzinfo=UTC)  # midnight in New York (EDT)
    assert "staff/day" not in str(event["SUMMARY"])
    assert "/manage/" not in invite.raw.decode()  # the patient's manage link never goes to a provider
    assert "consultation" not in invite.raw.decode().lower()

    (mail,) = emails(invite_app, PROVIDER_EMAIL)
    assert mail["Subject"] == "Invitation: Video appointment: Alex D. @ Mon 9 Mar 2026, 8:00 AM EDT"
    # The outbox page shows the calendar once (the inline part and invite.ics are the same bytes).
    (row_on_page,) = [o for o in outbox(invite_app, "email") if o.recipient == PROVIDER_EMAIL]
    assert [(a.filename, a.content_type) for a in row_on_page.attachments] == [
        ("invite.ics", "application/ics")
    ]
    page = invite_app.test_client().get(f"/outbox/{row_on_page.id}")
    assert page.status_code == 200
    assert "invite.ics" in page.text
    (row,) = invite_rows(invite_app)
    assert (row.step, row.status, row.sequence, row.recipient) == (INVITE, SENT, 0, PROVIDER_EMAIL)


def test_book_reschedule_reschedule_cancel_keeps_the_uid_and_raises_the_sequence(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=WEEK_AHEAD, kind="infusion-session")
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)
    first_move = WEEK_AHEAD + timedelta(days=1, hours=2)
    deliver(invite_app, booking.reschedule(first_move, at=MONDAY_NOON))
    work(invite_app)
    second_move = WEEK_AHEAD + timedelta(days=2)
    deliver(invite_app, booking.reschedule(second_move, at=MONDAY_NOON))
    work(invite_app)
    deliver(invite_app, booking.cancel(at=MONDAY_NOON))
    work(invite_app)

    sent = provider_invites(invite_app)
    assert [i.method for i in sent] == ["REQUEST", "REQUEST", "REQUEST", "CANCEL"]
    assert [i.sequence for i in sent] == [0, 1, 2, 3]
    assert len({i.uid for i in sent}) == 1
    assert [i.event.start.astimezone(UTC) for i in sent] == [WEEK_AHEAD, first_move, second_move, second_move]
    assert str(sent[-1].event["STATUS"]) == "CANCELLED"
    # Each update links the day sheet of the visit's new day; the cancel links none.
    days = [re.findall(r"/staff/day/(\S+)", str(i.event["DESCRIPTION"])) for i in sent]
    signer = LinkSigner((DEV_LINK_KEY,))
    assert [signer.verify(t, purpose=links.DAY_SHEET).extra["d"] for (t,) in days[:3]] == [
        "2026-03-09",
        "2026-03-10",
        "2026-03-11",
    ]
    assert days[3] == []
    assert [str(m["Subject"]).strip().split(":")[0] for m in emails(invite_app, PROVIDER_EMAIL)] == [
        "Invitation",
        "Updated invitation",
        "Updated invitation",
        "Cancelled",
    ]
    # An in-clinic visit: the clinic's address, and a title that names no treatment.
    assert str(sent[0].event["LOCATION"]) == "200 Demo Avenue, Suite 3, Brooklyn, NY 11201"
    assert str(sent[0].event["SUMMARY"]) == "In-clinic appointment: Alex D."
    for invite in sent:
        assert "infusion" not in invite.raw.decode().lower()
    for mail in emails(invite_app, PROVIDER_EMAIL):
        assert "infusion" not in mail.as_string().lower()


def test_redelivered_and_out_of_order_events_never_lower_or_repeat_the_sequence(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=WEEK_AHEAD)
    confirmed = booking.confirmed(at=MONDAY_NOON)
    moved = booking.reschedule(WEEK_AHEAD + timedelta(hours=3), at=MONDAY_NOON)
    moved_again = booking.reschedule(WEEK_AHEAD + timedelta(hours=5), at=MONDAY_NOON)
    cancelled = booking.cancel(at=MONDAY_NOON)

    for payload in (confirmed, confirmed):
        deliver(invite_app, payload)
    work(invite_app)
    # Version 3 overtakes version 2; version 2 turns up later, twice, and changes nothing.
    deliver(invite_app, moved_again)
    deliver(invite_app, moved_again)
    work(invite_app)
    assert deliver(invite_app, moved) == "stale"
    assert deliver(invite_app, moved) == "duplicate"
    work(invite_app)
    deliver(invite_app, cancelled)
    deliver(invite_app, confirmed)
    work(invite_app)

    sent = provider_invites(invite_app)
    assert [(i.method, i.sequence) for i in sent] == [("REQUEST", 0), ("REQUEST", 1), ("CANCEL", 2)]
    assert sent[1].event.start.astimezone(UTC) == WEEK_AHEAD + timedelta(hours=5)
    assert {(r.booking_version, r.status) for r in invite_rows(invite_app)} == {
        (1, SENT),
        (3, SENT),
        (4, SENT),
    }


def test_changes_that_arrive_before_an_invite_goes_supersede_it(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    deliver(invite_app, booking.reschedule(WEEK_AHEAD + timedelta(hours=1), at=MONDAY_NOON))
    work(invite_app)
    (invite,) = provider_invites(invite_app)
    assert (invite.sequence, invite.event.start.astimezone(UTC)) == (0, WEEK_AHEAD + timedelta(hours=1))
    first, second = invite_rows(invite_app)
    assert (first.status, first.reason) == (CANCELLED, "the booking was moved (now version 2)")
    assert second.status == SENT

    # Booked and cancelled before anything went: the provider's calendar never had it; nothing to send.
    other = Booking(start=WEEK_AHEAD)
    deliver(invite_app, other.confirmed(at=MONDAY_NOON))
    deliver(invite_app, other.cancel(at=MONDAY_NOON))
    work(invite_app)
    rows = [r for r in invite_rows(invite_app) if r.booking_id == other.id]
    assert [(r.status, r.reason) for r in rows] == [
        (CANCELLED, "the booking was cancelled"),
        (SKIPPED, "no invite went to the provider, so there is nothing to cancel"),
    ]
    assert len(provider_invites(invite_app)) == 1


def test_join_links_after_the_first_invite_update_it_with_the_link(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)
    links = booking.links_ready(at=MONDAY_NOON)
    deliver(invite_app, links)
    deliver(invite_app, links)  # redelivered
    work(invite_app)
    first, update = provider_invites(invite_app)
    assert (update.method, update.sequence, update.uid) == ("REQUEST", 1, first.uid)
    link = f"http://127.0.0.1:8003/join/provider-{booking.id.hex[:8]}-v1"
    assert str(update.event["LOCATION"]) == link
    assert f"Join the video call: {link}" in str(update.event["DESCRIPTION"])
    assert "patient-" not in update.raw.decode()  # the provider's link, not the patient's

    # After a move the old link no longer works: the new version's invite says a link follows, then has it.
    deliver(invite_app, booking.reschedule(WEEK_AHEAD + timedelta(days=1), at=MONDAY_NOON))
    work(invite_app)
    deliver(invite_app, booking.links_ready(at=MONDAY_NOON))
    work(invite_app)
    moved, moved_link = provider_invites(invite_app)[2:]
    assert (moved.sequence, moved_link.sequence) == (2, 3)
    assert str(moved.event["LOCATION"]).startswith("Video call: the join link follows")
    assert str(moved_link.event["LOCATION"]).endswith("-v2")
    assert [r.step for r in invite_rows(invite_app)] == [INVITE, INVITE_LINK, INVITE, INVITE_LINK]


def test_join_links_before_the_first_invite_are_in_it_and_send_no_second(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    # The links arrive while the first invite waits to go.
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    deliver(invite_app, booking.links_ready(at=MONDAY_NOON))
    work(invite_app)
    (invite,) = provider_invites(invite_app)
    assert (invite.sequence, str(invite.event["LOCATION"])) == (
        0,
        f"http://127.0.0.1:8003/join/provider-{booking.id.hex[:8]}-v1",
    )
    rows = invite_rows(invite_app)
    assert rows[1].step == INVITE_LINK
    assert rows[1].status == SKIPPED
    assert rows[1].reason == f"the provider's calendar already has this from invite {rows[0].id}"

    # The links arrive before notify has even seen the booking (the consult service was quicker).
    early = Booking(start=WEEK_AHEAD)
    deliver(invite_app, early.links_ready(at=MONDAY_NOON))
    deliver(invite_app, early.confirmed(at=MONDAY_NOON))
    work(invite_app)
    (first,) = [i for i in provider_invites(invite_app) if i.uid.startswith(f"booking-{early.id}")]
    assert first.sequence == 0
    assert str(first.event["LOCATION"]).endswith(f"provider-{early.id.hex[:8]}-v1")
    assert [r.step for r in invite_rows(invite_app) if r.booking_id == early.id] == [INVITE]


class FlakyEmail(ConsoleEmailSender):
    """The console email sender, answering "try again" (an SMTP 4xx) to the first ``failures`` invites."""

    def __init__(self, app: Flask, failures: int) -> None:
        super().__init__(app.extensions["db"])
        self.failures = failures

    def send(self, message: object, *, key: str) -> SendResult:
        if self.failures and message["To"] == PROVIDER_EMAIL:  # type: ignore[index]
            self.failures -= 1
            return SendResult(Outcome.RETRY, error_code="smtp-451", detail="451 try again later")
        return super().send(message, key=key)  # type: ignore[arg-type]


def test_a_retried_invite_carries_a_new_sequence_and_a_superseded_retry_never_goes(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    use_senders(invite_app, email=FlakyEmail(invite_app, failures=2))
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)
    (row,) = invite_rows(invite_app)
    assert (row.status, row.sequence, row.reason) == ("planned", 0, "will retry: 451 try again later")
    assert provider_invites(invite_app) == []

    # The retry fails again; meanwhile the booking moves: the retry is not sent, the move is.
    clock.move_to(MONDAY_NOON + timedelta(seconds=40))
    tick(invite_app)
    assert invite_rows(invite_app)[0].sequence == 1
    deliver(invite_app, booking.reschedule(WEEK_AHEAD + timedelta(hours=2), at=MONDAY_NOON))
    work(invite_app)
    clock.move_to(MONDAY_NOON + timedelta(minutes=30))
    tick(invite_app)
    (invite,) = provider_invites(invite_app)
    # Two attempts took 0 and 1 (either might have reached the provider): the one that went carries 2.
    assert (invite.sequence, invite.event.start.astimezone(UTC)) == (2, WEEK_AHEAD + timedelta(hours=2))
    first, second = invite_rows(invite_app)
    assert (first.status, first.reason) == (CANCELLED, "the booking was moved (now version 2)")
    assert second.status == SENT


def test_an_invite_for_a_visit_already_over_is_skipped(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON - timedelta(hours=2))
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON - timedelta(days=1)))
    work(invite_app)
    (row,) = invite_rows(invite_app)
    assert (row.status, row.reason) == (SKIPPED, "too late: the visit is over")


def test_names_with_commas_semicolons_and_accents_survive_folding_and_escaping(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    patient = 'Zoë "Zo" Ødegård-Núñez, Jr.; PhD'
    provider = events.ProviderRef(
        id=1, name="Dr. Łukasz Ñúñez-Brontë, MD; FRCP", email=PROVIDER_EMAIL, time_zone="Europe/Paris"
    )
    booking = Booking(start=WEEK_AHEAD, patient_name=patient, provider=provider)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)
    (invite,) = provider_invites(invite_app)
    assert max(len(line) for line in physical_lines(invite.raw)) <= 75
    assert str(invite.event["SUMMARY"]) == "Video appointment: Zoë P."
    names = {invite.event["ATTENDEE"].params["CN"]}
    # A double quote cannot stand in a parameter value; it becomes an apostrophe, the rest stays.
    assert names == {"Dr. Łukasz Ñúñez-Brontë, MD; FRCP"}
    assert {a.params["CN"][0] for a in invite.other.vevent.attendee_list} == names
    assert b"DTSTART;TZID=Europe/Paris:20260309T130000" in invite.raw
    (mail,) = emails(invite_app, PROVIDER_EMAIL)
    assert "Patient: Zoë P." in mail.get_body(preferencelist=("plain",)).get_content()


def test_the_patients_emails_carry_their_own_calendar_file_in_step(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)
    deliver(invite_app, booking.reschedule(WEEK_AHEAD + timedelta(days=1), at=MONDAY_NOON))
    work(invite_app)
    deliver(invite_app, booking.cancel(at=MONDAY_NOON))
    work(invite_app)
    confirmation, moved, cancelled = emails(invite_app, PATIENT_EMAIL)
    files = [patient_calendar(m) for m in (confirmation, moved, cancelled)]
    provider_uid = provider_invites(invite_app)[0].uid
    assert {f.uid for f in files} == {provider_uid}  # one identity for the booking everywhere
    assert [f.sequence for f in files] == [0, 1, 2]  # the booking version - 1, as on the manage page
    assert [str(f.event["STATUS"]) for f in files] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    # The patient's zone (London) and their own manage link; reminders carry no file.
    assert b"DTSTART;TZID=Europe/London:20260309T120000" in files[0].raw
    assert "https://booking.example.test/manage/" in str(files[0].event["DESCRIPTION"])


def test_the_staff_api_shows_each_invite_and_its_sequence(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    deliver(invite_app, booking.links_ready(at=MONDAY_NOON))
    work(invite_app)
    answer = invite_app.test_client().get(f"/api/v1/bookings/{booking.id}/messages", headers=STAFF)
    assert answer.status_code == 200
    shown = {
        (m["step"], m["status"], m["sequence"]) for m in answer.json["messages"] if m["sequence"] is not None
    }
    assert shown == {(INVITE, SENT, 0)}
    link_row = next(m for m in answer.json["messages"] if m["step"] == INVITE_LINK)
    assert link_row["reason"].startswith("the provider's calendar already has this")


def test_no_invites_when_turned_off(make_app: Callable[..., Flask], clock: time_machine.Coordinates) -> None:
    app = make_app(provider_invites=False)
    booking = Booking(start=WEEK_AHEAD)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    deliver(app, booking.links_ready(at=MONDAY_NOON))
    work(app)
    assert invite_rows(app) == []
    assert emails(app, PROVIDER.email) == []


def test_no_patient_detail_in_the_logs(
    invite_app: Flask, clock: time_machine.Coordinates, log_stream: object
) -> None:
    booking = Booking(start=WEEK_AHEAD, patient_name="Quentin Privateperson")
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    deliver(invite_app, booking.links_ready(at=MONDAY_NOON))
    work(invite_app)
    deliver(invite_app, booking.cancel(at=MONDAY_NOON))
    work(invite_app)
    assert [i.method for i in provider_invites(invite_app)] == ["REQUEST", "CANCEL"]
    client = invite_app.test_client()
    link = client.get("/api/v1/providers/1/calendar-feed", headers=STAFF).json["url"]
    assert client.get(link.removeprefix("https://notify.example.test")).status_code == 200
    logged = log_stream.getvalue()  # type: ignore[attr-defined]
    assert "provider invite claimed" in logged
    for private in ("Quentin", "Privateperson", PATIENT_EMAIL, PROVIDER_EMAIL, "+14155552671", link):
        assert private not in logged


def test_two_invites_of_one_booking_in_one_batch_never_share_a_sequence(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    # Found by the property test: a retried invite and the join-link update, due together, claimed in one batch.
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    deliver(invite_app, booking.links_ready(at=MONDAY_NOON))
    ids = [r.id for r in invite_rows(invite_app)]
    with invite_app.app_context():
        sending.send_batch(invite_app.extensions["notify"], ids)
    (invite,) = provider_invites(invite_app)
    assert invite.sequence == 0
    assert str(invite.event["LOCATION"]).endswith("-v1")
    first, second = invite_rows(invite_app)
    assert (first.status, second.status) == (SENT, SKIPPED)
    assert second.reason == f"the provider's calendar already has this from invite {first.id}"

    # Different content in one batch: each gets its own SEQUENCE.
    other = Booking(start=WEEK_AHEAD)
    deliver(invite_app, other.confirmed(at=MONDAY_NOON))
    work(invite_app)
    deliver(invite_app, other.reschedule(WEEK_AHEAD + timedelta(hours=1), at=MONDAY_NOON))
    deliver(invite_app, other.links_ready(at=MONDAY_NOON))
    pending = [r.id for r in invite_rows(invite_app) if r.booking_id == other.id and r.status != SENT]
    assert len(pending) == 2
    with invite_app.app_context():
        sending.send_batch(invite_app.extensions["notify"], pending)
    sent = [i for i in provider_invites(invite_app) if i.uid.startswith(f"booking-{other.id}")]
    assert [i.sequence for i in sent] == [0, 1]
