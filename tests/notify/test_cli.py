"""``flask --app services.notify protocols`` and ``dispatcher --once``."""

from __future__ import annotations

import json
from datetime import timedelta

import time_machine
from flask import Flask

from tests.notify.conftest import MONDAY_NOON, deliver, work
from tests.notify.factories import Booking


def test_protocols_command_renders_every_step(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["protocols", "--show"])
    assert result.exit_code == 0, result.output
    assert "infusion-session v6  prep-72h       sms/in_person ok" in result.output
    assert "Demo Clinic: your appointment is in 3 days" in result.output


def test_dispatcher_once_reports_what_it_did(app: Flask, clock: time_machine.Coordinates) -> None:
    deliver(app, Booking(start=MONDAY_NOON + timedelta(days=2)).confirmed(at=MONDAY_NOON))
    work(app)
    clock.move_to(MONDAY_NOON + timedelta(days=1))
    result = app.test_cli_runner().invoke(args=["dispatcher", "--once"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {
        "requeued": 0,
        "expired": 0,
        "enqueued": 2,
        "jobs": 1,
        "reconciling": 0,
    }
