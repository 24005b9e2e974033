"""Escorts (issue 19): the escort's pick-up SMS, the notices of a move or cancel, the patient's nudge and the
clinic's alert, from events built here (the booking side builds the same through its outbox)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from services.notify import jobs
from services.notify.escorts import base_key, is_escort_step
from services.notify.models import CANCELLED, PLANNED, SENT, SKIPPED, BookingCopy, Message
from services.notify.senders.smtp_email import SmtpEmailSender
from tests.notify.conftest import MONDAY_NOON, deliver, messages, outbox, tick, twilio_sender, use_senders
from tests.notify.doubles import mail_server
from tests.notify.factories import ESCORT_PHONE, Booking
from tests.support.twilio_mock import PrismServer

START = MONDAY_NOON + timedelta(days=3, hours=3)  # Thursday 5 March, 15:00 UTC (10:00 in New York)
# 07:00 in New York, the clinic's zone: quiet hours (21:00-08:00) there until 13:00 UTC.
QUIET_ENDS = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
PICKUP = "Thu 5 Mar 2026, 12:00 PM EST"  # the session's end (16:00 UTC) plus an hour's recovery, in New York


def infusion(**kwargs: object) -> Booking:
    return Booking(start=START, kind="infusion-session", patient_name="Alex Quillfeather", **kwargs)  # type: ignore[arg-type]


def escort_rows(app: Flask, booking: Booking) -> dict[str, Message]:
    """The booking's escort rows by protocol step (the newest row of each)."""
    rows = [m for m in messages(app, booking_id=booking.id) if is_escort_step(m.step)]
    return {base_key(m.step): m for m in rows}


def to_escort(app: Flask) -> list[str]:
    return [m.text for m in outbox(app, "sms") if m.recipient == ESCORT_PHONE]


def test_an_escort_given_gets_one_pickup_sms_after_quiet_hours_naming_no_treatment(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion()
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    given = booking.give_escort(at=MONDAY_NOON + timedelta(minutes=1))
    assert deliver(app, given) == "handled"
    assert deliver(app, given) == "duplicate"  # the inbox: a redelivered event changes nothing
    plan = escort_rows(app, booking)
    assert set(plan) == {"escort-pickup", "escort-nudge-24h", "escort-alert-2h"}
    pickup = plan["escort-pickup"]
    assert (pickup.status, pickup.due_at, pickup.recipient) == (PLANNED, QUIET_ENDS, ESCORT_PHONE)
    assert plan["escort-nudge-24h"].due_at == START - timedelta(hours=24)

    tick(app)
    assert to_escort(app) == []  # still night in the clinic's zone
    clock.move_to(QUIET_ENDS + timedelta(seconds=1))
    tick(app)
    (text,) = to_escort(app)
    assert text.startswith("Demo Clinic: hi Sam, Alex asked you to pick them up at " + PICKUP)
    assert "200 Demo Avenue, Suite 3, Brooklyn, NY 11201" in text
    assert "Reply YES to confirm." in text
    for secret in ("Quillfeather", "Ketamine", "infusion", "Maya", "http", "session"):
        assert secret.lower() not in text.lower(), secret
    tick(app)
    assert len(to_escort(app)) == 1


def test_a_booking_event_that_carries_an_unconfirmed_escort_asks_them(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion(language="es")
    booking.give_escort(at=MONDAY_NOON)  # given while booking: the booking event carries it
    clock.move_to(QUIET_ENDS)
    deliver(app, booking.confirmed(at=QUIET_ENDS))
    tick(app)
    (text,) = to_escort(app)
    assert "Demo Clinic: hola, Sam: Alex le pide que pase a recogerle el" in text
    assert "Responda SI para confirmar." in text
    assert text.endswith("Responda STOP para darse de baja.")


def test_a_changed_escort_cancels_the_old_escorts_messages_and_asks_the_new_one(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion()
    clock.move_to(QUIET_ENDS)
    deliver(app, booking.confirmed(at=QUIET_ENDS))
    deliver(app, booking.give_escort(at=QUIET_ENDS))
    tick(app)
    first = {m.step: m for m in messages(app, booking_id=booking.id) if is_escort_step(m.step)}
    changed = booking.give_escort(
        at=QUIET_ENDS + timedelta(minutes=5), first_name="Robin", phone="+14155550188"
    )
    clock.move_to(QUIET_ENDS + timedelta(minutes=5))
    deliver(app, changed)
    tick(app)
    rows = {m.step: m for m in messages(app, booking_id=booking.id) if is_escort_step(m.step)}
    old = {step: rows[step] for step in first}
    assert {base_key(s): m.status for s, m in old.items()} == {
        "escort-pickup": SENT,
        "escort-nudge-24h": CANCELLED,
        "escort-alert-2h": CANCELLED,
    }
    assert {m.reason for m in old.values() if m.status == CANCELLED} == {"the escort was changed or removed"}
    new = [m for s, m in rows.items() if s not in first]
    assert {base_key(m.step): m.status for m in new}["escort-pickup"] == SENT
    assert "hi Robin" in outbox(app, "sms")[-1].text

    # An older change arriving late (the first escort's) does not bring the first escort back.
    with app.app_context():
        runtime = app.extensions["notify"]
        deliver(app, booking.escort_changed(at=QUIET_ENDS - timedelta(hours=1)))
        with runtime.db.transaction() as session:
            copy = session.get(BookingCopy, booking.id)
            assert copy is not None
            assert copy.snapshot["escort"]["first_name"] == "Robin"


def test_an_escort_change_before_notify_knows_the_booking_waits_for_its_event(app: Flask) -> None:
    booking = infusion()
    early = booking.give_escort(at=MONDAY_NOON)
    with app.app_context(), pytest.raises(LookupError):
        jobs.handle_booking_event(early)  # the queue retries it (EVENT_RETRY)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    assert deliver(app, early) == "handled"  # the retry: the confirmed event had planned it already
    assert len([m for m in messages(app) if base_key(m.step) == "escort-pickup"]) == 1


def test_a_cancel_tells_an_escort_who_was_asked_no_pickup_is_needed(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion()
    clock.move_to(QUIET_ENDS)
    deliver(app, booking.confirmed(at=QUIET_ENDS))
    deliver(app, booking.give_escort(at=QUIET_ENDS))
    tick(app)
    clock.move_to(QUIET_ENDS + timedelta(minutes=1))
    deliver(app, booking.cancel(at=QUIET_ENDS + timedelta(minutes=1)))
    tick(app)
    plan = escort_rows(app, booking)
    assert plan["escort-cancelled"].status == SENT
    assert plan["escort-nudge-24h"].status == CANCELLED
    text = to_escort(app)[-1]
    assert f"hi Sam, the pickup of Alex at {PICKUP} is cancelled: no pickup needed." in text


def test_a_cancel_before_the_escort_was_told_anything_sends_them_nothing(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion()
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    deliver(app, booking.give_escort(at=MONDAY_NOON))  # the pick-up SMS waits for the end of quiet hours
    deliver(app, booking.cancel(at=MONDAY_NOON + timedelta(minutes=1)))
    clock.move_to(QUIET_ENDS + timedelta(minutes=1))
    tick(app)
    assert to_escort(app) == []
    assert escort_rows(app, booking)["escort-pickup"].status == CANCELLED


def test_a_move_tells_the_escort_the_new_time_and_asks_again(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion()
    clock.move_to(QUIET_ENDS)
    deliver(app, booking.confirmed(at=QUIET_ENDS))
    deliver(app, booking.give_escort(at=QUIET_ENDS))
    tick(app)  # the pick-up SMS goes, and the escort says YES
    deliver(app, booking.confirm_escort(at=QUIET_ENDS, how="sms"))
    clock.move_to(QUIET_ENDS + timedelta(minutes=2))
    deliver(app, booking.reschedule(START + timedelta(days=1), at=QUIET_ENDS + timedelta(minutes=2)))
    tick(app)
    text = to_escort(app)[-1]
    assert "hi Sam, the pickup of Alex has moved to Fri 6 Mar 2026, 12:00 PM EST" in text
    assert "Reply YES to confirm." in text
    plan = escort_rows(app, booking)
    assert plan["escort-rescheduled"].booking_version == 2
    assert plan["escort-nudge-24h"].status == PLANNED  # a confirmation counts for the time it was given


def test_an_unconfirmed_escort_nudges_the_patient_then_alerts_the_clinic(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion()
    clock.move_to(QUIET_ENDS)
    deliver(app, booking.confirmed(at=QUIET_ENDS))
    deliver(app, booking.give_escort(at=QUIET_ENDS))
    clock.move_to(START - timedelta(hours=24))
    tick(app)
    nudge = escort_rows(app, booking)["escort-nudge-24h"]
    assert (nudge.status, nudge.recipient) == (SENT, booking.phone)
    assert "Sam has not yet confirmed your ride home" in (nudge.body or "")
    clock.move_to(START - timedelta(hours=2))
    tick(app)
    alert = escort_rows(app, booking)["escort-alert-2h"]
    assert (alert.status, alert.recipient) == (SENT, "frontdesk@clinic.example")
    (email,) = [m for m in outbox(app, "email") if m.recipient == "frontdesk@clinic.example"]
    assert email.subject.startswith("Ride home not confirmed: Alex, Thu 5 Mar 2026, 10:00 AM EST")
    assert "Please call the patient or the escort" in email.text


def test_a_confirmation_by_staff_cancels_the_nudge_and_the_alert(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion()
    clock.move_to(QUIET_ENDS)
    deliver(app, booking.confirmed(at=QUIET_ENDS))
    deliver(app, booking.give_escort(at=QUIET_ENDS))
    tick(app)
    deliver(app, booking.confirm_escort(at=QUIET_ENDS + timedelta(hours=1)))
    clock.move_to(START - timedelta(hours=1))
    tick(app)
    plan = escort_rows(app, booking)
    assert plan["escort-nudge-24h"].status == CANCELLED
    assert plan["escort-alert-2h"].reason == "the escort confirmed"
    assert [m for m in outbox(app, "email") if m.recipient == "frontdesk@clinic.example"] == []


def test_a_removed_escort_is_sent_nothing_more(app: Flask, clock: time_machine.Coordinates) -> None:
    booking = infusion()
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    deliver(app, booking.give_escort(at=MONDAY_NOON))
    deliver(app, booking.remove_escort(at=MONDAY_NOON + timedelta(minutes=1)))
    clock.move_to(START - timedelta(hours=1))
    tick(app)
    assert to_escort(app) == []
    assert {m.status for m in escort_rows(app, booking).values()} == {CANCELLED}


def test_a_clinic_without_a_staff_address_skips_the_alert(
    make_app: Callable[..., Flask], clock: time_machine.Coordinates, tmp_path: Path
) -> None:
    from shutil import copytree

    from services.notify.config import PROTOCOLS_DIR

    folder = tmp_path / "protocols"
    copytree(PROTOCOLS_DIR, folder)
    clinics = folder / "clinics.toml"
    clinics.write_text(clinics.read_text().replace('"*" = "frontdesk@clinic.example"', ""))
    app = make_app(protocols_dir_raw=str(folder))
    booking = infusion()
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    deliver(app, booking.give_escort(at=MONDAY_NOON))
    clock.move_to(START - timedelta(hours=1))
    tick(app)
    alert = escort_rows(app, booking)["escort-alert-2h"]
    assert (alert.status, alert.reason) == (
        SKIPPED,
        "no staff address for the clinic (clinics.toml [staff_emails])",
    )


@pytest.mark.slow
def test_the_pickup_goes_through_twilio_and_the_alert_through_smtp(
    make_app: Callable[..., Flask], twilio_api_mock: PrismServer, tmp_path: Path
) -> None:
    app = make_app()
    with time_machine.travel(QUIET_ENDS, tick=False) as clock, mail_server(tmp_path) as mail:
        smtp = SmtpEmailSender(host=mail.host, port=mail.port, security="none", timeout=5)
        use_senders(app, sms=twilio_sender(base_url=twilio_api_mock.url), email=smtp)
        booking = infusion()
        deliver(app, booking.confirmed(at=QUIET_ENDS))
        deliver(app, booking.give_escort(at=QUIET_ENDS))
        tick(app)
        pickup = escort_rows(app, booking)["escort-pickup"]
        assert pickup.status == SENT
        assert (pickup.provider_ref or "").startswith("SM")  # Prism answered as Twilio would
        clock.move_to(START - timedelta(hours=2))
        tick(app)
        smtp.close()
        alerts = [m for m in mail.handler.messages if m["To"] == "frontdesk@clinic.example"]
        assert len(alerts) == 1
        assert "not confirmed" in alerts[0].get_body(preferencelist=("plain",)).get_content()


def test_replan_restores_a_lost_escort_row(app: Flask, clock: time_machine.Coordinates) -> None:
    booking = infusion()
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    deliver(app, booking.give_escort(at=MONDAY_NOON))
    with app.app_context():
        runtime = app.extensions["notify"]
        with runtime.db.transaction() as session:
            lost = session.scalars(
                select(Message).where(
                    Message.booking_id == booking.id, Message.step.like("%:escort-nudge-24h")
                )
            ).one()
            session.delete(lost)
    result = app.test_cli_runner().invoke(args=["replan", str(booking.id)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["reminders_added"] == 1
    assert escort_rows(app, booking)["escort-nudge-24h"].status == PLANNED


# No escort on file although the type requires one: the patient is nudged, the clinic alerted.
MISSING_KEYS = {"escort-missing-nudge-24h", "escort-missing-alert-2h"}


def test_no_escort_on_file_nudges_the_patient_with_their_link_then_alerts_the_clinic(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion(requires_escort=True)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    plan = escort_rows(app, booking)
    assert set(plan) == MISSING_KEYS  # nothing for an escort, since there is none
    assert plan["escort-missing-nudge-24h"].due_at == START - timedelta(hours=24)
    assert plan["escort-missing-alert-2h"].due_at == START - timedelta(hours=2)

    clock.move_to(START - timedelta(hours=24))
    tick(app)
    nudge = escort_rows(app, booking)["escort-missing-nudge-24h"]
    assert (nudge.status, nudge.recipient) == (SENT, booking.phone)
    body = nudge.body or ""
    assert "you still need to add who takes you home after your" in body
    assert "booking.example.test/m/" in body  # the patient's own manage link, where the escort is added
    clock.move_to(START - timedelta(hours=2))
    tick(app)
    alert = escort_rows(app, booking)["escort-missing-alert-2h"]
    assert (alert.status, alert.recipient) == (SENT, "frontdesk@clinic.example")
    (email,) = [m for m in outbox(app, "email") if m.recipient == "frontdesk@clinic.example"]
    assert email.subject.startswith("No ride home on file: Alex, Thu 5 Mar 2026, 10:00 AM EST")
    assert "No one is on file to take Alex home" in email.text
    assert "Quillfeather" not in email.text + email.subject


def test_no_escort_nudge_speaks_spanish_and_a_type_without_escorts_plans_none(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion(requires_escort=True, language="es")
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    clock.move_to(START - timedelta(hours=24))
    tick(app)
    body = escort_rows(app, booking)["escort-missing-nudge-24h"].body or ""
    assert "aun debe indicar quien le lleva a casa tras su cita del" in body
    other = infusion()  # its type needs no escort
    deliver(app, other.confirmed(at=START - timedelta(hours=24)))
    assert escort_rows(app, other) == {}


def test_an_escort_given_cancels_the_missing_escort_nudge_once_and_a_removal_brings_it_back(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion(requires_escort=True)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    given = booking.give_escort(at=MONDAY_NOON + timedelta(minutes=1))
    assert deliver(app, given) == "handled"
    assert deliver(app, given) == "duplicate"
    rows = [m for m in messages(app, booking_id=booking.id) if is_escort_step(m.step)]
    missing = [m for m in rows if base_key(m.step) in MISSING_KEYS]
    assert {(m.status, m.reason) for m in missing} == {(CANCELLED, "an escort was given")}
    assert len(missing) == 2
    assert {base_key(m.step) for m in rows} - MISSING_KEYS == {
        "escort-pickup",
        "escort-nudge-24h",
        "escort-alert-2h",
    }
    # The escort is removed again: the patient must still be asked, and only once.
    removed = booking.remove_escort(at=MONDAY_NOON + timedelta(minutes=2))
    assert deliver(app, removed) == "handled"
    assert deliver(app, removed) == "duplicate"
    plan = escort_rows(app, booking)
    assert plan["escort-missing-nudge-24h"].status == PLANNED
    assert len([m for m in messages(app, booking_id=booking.id) if base_key(m.step) in MISSING_KEYS]) == 2
    clock.move_to(START - timedelta(hours=24))
    tick(app)
    tick(app)
    assert len([m for m in outbox(app, "sms") if "still need to add" in m.text]) == 1


def test_an_escort_given_after_the_nudge_is_due_stops_it_at_the_send(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion(requires_escort=True)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    clock.move_to(START - timedelta(hours=3))
    tick(app)  # the nudge went; the alert is still to come
    assert escort_rows(app, booking)["escort-missing-nudge-24h"].status == SENT
    deliver(app, booking.give_escort(at=START - timedelta(hours=3)))
    clock.move_to(START - timedelta(hours=2))
    tick(app)
    alert = escort_rows(app, booking)["escort-missing-alert-2h"]
    assert (alert.status, alert.reason) == (CANCELLED, "an escort was given")
    # Staff hear of the new escort's missing YES instead, not of a missing escort.
    (email,) = [m for m in outbox(app, "email") if m.recipient == "frontdesk@clinic.example"]
    assert email.subject.startswith("Ride home not confirmed")


def test_a_moved_visit_without_an_escort_is_nudged_at_its_new_time_and_a_cancelled_one_not(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion(requires_escort=True)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    deliver(app, booking.reschedule(START + timedelta(days=1), at=MONDAY_NOON + timedelta(minutes=1)))
    rows = [m for m in messages(app, booking_id=booking.id) if base_key(m.step) in MISSING_KEYS]
    assert {(m.booking_version, m.status) for m in rows} == {(1, CANCELLED), (2, PLANNED)}
    nudge = next(m for m in rows if m.booking_version == 2 and m.step.endswith("nudge-24h"))
    assert nudge.due_at == START
    deliver(app, booking.cancel(at=MONDAY_NOON + timedelta(minutes=2)))
    clock.move_to(START + timedelta(days=1))
    tick(app)
    rows = [m for m in messages(app, booking_id=booking.id) if base_key(m.step) in MISSING_KEYS]
    assert {m.status for m in rows} == {CANCELLED}
    assert not [m for m in outbox(app, "sms") if "still need to add" in m.text]


def test_a_cancel_tells_a_confirmed_escort_the_pickup_is_off(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = infusion()
    clock.move_to(QUIET_ENDS)
    deliver(app, booking.confirmed(at=QUIET_ENDS))
    deliver(app, booking.give_escort(at=QUIET_ENDS))
    tick(app)
    deliver(app, booking.confirm_escort(at=QUIET_ENDS, how="sms"))
    clock.move_to(QUIET_ENDS + timedelta(minutes=1))
    deliver(app, booking.cancel(at=QUIET_ENDS + timedelta(minutes=1)))
    tick(app)
    assert escort_rows(app, booking)["escort-cancelled"].status == SENT
    text = to_escort(app)[-1]
    assert "is cancelled: no pickup needed." in text
    for secret in ("Quillfeather", "Ketamine", "infusion", "Maya", "http", "session"):
        assert secret.lower() not in text.lower(), secret
