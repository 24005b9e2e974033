"""Signed link tokens: purpose-bound, tamper-evident, expiring, rotatable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import links

KEY_A = "key-a-0123456789abcdef0123456789abcdef"
KEY_B = "key-b-0123456789abcdef0123456789abcdef"
LATER = datetime(2031, 1, 1, tzinfo=UTC)


def test_round_trip_carries_subject_version_and_extra() -> None:
    signer = links.LinkSigner([KEY_A])
    token = signer.sign(purpose=links.JOIN, subject="b1", version=3, expires_at=LATER, extra={"p": "patient"})
    claims = signer.verify(token, purpose=links.JOIN)
    assert (claims.subject, claims.version, claims.extra) == ("b1", 3, {"p": "patient"})
    assert claims.expires_at == LATER


def test_purpose_is_part_of_the_signature() -> None:
    signer = links.LinkSigner([KEY_A])
    token = signer.sign(purpose=links.MANAGE, subject="b1", version=1, expires_at=LATER)
    for other in links.PURPOSES - {links.MANAGE}:
        with pytest.raises(links.LinkError) as caught:
            signer.verify(token, purpose=other)
        assert caught.value.reason == "invalid"


def test_expiry_is_checked_at_use() -> None:
    signer = links.LinkSigner([KEY_A])
    token = signer.sign(purpose=links.MANAGE, subject="b1", version=1, expires_at=LATER)
    assert signer.verify(token, purpose=links.MANAGE, now=LATER - timedelta(seconds=1))
    with pytest.raises(links.LinkError) as caught:
        signer.verify(token, purpose=links.MANAGE, now=LATER)
    assert caught.value.reason == "expired"
    # A genuine expired token still says what it named (its page offers the way on); a tampered one says nothing.
    assert caught.value.claims is not None
    assert (caught.value.claims.subject, caught.value.claims.version) == ("b1", 1)
    for bad in (
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        links.LinkSigner([KEY_B]).sign(purpose=links.MANAGE, subject="b1", version=1, expires_at=LATER),
    ):
        with pytest.raises(links.LinkError) as caught:
            signer.verify(bad, purpose=links.MANAGE, now=LATER)
        assert caught.value.reason == "invalid"
        assert caught.value.claims is None


def test_rotation_verifies_old_and_signs_new() -> None:
    old = links.LinkSigner([KEY_A]).sign(purpose=links.MANAGE, subject="b", version=1, expires_at=LATER)
    rotated = links.LinkSigner([KEY_A, KEY_B])
    assert rotated.verify(old, purpose=links.MANAGE).subject == "b"
    new = rotated.sign(purpose=links.MANAGE, subject="b", version=1, expires_at=LATER)
    assert links.LinkSigner([KEY_B]).verify(new, purpose=links.MANAGE).subject == "b"
    with pytest.raises(links.LinkError):
        links.LinkSigner([KEY_A]).verify(new, purpose=links.MANAGE)
    # After the old key is retired, links signed with it stop working.
    with pytest.raises(links.LinkError):
        links.LinkSigner([KEY_B]).verify(old, purpose=links.MANAGE)


def test_weak_or_missing_keys_and_unknown_purposes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        links.LinkSigner(["short"])
    with pytest.raises(ValueError, match="at least one"):
        links.LinkSigner([])
    with pytest.raises(ValueError, match="unknown link purpose"):
        links.LinkSigner([KEY_A]).sign(purpose="admin", subject="b", version=1, expires_at=LATER)


def test_join_tokens_are_per_participant() -> None:
    signer = links.LinkSigner([KEY_A])
    end = datetime(2030, 5, 1, 10, tzinfo=UTC)
    token = links.join_token(
        signer, booking_id="b", version=2, participant="provider", ends_at=end, secret="s1"
    )
    claims = signer.verify(token, purpose=links.JOIN, now=end)
    assert claims.extra == {"p": "provider", "k": "s1"}
    assert links.secret_matches(claims, "s1")
    assert not links.secret_matches(claims, "s2")
    assert not links.secret_matches(claims, None)
    assert claims.expires_at == end + links.JOIN_LINK_GRACE
    with pytest.raises(ValueError, match="participant"):
        links.join_token(signer, booking_id="b", version=2, participant="guest", ends_at=end, secret="s1")
    assert links.join_url("https://consult.example/", "t.k").endswith("/join/t.k")


def test_short_tokens_are_compact_signed_scoped_and_expiring() -> None:
    old, new = "o" * 32, "n" * 32
    subject = "6f1c2d9e-0000-4000-8000-000000000001"
    ends = datetime(2026, 3, 9, 15, tzinfo=UTC)
    code = links.sign_short([old, new], purpose=links.MANAGE, subject=subject, version=3, expires_at=ends)
    assert len(code) == 38
    claims = links.verify_short([old, new], code, purpose=links.MANAGE, now=ends)
    assert (claims.subject, claims.version) == (subject, 3)
    assert claims.expires_at == datetime(2026, 3, 10, tzinfo=UTC)  # the end of the expiry's UTC day
    assert (
        links.verify_short([new], code, purpose=links.MANAGE, now=ends).version == 3
    )  # signed by the last key
    for keys, purpose, tampered, now, reason in (
        ([old], links.MANAGE, code, ends, "invalid"),  # a key that did not sign it
        ([old, new], links.JOIN, code, ends, "invalid"),  # another purpose
        ([old, new], links.MANAGE, code[:-2] + ("AA" if code[-2:] != "AA" else "BB"), ends, "invalid"),
        ([old, new], links.MANAGE, code[:20], ends, "invalid"),
        ([old, new], links.MANAGE, "!!not base64!!", ends, "invalid"),
        ([old, new], links.MANAGE, code, datetime(2026, 3, 10, tzinfo=UTC), "expired"),
    ):
        with pytest.raises(links.LinkError) as caught:
            links.verify_short(keys, tampered, purpose=purpose, now=now)
        assert caught.value.reason == reason
        # Only a genuine (expired) code carries its claims.
        assert (caught.value.claims is not None) == (reason == "expired")
    url = links.short_manage_url(
        [new], "https://book.example.test/", booking_id=subject, version=1, ends_at=ends
    )
    assert url.startswith("https://book.example.test/m/")
    assert len(url) == len("https://book.example.test/m/") + 38
