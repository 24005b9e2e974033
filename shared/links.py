"""Signed, expiring patient links, each scoped to one subject (a booking) and one purpose.

A token carries the subject id, the subject's version when it was minted, an expiry and optional extras
(a participant, say). The purpose is the signing salt, so a manage token never verifies as a join token.
Keys rotate by appending: the last key signs, every key verifies. Feed and join tokens also carry a random
secret the owning service stores (``SECRET_CLAIM``), so a signing key and ids alone cannot make one.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from shared.timeutil import utcnow

# Every purpose a link can have; verifying with a purpose outside this set is a programming error.
MANAGE = "manage"  # a patient sees, reschedules or cancels one booking
JOIN = "join"  # a participant joins one booking's consultation room
INVITE = "invite"  # a patient books through a clinic's private invitation
FEED = "feed"  # a provider's private calendar feed
CHECKIN = "checkin"  # a patient answers one check-in (a questionnaire or a rating)
ALERT = "alert"  # on-call staff open and acknowledge one safety alert
TIMELINE = "timeline"  # a provider sees one patient's check-in timeline
PURPOSES = frozenset({MANAGE, JOIN, INVITE, FEED, CHECKIN, ALERT, TIMELINE})
# The extra claim holding a subject's stored secret (feed and join tokens).
SECRET_CLAIM = "k"  # noqa: S105 (the name of a claim, not a secret)


class LinkError(Exception):
    """A token that must not be honoured; ``reason`` is ``invalid`` or ``expired``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LinkClaims:
    """What a verified token says."""

    purpose: str
    subject: str
    version: int
    expires_at: datetime
    extra: Mapping[str, Any] = field(default_factory=dict)


class LinkSigner:
    """Mints and verifies link tokens with a rotating list of keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one link-signing key is required")
        if any(len(k) < 32 for k in keys):
            raise ValueError("link-signing keys must be at least 32 characters")
        self._keys = list(keys)

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown link purpose {purpose!r}")
        return URLSafeSerializer(self._keys, salt=f"telehealth.link.{purpose}")

    def sign(
        self,
        *,
        purpose: str,
        subject: str,
        version: int,
        expires_at: datetime,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Mint a token for ``subject`` at ``version`` that stops working at ``expires_at``."""
        payload: dict[str, Any] = {"s": subject, "v": version, "e": int(expires_at.timestamp())}
        if extra:
            payload["x"] = dict(extra)
        token: str = self._serializer(purpose).dumps(payload)
        return token

    def verify(self, token: str, *, purpose: str, now: datetime | None = None) -> LinkClaims:
        """Return the claims of ``token`` for ``purpose``; raise :class:`LinkError` if it must not be used."""
        try:
            payload = self._serializer(purpose).loads(token)
        except BadSignature as exc:
            raise LinkError("invalid") from exc
        if not isinstance(payload, dict) or not {"s", "v", "e"} <= payload.keys():
            raise LinkError("invalid")
        expires_at = datetime.fromtimestamp(int(payload["e"]), UTC)
        if (now or utcnow()) >= expires_at:
            raise LinkError("expired")
        return LinkClaims(
            purpose=purpose,
            subject=str(payload["s"]),
            version=int(payload["v"]),
            expires_at=expires_at,
            extra=payload.get("x") or {},
        )


def new_secret() -> str:
    """A random secret for a subject's tokens (stored by the service that checks them)."""
    return secrets.token_urlsafe(24)


def secret_matches(claims: LinkClaims, stored: str | None) -> bool:
    """Whether the token's secret is the subject's stored one (never, when nothing is stored)."""
    presented = claims.extra.get(SECRET_CLAIM)
    if not stored or not isinstance(presented, str):
        return False
    return hmac.compare_digest(presented.encode(), stored.encode())


def current_signer() -> LinkSigner:
    """The link signer of the current app (every service app has one, from ``LINK_SIGNING_KEYS``)."""
    signer: LinkSigner = current_app.extensions["link_signer"]
    return signer


def link_url(base_url: str, path: str, token: str) -> str:
    """Join a public base URL, a path and a token into a link."""
    return f"{base_url.rstrip('/')}/{path.strip('/')}/{quote(token, safe='')}"


# A manage link works until a week after the visit ends, so the patient can still look it up afterwards;
# changes are refused earlier by the booking rules, not by the link.
MANAGE_LINK_GRACE = timedelta(days=7)


def manage_token(signer: LinkSigner, *, booking_id: str, version: int, ends_at: datetime) -> str:
    """The token of the manage link for one booking at one version."""
    return signer.sign(
        purpose=MANAGE, subject=booking_id, version=version, expires_at=ends_at + MANAGE_LINK_GRACE
    )


def manage_url(base_url: str, token: str) -> str:
    """The patient-facing manage page for ``token`` on the booking service."""
    return link_url(base_url, "manage", token)


# A join link is usable from shortly before the visit until shortly after it; the consult service decides the
# exact window, the token only bounds it from above.
PATIENT = "patient"
PROVIDER = "provider"
PARTICIPANTS = (PATIENT, PROVIDER)


# The token's expiry is only an upper bound; the consult service opens and closes the room window inside it.
JOIN_LINK_GRACE = timedelta(hours=2)


def join_token(
    signer: LinkSigner, *, booking_id: str, version: int, participant: str, ends_at: datetime, secret: str
) -> str:
    """One participant's join token for a booking version, with its stored secret (consult mints these)."""
    if participant not in PARTICIPANTS:
        raise ValueError(f"unknown participant {participant!r}")
    return signer.sign(
        purpose=JOIN,
        subject=booking_id,
        version=version,
        expires_at=ends_at + JOIN_LINK_GRACE,
        extra={"p": participant, SECRET_CLAIM: secret},
    )


def join_url(base_url: str, token: str) -> str:
    """The join page for ``token`` on the consult service."""
    return link_url(base_url, "join", token)


def manage_join_url(base_url: str, manage_token: str) -> str:
    """The consult page that turns a patient's manage token into their current join link."""
    return link_url(base_url, "join/manage", manage_token)


def secret_token(
    signer: LinkSigner, *, purpose: str, subject: str, expires_at: datetime, secret: str, version: int = 1
) -> str:
    """A token for ``subject`` carrying its stored secret (check-in, alert and timeline links)."""
    return signer.sign(
        purpose=purpose, subject=subject, version=version, expires_at=expires_at, extra={SECRET_CLAIM: secret}
    )
