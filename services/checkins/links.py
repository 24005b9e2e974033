"""The check-in service's signed links: a patient's check-in, on-call staff's alert, a provider's timeline."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.checkins.models import Alert, Checkin, Patient
from shared.links import ALERT, CHECKIN, TIMELINE, LinkSigner, link_url, secret_token

# An alert link works for a week: the acknowledgement trail stays reachable from the message that raised it.
ALERT_LINK_LIFETIME = timedelta(days=7)
# A provider's timeline link (staff hand it out) works for 30 days.
TIMELINE_LINK_LIFETIME = timedelta(days=30)


def checkin_url(signer: LinkSigner, base_url: str, checkin: Checkin) -> str:
    """The patient's link to one check-in, working until the check-in expires."""
    token = secret_token(
        signer,
        purpose=CHECKIN,
        subject=str(checkin.id),
        expires_at=checkin.expires_at,
        secret=checkin.link_secret,
    )
    return link_url(base_url, "c", token)


def alert_url(signer: LinkSigner, base_url: str, alert: Alert) -> str:
    """On-call staff's link to one alert and its acknowledgement."""
    token = secret_token(
        signer,
        purpose=ALERT,
        subject=str(alert.id),
        expires_at=alert.created_at + ALERT_LINK_LIFETIME,
        secret=alert.link_secret,
    )
    return link_url(base_url, "alerts", token)


def timeline_url(signer: LinkSigner, base_url: str, patient: Patient, now: datetime) -> str:
    """A provider's link to one patient's timeline."""
    token = secret_token(
        signer,
        purpose=TIMELINE,
        subject=str(patient.id),
        expires_at=now + TIMELINE_LINK_LIFETIME,
        secret=patient.timeline_secret,
    )
    return link_url(base_url, "timeline", token)
