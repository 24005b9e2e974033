"""Invite and feed fixtures: the notify service's (a fresh migrated database per test on SQLite and
PostgreSQL, real Redis, a frozen clock), with provider invites on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask


@pytest.fixture
def invite_app(make_app: Callable[..., Flask]) -> Flask:
    """A notify app that sends provider invites (console senders)."""
    return make_app(provider_invites=True, smtp_from="Demo Clinic <desk@clinic.example>")


@pytest.fixture
def make_invite_app(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """``make_invite_app(**settings)``: a notify app with provider invites on and these settings."""

    def make(**overrides: Any) -> Flask:
        values: dict[str, Any] = {"provider_invites": True, "smtp_from": "Demo Clinic <desk@clinic.example>"}
        values.update(overrides)
        return make_app(**values)

    return make
