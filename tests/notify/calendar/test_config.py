"""Invite settings and per-clinic titles: what is refused at start, what each setting changes; the migration
that gives booking copies their provider; the lock that hands out sequences."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from alembic import command
from flask import Flask

from services.notify import sending
from services.notify.calendar.invites import lock_record
from services.notify.config import PROTOCOLS_DIR, NotifyConfig
from services.notify.models import BookingCopy, CalendarInvite
from shared.config import ConfigError, check, load
from shared.db import GUID, JSONDocument, UTCDateTime, make_engine
from shared.migrate import alembic_config
from tests.notify.calendar.support import emails, invite_rows, patient_calendar, provider_invites
from tests.notify.conftest import MONDAY_NOON, deliver, work
from tests.notify.factories import Booking

WEEK_AHEAD = MONDAY_NOON + timedelta(days=7)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"NOTIFY_INVITE_STAFF_URL": "https://ehr.example/b/"}, "NOTIFY_INVITE_STAFF_URL must contain"),
        ({"NOTIFY_INVITE_ORGANIZER": "Front desk"}, "NOTIFY_INVITE_ORGANIZER must be an email address"),
        ({"NOTIFY_FEED_LINK_DAYS": "0"}, "NOTIFY_FEED_LINK_DAYS must be at least 1"),
        ({"NOTIFY_FEED_PAST_DAYS": "-1"}, "NOTIFY_FEED_PAST_DAYS must be at least 0"),
        ({"NOTIFY_PROVIDER_INVITES": "perhaps"}, "NOTIFY_PROVIDER_INVITES: not a boolean"),
    ],
)
def test_unworkable_invite_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check(load(NotifyConfig, environ=environ))


def test_organizer_and_staff_link_settings_reach_the_invite(
    make_invite_app: Callable[..., Flask], clock: time_machine.Coordinates
) -> None:
    app = make_invite_app(
        invite_organizer="Scheduling Desk <desk@clinic.example>",
        invite_staff_url="https://ehr.example/appointments/{booking_id}?view=staff",
    )
    booking = Booking(start=WEEK_AHEAD)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    (invite,) = provider_invites(app)
    assert str(invite.event["ORGANIZER"]) == "mailto:desk@clinic.example"
    assert invite.event["ORGANIZER"].params["CN"] == "Scheduling Desk"
    assert f"https://ehr.example/appointments/{booking.id}?view=staff" in str(invite.event["DESCRIPTION"])
    # The email itself still comes from SMTP_FROM.
    assert emails(app, "maya@example.com")[0]["From"] == "Demo Clinic <desk@clinic.example>"


def _protocols(tmp_path: Path, clinics: str) -> Path:
    folder = tmp_path / "protocols"
    shutil.copytree(PROTOCOLS_DIR, folder)
    (folder / "clinics.toml").write_text(clinics, encoding="utf-8")
    return folder


def test_a_clinic_can_title_its_providers_entries_its_own_way(
    make_invite_app: Callable[..., Flask], clock: time_machine.Coordinates, tmp_path: Path
) -> None:
    folder = _protocols(
        tmp_path,
        '[sms_names]\n"demo-clinic" = "Demo Clinic"\n'
        '[invite_summaries]\n"demo-clinic" = "{{ clinic.sms_name }}: {{ patient.name }} ({{ visit.mode_label }})"\n'
        '"*" = "Appointment"\n',
    )
    app = make_invite_app(protocols_dir_raw=str(folder))
    booking = Booking(start=WEEK_AHEAD)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    (invite,) = provider_invites(app)
    assert str(invite.event["SUMMARY"]) == "Demo Clinic: Alex Demo (Video appointment)"
    assert str(emails(app, "maya@example.com")[0]["Subject"]).startswith(
        "Invitation: Demo Clinic: Alex Demo (Video appointment) @"
    )


def test_a_clinic_can_list_the_patient_in_its_providers_invites(
    make_invite_app: Callable[..., Flask], clock: time_machine.Coordinates, tmp_path: Path
) -> None:
    folder = _protocols(tmp_path, '[invite_patient_attendee]\n"demo-clinic" = true\n')
    app = make_invite_app(protocols_dir_raw=str(folder))
    booking = Booking(start=WEEK_AHEAD)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    (invite,) = provider_invites(app)
    attendees = {str(a): a.params for a in invite.event["ATTENDEE"]}
    assert set(attendees) == {"mailto:maya@example.com", "mailto:alex@example.com"}
    assert attendees["mailto:alex@example.com"]["CN"] == "Alex Demo"
    assert all(p["PARTSTAT"] == "ACCEPTED" and p["RSVP"] == "FALSE" for p in attendees.values())
    # Another clinic, or none listed: the provider only (the default).
    other = _protocols(tmp_path / "other", '[invite_patient_attendee]\n"another-clinic" = true\n')
    app = make_invite_app(protocols_dir_raw=str(other))
    deliver(app, Booking(start=WEEK_AHEAD).confirmed(at=MONDAY_NOON))
    work(app)
    (invite,) = provider_invites(app)
    assert str(invite.event["ATTENDEE"]) == "mailto:maya@example.com"


@pytest.mark.parametrize(
    ("clinics", "message"),
    [
        ('[invite_summaries]\n"*" = "{{ patient.diagnosis }}"\n', r"\[invite_summaries\] '\*'"),
        ('[invite_summaries]\n"demo-clinic" = "{% if %}"\n', "'demo-clinic'"),
        ("[invite_summary]\n", "unknown tables"),
        ('[invite_summaries]\n"*" = 3\n', r"\[invite_summaries\] maps clinic slugs to text"),
        (
            '[invite_patient_attendee]\n"*" = "yes"\n',
            r"\[invite_patient_attendee\] maps clinic slugs to true",
        ),
    ],
)
def test_a_broken_title_template_stops_the_service_at_start(
    make_invite_app: Callable[..., Flask], tmp_path: Path, clinics: str, message: str
) -> None:
    folder = _protocols(tmp_path, clinics)
    with pytest.raises(ConfigError, match=message):
        make_invite_app(protocols_dir_raw=str(folder))


def test_protocol_steps_cannot_take_the_invites_keys_and_may_turn_the_patients_file_off(
    make_invite_app: Callable[..., Flask], clock: time_machine.Coordinates, tmp_path: Path
) -> None:
    folder = _protocols(tmp_path, "")
    default = folder / "default.toml"
    original = default.read_text(encoding="utf-8")
    default.write_text(original.replace('key = "confirmation"', 'key = "provider-invite"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="reserved"):
        make_invite_app(protocols_dir_raw=str(folder))
    sms_only = original.replace(
        'channels = ["sms", "email"]\nurgent = true', 'channels = ["sms"]\nurgent = true', 1
    )
    default.write_text(sms_only.replace('key = "confirmation"', 'key = "confirmation"\ncalendar = true'))
    with pytest.raises(ConfigError, match="true needs the email channel"):
        make_invite_app(protocols_dir_raw=str(folder))

    default.write_text(original.replace('key = "confirmation"', 'key = "confirmation"\ncalendar = false'))
    (folder / "video-consultation.toml").unlink()  # video consultations now follow the edited default
    app = make_invite_app(protocols_dir_raw=str(folder))
    deliver(app, Booking(start=WEEK_AHEAD, kind="video-consultation").confirmed(at=MONDAY_NOON))
    deliver(app, Booking(start=WEEK_AHEAD, kind="follow-up").confirmed(at=MONDAY_NOON))
    work(app)
    plain, with_file = emails(app, "alex@example.com")
    assert [p.get_filename() for p in plain.iter_attachments()] == []
    assert patient_calendar(with_file).sequence == 0  # the follow-up protocol keeps the default: a file


def test_the_migration_gives_existing_copies_their_provider(
    backend: str, make_database_url: Callable[[str, str], str]
) -> None:
    url = make_database_url("notify", backend)
    cfg = alembic_config(service="notify", url=url)
    command.downgrade(cfg, "f6096683419c")
    snapshot = Booking(start=WEEK_AHEAD).confirmed(at=MONDAY_NOON)["booking"]
    snapshot["provider"]["id"] = 42
    table = sa.table(
        "bookings",
        sa.column("id", GUID()),
        sa.column("version", sa.Integer),
        sa.column("status", sa.String),
        sa.column("protocol", sa.String),
        sa.column("snapshot", JSONDocument()),
        *(sa.column(n, UTCDateTime()) for n in ("start_at", "end_at", "changed_at", "updated_at")),
    )
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert().values(
                    id=uuid.UUID(snapshot["id"]),
                    version=1,
                    status="confirmed",
                    protocol="default",
                    snapshot=snapshot,
                    start_at=WEEK_AHEAD,
                    end_at=WEEK_AHEAD + timedelta(minutes=45),
                    changed_at=MONDAY_NOON,
                    updated_at=MONDAY_NOON,
                )
            )
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT provider_id FROM bookings")).scalar_one() == 42
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_claim_waits_for_the_calendar_record_held_by_another(
    invite_app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=WEEK_AHEAD)
    deliver(invite_app, booking.confirmed(at=MONDAY_NOON))
    work(invite_app)  # the record exists (SEQUENCE 0 went)
    deliver(invite_app, booking.reschedule(WEEK_AHEAD + timedelta(hours=1), at=MONDAY_NOON))
    row = invite_rows(invite_app)[-1]
    runtime: Any = invite_app.extensions["notify"]
    done = threading.Event()

    def claim_elsewhere() -> None:
        with invite_app.app_context():
            sending.send_batch(runtime, [row.id])
        done.set()

    with runtime.db.transaction() as session:
        copy = session.get(BookingCopy, booking.id)
        assert copy is not None
        record = lock_record(session, copy, uid="held")
        record.sequence = 5  # as if another claim were giving out 5 right now
        worker = threading.Thread(target=claim_elsewhere)
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()  # blocked on the record's row lock
    worker.join(timeout=30)
    assert done.is_set()
    invite = provider_invites(invite_app)[-1]
    assert invite.sequence == 6  # read after the holder committed, never a stale 0 + 1
    with runtime.db.transaction() as session:
        assert session.get(CalendarInvite, booking.id).sequence == 6  # type: ignore[union-attr]
