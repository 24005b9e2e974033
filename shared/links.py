"""Signed, expiring patient links, each scoped to one subject (a booking) and one purpose."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import uuid
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
DAY_CHECK = "day_check"  # a patient answers the day-before safety checklist of one booking version
DAY_SHEET = "day_sheet"  # staff see who is ready on one clinic's day (optionally one provider's)
COURSE = "course"  # a patient sees one treatment course and cancels some or all of its sessions
PURPOSES = frozenset({MANAGE, JOIN, INVITE, FEED, CHECKIN, ALERT, TIMELINE, DAY_CHECK, DAY_SHEET, COURSE})
# The extra claim holding a subject's stored secret (feed and join tokens).
SECRET_CLAIM = "k"  # noqa: S105 (the name of a claim, not a secret)


class LinkError(Exception):
    """A token that must not be honoured; ``reason`` is ``invalid`` or ``expired``.

    An expired token's signature was checked, so its ``claims`` say what it named (a page offers the way on);
    an invalid one carries none.
    """

    def __init__(self, reason: str, claims: LinkClaims | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claims = claims


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

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys, the signing one last (for the compact tokens of :func:`sign_short`)."""
        return tuple(self._keys)

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
        claims = LinkClaims(
            purpose=purpose,
            subject=str(payload["s"]),
            version=int(payload["v"]),
            expires_at=datetime.fromtimestamp(int(payload["e"]), UTC),
            extra=payload.get("x") or {},
        )
        if (now or utcnow()) >= claims.expires_at:
            raise LinkError("expired", claims)
        return claims


# A short token (issue 17: an SMS fits in one or two segments): a UUID subject, its version, the expiry day
# and a 64-bit HMAC in 28 bytes, 38 URL-safe characters (an itsdangerous token of the same claims: ~110).
_SHORT = struct.Struct(">16sHH")
_SHORT_MAC = 8
_DAY = 86400


def _short_mac(key: str, purpose: str, body: bytes) -> bytes:
    return hmac.new(key.encode(), f"telehealth.short.{purpose}.".encode() + body, hashlib.sha256).digest()[
        :_SHORT_MAC
    ]


def sign_short(keys: Sequence[str], *, purpose: str, subject: str, version: int, expires_at: datetime) -> str:
    """A compact token for a UUID ``subject``; it expires at the end of ``expires_at``'s UTC day."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    day = -(-int(expires_at.timestamp()) // _DAY)
    body = _SHORT.pack(uuid.UUID(subject).bytes, version, day)
    return base64.urlsafe_b64encode(body + _short_mac(keys[-1], purpose, body)).rstrip(b"=").decode()


def verify_short(keys: Sequence[str], code: str, *, purpose: str, now: datetime | None = None) -> LinkClaims:
    """The claims of a compact token for ``purpose``; raise :class:`LinkError` if it must not be used."""
    try:
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    except (ValueError, TypeError) as exc:
        raise LinkError("invalid") from exc
    body, mac = raw[: _SHORT.size], raw[_SHORT.size :]
    if len(raw) != _SHORT.size + _SHORT_MAC or not any(
        hmac.compare_digest(mac, _short_mac(key, purpose, body)) for key in keys
    ):
        raise LinkError("invalid")
    subject, version, day = _SHORT.unpack(body)
    claims = LinkClaims(
        purpose=purpose,
        subject=str(uuid.UUID(bytes=subject)),
        version=version,
        expires_at=datetime.fromtimestamp(day * _DAY, UTC),
    )
    if (now or utcnow()) >= claims.expires_at:
        raise LinkError("expired", claims)
    return claims


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


def short_manage_url(
    keys: Sequence[str], base_url: str, *, booking_id: str, version: int, ends_at: datetime
) -> str:
    """The manage link for SMS: ``/m/<short token>`` on the booking host, which leads to the manage page."""
    code = sign_short(
        keys, purpose=MANAGE, subject=booking_id, version=version, expires_at=ends_at + MANAGE_LINK_GRACE
    )
    return link_url(base_url, "m", code)


def short_day_check_url(
    keys: Sequence[str], base_url: str, *, booking_id: str, version: int, ends_at: datetime
) -> str:
    """The day-before safety check of one booking version: ``/d/<short token>`` on the booking host."""
    code = sign_short(keys, purpose=DAY_CHECK, subject=booking_id, version=version, expires_at=ends_at)
    return link_url(base_url, "d", code)


def day_sheet_token(
    signer: LinkSigner, *, clinic_id: int, day: str, provider_id: int | None, expires_at: datetime
) -> str:
    """Staff's token for one clinic's day sheet (``day`` as ``YYYY-MM-DD``; one provider's, if given)."""
    return signer.sign(
        purpose=DAY_SHEET,
        subject=str(clinic_id),
        version=1,
        expires_at=expires_at,
        extra={"d": day, "p": provider_id},
    )


def day_sheet_url(base_url: str, token: str) -> str:
    """Staff's day sheet for ``token`` on the booking service."""
    return link_url(base_url, "staff/day", token)


def manage_url(base_url: str, token: str) -> str:
    """The patient-facing manage page for ``token`` on the booking service."""
    return link_url(base_url, "manage", token)


# The course page shows the course as it is now, so one link serves every change: its version stays 1.
COURSE_LINK_VERSION = 1


def course_token(signer: LinkSigner, *, course_id: str, ends_at: datetime) -> str:
    """The token of a course's page; it works until the manage grace after its last session ends."""
    return signer.sign(
        purpose=COURSE, subject=course_id, version=COURSE_LINK_VERSION, expires_at=ends_at + MANAGE_LINK_GRACE
    )


def course_url(base_url: str, token: str) -> str:
    """The patient-facing course page for ``token`` on the booking service."""
    return link_url(base_url, "course", token)


def short_course_url(keys: Sequence[str], base_url: str, *, course_id: str, ends_at: datetime) -> str:
    """The course link for SMS: ``/c/<short token>`` on the booking host, which leads to the course page."""
    code = sign_short(
        keys,
        purpose=COURSE,
        subject=course_id,
        version=COURSE_LINK_VERSION,
        expires_at=ends_at + MANAGE_LINK_GRACE,
    )
    return link_url(base_url, "c", code)


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
