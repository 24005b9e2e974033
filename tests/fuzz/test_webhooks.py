"""Twilio's webhooks (notify's inbound SMS and message status callbacks), fuzzed on both engines with requests
signed as Twilio signs them: real-looking fields mixed with missing, repeated, huge and hostile ones, keywords,
ratings and the numbers of known and unknown people. A webhook never answers 5xx; a refusal is problem+json and
changes nothing; an inbound answer is TwiML that names no patient and shows no phone number; a request not
signed with the auth token for the URL Twilio called is refused and changes nothing; no name or number is
logged. The parts shared with the page fuzz are in tests/fuzz/pages.py; why and how: docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from xml.etree import ElementTree

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from twilio.request_validator import HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from services.notify import create_app
from services.notify.models import Base as NotifyBase
from services.notify.models import Message, SmsReply
from services.notify.webhooks import INBOUND_PATH, STATUS_PATH
from shared.timeutil import utcnow
from tests.fuzz.pages import CONTENT_TYPES, encode, fingerprint, mutate
from tests.notify.conftest import AUTH_TOKEN, MONDAY_NOON, deliver, notify_config, tick
from tests.notify.factories import ESCORT_PHONE, Booking
from tests.notify.replies.test_ratings import ask, booked
from tests.notify.replies.test_replies import twilio_inbound
from tests.support.servers import RedisServer

# Signed requests per webhook: each is two full-table digests and one request, about 15 s per engine for both.
EXAMPLES = 300
PUBLIC = "https://notify.example.test"
QUIET_ENDS = MONDAY_NOON + timedelta(hours=1)  # 08:00 in New York, the clinic's zone: the escort's SMS go
START = MONDAY_NOON + timedelta(days=3, hours=3)  # Thursday 5 March, 15:00 UTC
HELP_REPLY = "Demo Clinic reminders. Call +17185550100. Reply STOP to opt out."
PHONE, ESCORTED_PHONE, RATED_PHONE = "+14155552671", "+14155552673", "+14155552674"
# Each patient's name; the escort is told the first name of the patient they collect, and no one else is.
NAMES = {"Alex Quillfeather": None, "Robin Thistlewood": ESCORT_PHONE, "Kit Marchbank": None}
KNOWN_PHONES = (PHONE, ESCORT_PHONE, ESCORTED_PHONE, RATED_PHONE)
SIDS = ("SM" + "a" * 32, "SM" + "b" * 32, "SM" + "c" * 32)  # drawn again and again: Twilio's retries
# Hypothesis draws the first ones most: the replies that reach a booking, then ratings, then the carrier's words.
KEYWORDS = (
    *("C", "YES", " c ", "Y", "CONFIRM", "Sí 👍", "CONFIRMAR", "R", "CHANGE", "cambiar", "C 5", "R 6", "C5"),
    *("7/10!", " 10. ", "\u0661\u0660", "\uff11\uff10", "00", "010", "-1", "11", "3.5", "+1", "½"),
    *("START", "yes!", "UNSTOP", "OPTIN", "HELP", "info", "C 32", "YES 6", "STOP please", "Can I come at 4?"),
    *("STOP", "stop", " Stop. ", "STOPALL", "UNSUBSCRIBE", "cancel", "End", "QUIT", "REVOKE", "OPTOUT"),
)


def _weighted(*choices: tuple[int, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """One of the strategies, each drawn in proportion to its weight."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


BODIES = _weighted(
    (6, st.sampled_from(KEYWORDS)),
    (2, st.integers(-2, 12).map(str)),
    (1, st.text(max_size=80)),
    (1, st.just("x" * 2000)),
)
# Twilio's statuses, some in other cases, one Twilio never sends, and some that lower-case longer.
STATUSES = st.one_of(
    st.sampled_from(
        (
            *("accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed"),
            *("canceled", "read", "receiving", "received", "partially_delivered", "SENT", "Delivered"),
            "lost",
        )
    ),
    st.sampled_from(("İ" * 32, "ß" * 32, "ﬃ" * 32)),
    st.text(max_size=40),
)
ERROR_CODES = st.one_of(
    st.sampled_from(("21610", "30003", "30005", "30007", "21211", "0", "-1", "99999999999999999999")),
    st.text(max_size=40),
)
OPT_OUT_TYPES = st.sampled_from(("STOP", "START", "HELP", "stop", "ARRET", ""))
# What signed replies must reach, so the fuzz gets past the checks to the code behind them.
REACHED = {
    "asked-which",
    "confirmed",
    "escort-confirmed",
    "rating-noted",
    "stop",
    "start",
    "help",
    "opted-out",
    "kept",
}
# How a request is signed: mostly as Twilio signs it; else not at all, or in one of the ways a forger or a
# misconfigured proxy would.
SIGNINGS = ("twilio",) * 6 + ("none", "wrong-token", "wrong-url", "tampered", "sha256")


@dataclasses.dataclass
class World:
    """The notify app with patients asked to reply (a reminder, an escort's pick-up, a rating), its messages."""

    app: Flask
    messages: list[tuple[int, str | None]]  # (id, provider_ref) of every message
    people: Iterator[str] = dataclasses.field(default_factory=lambda: itertools.cycle(KNOWN_PHONES))
    # Each message in turn gets a callback (and one no message of ours has): sent, planned, email.
    callbacks: Iterator[tuple[int, str | None]] = dataclasses.field(init=False)
    fresh: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.callbacks = itertools.cycle([*self.messages, (999_999, None)])

    def phones(self) -> st.SearchStrategy[str]:
        """Mostly the numbers of the people asked to reply (each in turn: Hypothesis favours the first)."""
        return _weighted(
            (6, st.builds(lambda: next(self.people))),
            (1, st.sampled_from(("4155552671", "+1 415 555 2671", "whatsapp:+14155552671", "+447400123456"))),
            (1, st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)),
            (1, st.text(max_size=40)),
        )

    def sids(self) -> st.SearchStrategy[str]:
        """Mostly a new message's SID; else one Twilio retries, or not a SID."""
        return _weighted(
            (4, st.builds(lambda: f"SM{next(self.fresh):032x}")),
            (1, st.sampled_from(SIDS)),
            (1, st.text(max_size=70)),
        )


def _world(database_url: str, redis_url: str, clock: time_machine.Coordinates) -> World:
    config = notify_config(
        database_url, redis_url, log_level="INFO", log_format="json", sms_help_reply=HELP_REPLY
    )
    app = create_app(config)
    app.config["TESTING"] = True
    clock.move_to(QUIET_ENDS)
    # Two visits of one patient (their reminders ask "which?"), and an infusion whose escort is asked YES.
    first = Booking(start=START, patient_name="Alex Quillfeather", phone=PHONE)
    second = Booking(start=START + timedelta(hours=1), patient_name="Alex Quillfeather", phone=PHONE)
    second.patient_id = first.patient_id
    escorted = Booking(
        start=START, kind="infusion-session", patient_name="Robin Thistlewood", phone=ESCORTED_PHONE
    )
    for booking in (first, second, escorted):
        deliver(app, booking.confirmed(at=QUIET_ENDS))
    deliver(app, escorted.give_escort(at=QUIET_ENDS))
    tick(app)
    # The day before: both reminders have asked C or R, and a rating has just been asked.
    clock.move_to(second.start - timedelta(hours=23))
    rated = booked(app, patient_name="Kit Marchbank", phone=RATED_PHONE)
    ask(app, rated, "mood", expires_at=utcnow() + timedelta(hours=36))
    tick(app)
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        messages = [(m.id, m.provider_ref) for m in session.scalars(select(Message).order_by(Message.id))]
    return World(app, messages)


def _received(app: Flask, path: str, body: bytes, content_type: str) -> MultiDict[str, str]:
    """The form the app reads from ``body``: what Twilio signed, as it reaches the view."""
    environ = EnvironBuilder(path=path, method="POST", data=body, content_type=content_type).get_environ()
    return app.request_class(environ).form


def _sign(how: str, url: str, form: MultiDict[str, str]) -> dict[str, str]:
    """The signature headers of a request to ``url`` (as Twilio called it) with ``form``, signed ``how``."""
    if how == "none":
        return {}
    token, params, algorithm = AUTH_TOKEN, form, None
    if how == "wrong-token":
        token = "not-the-" + AUTH_TOKEN
    elif how == "wrong-url":
        url = url.replace(PUBLIC, "http://127.0.0.1:8002")  # the app's own address, not its public one
    elif how == "tampered":
        params = MultiDict([*form.items(multi=True), ("Body", "signed, then changed")])
    elif how == "sha256":
        algorithm = HMAC_SHA256  # a SharedKey signature: notify checks the auth token's only
    headers = {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params, algorithm)}
    if algorithm:
        headers[SIGNATURE_SETTINGS_HEADER] = f"key=webhooks_sharedkey_1,algorithm={algorithm}"
    return headers


def _inbound_form(data: st.DataObject, world: World) -> list[tuple[str, str]]:
    form = twilio_inbound(data.draw(BODIES), sid=data.draw(world.sids()), phone=data.draw(world.phones()))
    if data.draw(st.booleans()):
        form["OptOutType"] = data.draw(OPT_OUT_TYPES)
    return list(form.items())


def _status_form(data: st.DataObject, world: World) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A status callback's query (``m``, our message id) and form, about a message of ours or not."""
    message_id, ref = next(world.callbacks)
    # Both drawn whatever the message (the draws must not depend on state outside Hypothesis).
    same, other = data.draw(st.integers(0, 3)), data.draw(world.sids())
    sid = ref if ref and same else other
    status = data.draw(STATUSES)
    form = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": data.draw(world.phones()),
        "MessagingServiceSid": "MG" + "0" * 32,
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+17185550199",
        "ApiVersion": "2010-04-01",
    }
    if data.draw(st.booleans()):
        form["ErrorCode"] = data.draw(ERROR_CODES)
    query = [] if data.draw(st.integers(0, 5)) == 0 else [("m", str(message_id))]
    return query, list(form.items())


def _judge(answer: Response, path: str, how: str, sender: str, changed: Callable[[], bool]) -> str | None:
    """What is wrong with ``answer`` to a webhook request signed ``how`` from ``sender``, or None."""
    status = answer.status_code
    if status >= 500:
        return f"{status}"
    if how != "twilio" and status < 400:
        return f"{status} to a request signed {how}"
    if status >= 400:
        if answer.mimetype != "application/problem+json":
            return f"{status} {answer.mimetype}, not problem+json"
        if how == "twilio" and status == 403:
            return "403 to a request Twilio signed"
        return f"{status} changed the database" if changed() else None
    if path == STATUS_PATH:
        return None if status == 204 and not answer.data else f"{status} {answer.data[:100]!r}, not a 204"
    if status != 200 or answer.mimetype != "application/xml":
        return f"{status} {answer.mimetype}, not TwiML"
    return _private(answer.get_data(as_text=True), sender)


def _private(twiml: str, sender: str) -> str | None:
    """What a TwiML answer to ``sender`` shows that it must not: broken XML, a name or a phone number."""
    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError as exc:
        return f"TwiML that is not XML ({exc}): {twiml[:200]!r}"
    if root.tag != "Response" or any(child.tag != "Message" for child in root):
        return f"not a TwiML messaging response: {twiml[:200]!r}"
    text = " ".join(m.text or "" for m in root)
    digits = re.sub(r"\D", "", text)
    shown = [p for p in KNOWN_PHONES if p in text or p.removeprefix("+1") in digits]
    if sum(c.isdigit() for c in sender) >= 7 and sender in text:
        shown.append(sender)
    for name, escort in NAMES.items():
        first, last = name.split()
        shown += [n for n in (last, *([first] if sender != escort else [])) if n in text]
    return f"the answer shows {shown}: {text!r}" if shown else None


def _fuzz(world: World, path: str, failures: list[str], statuses: Counter[str]) -> None:
    client: FlaskClient = world.app.test_client()
    keys = sorted(set(twilio_inbound("x")) | {"ErrorCode", "MessageStatus", "OptOutType", "m"})

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=["generate"],
    )
    @given(st.data())
    def probe(data: st.DataObject) -> None:
        query, form = ([], _inbound_form(data, world)) if path == INBOUND_PATH else _status_form(data, world)
        query_string = encode(mutate(data, query, keys))
        url = f"{path}?{query_string}" if query_string else path
        body = encode(mutate(data, form, keys)).encode()
        content_type = data.draw(CONTENT_TYPES)
        received = _received(world.app, url, body, content_type)
        how = data.draw(st.sampled_from(SIGNINGS))
        before = fingerprint(world.app, NotifyBase.metadata)
        answer = client.post(
            url, data=body, content_type=content_type, headers=_sign(how, PUBLIC + url, received)
        )
        statuses[f"{how} {answer.status_code}"] += 1
        problem = _judge(
            answer,
            path,
            how,
            received.get("From", ""),
            changed=lambda: fingerprint(world.app, NotifyBase.metadata) != before,
        )
        if problem:
            failures.append(f"{how} {url[:200]!r} body={body[:300]!r}: {problem}")

    probe()


@contextlib.contextmanager
def _written() -> Iterator[io.StringIO]:
    """What the app's own log handler (JSON lines, as in production) writes meanwhile."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_suite_handler", False))
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(old)


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(MONDAY_NOON, tick=False) as traveller:
        yield traveller


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_no_webhook_answers_a_signed_hostile_request_with_a_server_error_or_a_leak(
    backend: str,
    make_database_url: Callable[[str, str], str],
    redis_server: RedisServer,
    clock: time_machine.Coordinates,
) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    world = _world(make_database_url("notify", backend), redis_server.url, clock)
    try:
        webhooks = {
            r.rule for r in world.app.url_map.iter_rules() if r.endpoint.startswith("twilio_webhooks.")
        }
        assert webhooks == {INBOUND_PATH, STATUS_PATH}, f"a webhook this test does not fuzz: {webhooks}"
        failures: list[str] = []
        report: list[str] = []
        with _written() as written:
            for path in sorted(webhooks):
                statuses: Counter[str] = Counter()
                _fuzz(world, path, failures, statuses)
                report.append(f"{path}: {dict(sorted(statuses.items()))}")
        logged = written.getvalue()
        assert "inbound sms" in logged, "the fuzz's log lines were not captured"
        secrets = [*KNOWN_PHONES, *(p.removeprefix("+1") for p in KNOWN_PHONES), *NAMES]
        secrets += [name.split()[1] for name in NAMES]
        assert not [s for s in secrets if s in logged], "the webhooks logged a name or a number"
        with world.app.app_context(), world.app.extensions["notify"].db.transaction() as session:
            outcomes = Counter(session.scalars(select(SmsReply.outcome)))
        report.append(f"inbound outcomes: {dict(sorted(outcomes.items()))}")
        print(f"webhooks/{backend}:", *report, sep="\n  ")
        assert not failures, "\n".join(failures[:40])
        missed = REACHED - set(outcomes)
        assert not missed, f"signed replies no longer reach {sorted(missed)}: rebalance the strategies"
    finally:
        world.app.extensions["db"].dispose()
