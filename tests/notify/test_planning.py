"""From booking events to a plan: what is planned, skipped on purpose, re-planned and cancelled, and when."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from flask import Flask

from services.notify.models import CANCELLED, PLANNED, SENT, SKIPPED
from tests.notify.conftest import MONDAY_NOON, by_step, deliver, dispatch, messages, outbox, tick, work
from tests.notify.factories import Booking

THURSDAY_3PM = MONDAY_NOON + timedelta(days=3, hours=3)


def test_confirmation_goes_at_once_and_reminders_wait_for_their_moment(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=THURSDAY_3PM)
    assert deliver(app, booking.confirmed(at=MONDAY_NOON)) == "handled"

    plan = by_step(app)
    assert set(plan) == {
        (step, channel)
        for step in ("confirmation", "reminder-24h", "join-1h")
        for channel in ("sms", "email")
    }
    assert plan[("confirmation", "sms")].status == SENT  # the event job sent it: no send job to wait for
    assert plan[("reminder-24h", "sms")].status == PLANNED
    assert plan[("reminder-24h", "sms")].due_at == THURSDAY_3PM - timedelta(hours=24)
    assert plan[("reminder-24h", "email")].expires_at == THURSDAY_3PM
    assert plan[("join-1h", "email")].blocked_on == "join_link"

    work(app)
    sms, email = outbox(app, "sms"), outbox(app, "email")
    assert len(sms) == len(email) == 1
    assert "Demo Clinic: your video appointment is booked for Thu 5 Mar 2026, 3:00 PM GMT" in sms[0].text
    assert "Ketamine" not in sms[0].text
    assert sms[0].text.endswith("Reply STOP to opt out.")
    assert "https://booking.example.test/m/" in sms[0].text
    assert email[0].subject == "Your video appointment on Thu 5 Mar 2026, 3:00 PM GMT is confirmed"
    assert by_step(app)[("confirmation", "email")].status == SENT

    # Nothing else is due until the day before.
    assert dispatch(app).enqueued == 0
    clock.move_to(THURSDAY_3PM - timedelta(hours=24))
    assert tick(app).enqueued == 2
    assert by_step(app)[("reminder-24h", "sms")].status == SENT
    assert len(outbox(app)) == 4


def test_join_link_goes_with_the_one_hour_reminder(app: Flask, clock: time_machine.Coordinates) -> None:
    booking = Booking(start=THURSDAY_3PM)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    deliver(app, booking.links_ready(at=MONDAY_NOON))
    assert by_step(app)[("join-1h", "sms")].blocked_on is None
    clock.move_to(THURSDAY_3PM - timedelta(minutes=59))
    tick(app)
    join = [m for m in outbox(app, "sms") if "Join here" in m.text]
    assert len(join) == 1
    assert f"/join/patient-{booking.id.hex[:8]}-v1" in join[0].text
    assert by_step(app)[("join-1h", "email")].status == SENT


def test_booking_made_thirty_minutes_ahead_still_gets_confirmation_and_join_link(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON + timedelta(minutes=30))
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    plan = by_step(app)
    assert plan[("reminder-24h", "sms")].status == SKIPPED
    assert plan[("reminder-24h", "sms")].reason == "its moment had passed when the booking was made"
    # The join step always goes: due at once, waiting only for its link.
    assert plan[("join-1h", "sms")].status == PLANNED
    assert plan[("join-1h", "sms")].due_at == MONDAY_NOON
    work(app)
    assert len(outbox(app)) == 2  # the confirmation

    clock.shift(timedelta(seconds=20))
    deliver(app, booking.links_ready(at=MONDAY_NOON))
    work(app)  # the links handler queued the join messages on the fast queue
    assert by_step(app)[("join-1h", "sms")].status == SENT
    assert any("Join here" in m.text for m in outbox(app, "sms"))


def test_infusion_steps_past_at_booking_time_are_skipped_on_purpose(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON + timedelta(hours=30), kind="infusion-session")
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    plan = by_step(app)
    assert plan[("prep-72h", "email")].status == SKIPPED
    assert plan[("prep-24h", "email")].status == PLANNED
    assert plan[("arrival-2h", "sms")].urgent
    assert plan[("after-24h", "sms")].due_at == booking.end + timedelta(hours=24)
    work(app)
    (email,) = outbox(app, "email")
    assert [a.filename for a in email.attachments] == ["preparation-checklist.txt", "appointment.ics"]
    assert b"support person to drive you home" in email.attachments[0].data
    assert "no alcohol and no recreational drugs" in email.text
    (sms,) = outbox(app, "sms")
    for word in ("infusion", "ketamine", "alcohol", "drug", "medication"):
        assert word not in sms.text.lower()


def test_reschedule_cancels_pending_reminders_and_plans_the_new_time(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=THURSDAY_3PM)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    clock.shift(timedelta(hours=1))
    new_start = THURSDAY_3PM + timedelta(days=1)
    deliver(app, booking.reschedule(new_start, at=MONDAY_NOON + timedelta(hours=1)))
    work(app)

    old = by_step(app, booking_version=1)
    assert old[("confirmation", "sms")].status == SENT
    assert old[("reminder-24h", "sms")].status == CANCELLED
    assert old[("reminder-24h", "sms")].reason == "the booking was moved (now version 2)"
    new = by_step(app, booking_version=2)
    assert set(new) == {(s, c) for s in ("rescheduled", "reminder-24h", "join-1h") for c in ("sms", "email")}
    assert new[("rescheduled", "sms")].status == SENT
    assert new[("reminder-24h", "sms")].due_at == new_start - timedelta(hours=24)
    notice = outbox(app, "sms")[-1].text
    assert "has moved to Fri 6 Mar 2026, 3:00 PM GMT" in notice
    email = outbox(app, "email")[-1]
    assert "Was:      Thu 5 Mar 2026, 3:00 PM GMT" in email.text

    # The old time passes quietly; the new one gets its reminder.
    clock.move_to(THURSDAY_3PM - timedelta(hours=24))
    assert tick(app).enqueued == 0
    clock.move_to(new_start - timedelta(hours=24))
    assert tick(app).enqueued == 2
    assert len([m for m in outbox(app, "sms") if "tomorrow" in m.text]) == 1


def test_cancel_cancels_every_pending_message_and_sends_a_notice(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=THURSDAY_3PM, kind="infusion-session")
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    deliver(app, booking.cancel(at=MONDAY_NOON, by="staff"))
    work(app)
    pending = [m for m in messages(app, booking_version=1) if m.status not in (SENT, SKIPPED)]
    assert pending
    assert all(m.status == CANCELLED for m in pending)
    assert {m.reason for m in pending} == {"the booking was cancelled"}
    notice = by_step(app, booking_version=2)
    assert notice[("cancelled", "sms")].status == SENT
    assert "is cancelled by the clinic" in outbox(app, "email")[-1].text

    clock.move_to(booking.end + timedelta(days=2))
    assert tick(app).enqueued == 0
    assert len(outbox(app)) == 4  # confirmation and cancellation, by SMS and email


def test_events_out_of_order_and_duplicates_change_nothing(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=THURSDAY_3PM)
    confirmed = booking.confirmed(at=MONDAY_NOON)
    rescheduled = booking.reschedule(THURSDAY_3PM + timedelta(hours=2), at=MONDAY_NOON)
    assert deliver(app, rescheduled) == "handled"
    assert deliver(app, confirmed) == "stale"
    assert deliver(app, rescheduled) == "duplicate"
    assert {m.booking_version for m in messages(app)} == {2}
    assert len(messages(app)) == 6


def test_sms_without_consent_or_number_is_recorded_as_skipped(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=THURSDAY_3PM, sms_consent=False).confirmed(at=MONDAY_NOON))
    deliver(app, Booking(start=THURSDAY_3PM, phone=None, sms_consent=False).confirmed(at=MONDAY_NOON))
    sms = messages(app, channel="sms")
    assert {m.status for m in sms} == {SKIPPED}
    assert {m.reason for m in sms} == {
        "the patient did not consent to SMS",
        "the patient gave no mobile number",
    }
    work(app)
    assert len(outbox(app, "email")) == 2
    assert outbox(app, "sms") == []


def test_quiet_hours_delay_non_urgent_sms_only(app: Flask, clock: time_machine.Coordinates) -> None:
    # 22:30 in London the day before a 22:30 visit: the 24 h SMS waits until 08:00, its email does not.
    start = MONDAY_NOON + timedelta(days=2, hours=10, minutes=30)
    deliver(app, Booking(start=start).confirmed(at=MONDAY_NOON))
    plan = by_step(app)
    assert plan[("reminder-24h", "email")].due_at == start - timedelta(hours=24)
    assert plan[("reminder-24h", "sms")].due_at == MONDAY_NOON.replace(hour=8) + timedelta(days=2)
    # The join link (urgent) goes at 21:30, quiet hours or not.
    assert plan[("join-1h", "sms")].due_at == start - timedelta(hours=1)


def test_quiet_hours_do_not_hold_a_message_past_the_visit(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    # A visit at 07:30 London: a cancellation at 23:00 cannot wait until 08:00.
    clock.move_to(MONDAY_NOON + timedelta(hours=11))
    booking = Booking(start=MONDAY_NOON + timedelta(hours=19, minutes=30))
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    deliver(app, booking.cancel(at=MONDAY_NOON + timedelta(hours=11)))
    work(app)
    assert by_step(app, booking_version=2)[("cancelled", "sms")].status == SENT


def test_a_message_queued_before_a_cancel_is_not_sent_after_it(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=THURSDAY_3PM)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    clock.move_to(THURSDAY_3PM - timedelta(hours=24))
    assert dispatch(app).enqueued == 2  # the 24 h reminders are on the queue ...
    deliver(app, booking.cancel(at=THURSDAY_3PM - timedelta(hours=24)))  # ... when the patient cancels
    work(app)
    reminders = by_step(app, booking_version=1)
    assert reminders[("reminder-24h", "sms")].status == CANCELLED
    assert [m for m in outbox(app, "sms") if "tomorrow" in m.text] == []


def test_unknown_protocol_falls_back_to_the_default(app: Flask, clock: time_machine.Coordinates) -> None:
    booking = Booking(start=THURSDAY_3PM, kind="infusion-session")
    payload = booking.confirmed(at=MONDAY_NOON)
    payload["booking"]["appointment_type"]["reminder_protocol"] = "made-up"
    deliver(app, payload)
    plan = by_step(app)
    assert {m.protocol for m in plan.values()} == {"default"}
    assert ("join-1h", "sms") not in plan  # the default's join step is for video visits only
    assert ("reminder-24h", "sms") in plan
