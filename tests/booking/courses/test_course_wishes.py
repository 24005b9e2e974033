"""The course booking page's days and times: a schedule only on the days and times given, kept through a swap
and the booking; bad answers in the error summary; a course that cannot fit says why in the patient's language."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.booking.conftest import STAFF
from tests.booking.courses.test_course_pages import FORM, _post, _schedule
from tests.booking.courses.test_courses import _template
from tests.booking.factories import make_chair_setup
from tests.booking.factories import table_counts as _counts
from tests.booking.pages_support import form_action, hidden, text
from tests.booking.pages_support import links as page_links

NEW_YORK = ZoneInfo("America/New_York")
PAGE = "/book/clinic-infusion/course/induction?tz=Europe/London"


def _local(item: str) -> datetime:
    """A schedule item's start in the clinic's zone."""
    return datetime.fromisoformat(item.split("@")[0]).astimezone(NEW_YORK)


def test_days_and_time_of_day_replan_and_stay_through_a_swap_and_the_booking(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    _template(pages_client, setup, within_days=21)
    first = pages_client.get(PAGE)
    assert 'name="day"' in first.text
    assert "Choose the days and times you can come" in text(first.text)
    # Tuesdays and Thursdays, afternoons: every session then, the earliest such schedule.
    page = pages_client.get(PAGE + "&day=1&day=3&time=afternoon")
    assert page.status_code == 200, text(page.text)
    starts = [_local(s) for s in _schedule(page.text)]
    assert len(starts) == 6
    assert all(s.weekday() in (1, 3) and 12 <= s.hour < 17 for s in starts), starts
    assert starts[0] == datetime(2026, 3, 3, 12, 0, tzinfo=NEW_YORK)
    assert starts != [_local(s) for s in _schedule(first.text)]
    # The form shows what was chosen.
    assert 'id="day-1" name="day" value="1" checked' in page.text
    assert 'id="day-2" name="day" value="2">' in page.text
    assert 'value="afternoon" checked' in page.text
    assert 'value="morning">' in page.text  # not ticked
    # Swapping a session keeps the wishes: its alternatives and the new schedule keep to them.
    swap = next(link for link in page_links(page.text, "alt") if link.endswith("#session-6"))
    query = parse_qs(urlsplit(swap).query)
    assert query["day"] == ["1", "3"]
    assert query["time"] == ["afternoon"]
    swapped = pages_client.get(swap)
    assert swapped.status_code == 200
    chosen = _schedule(swapped.text)
    assert chosen[:5] == _schedule(page.text)[:5]
    assert chosen[5] != _schedule(page.text)[5]
    assert all(_local(s).weekday() in (1, 3) and 12 <= _local(s).hour < 17 for s in chosen)
    for link in page_links(swapped.text, "alt"):
        index = int(link.rsplit("#session-", 1)[1]) - 1
        moved = _local(parse_qs(urlsplit(link).query)["s"][index])
        assert moved.weekday() in (1, 3), moved
        assert 12 <= moved.hour < 17, moved
    assert "time=afternoon" in form_action(swapped.text)
    done = _post(pages_client, swapped.text)
    assert done.status_code == 303, text(done.text)
    assert _counts(pages_app)["bookings"] == 6
    # A later first day: the schedule starts on or after it.
    later = pages_client.get(PAGE + "&day=1&day=3&time=any&from=2026-03-16")
    assert later.status_code == 200, text(later.text)
    assert _local(_schedule(later.text)[0]).date().isoformat() >= "2026-03-17"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("&time=morning", "Days you can come: choose at least one day"),
        ("&day=9&time=morning", "Days you can come: choose days from the list"),
        ("&day=x&time=morning", "Days you can come: choose days from the list"),
        ("&day=1&time=night", "Times of day you can come: choose a time of day from the list"),
        ("&day=1&time=", "Times of day you can come: choose a time of day from the list"),
        ("&day=1&time=morning&time=night", "Times of day you can come: choose a time of day from the list"),
        # The form sent with no time of day ticked (its date field always comes, empty or not).
        ("&day=1&from=", "Times of day you can come: choose at least one time of day"),
        ("&day=1&time=any&from=tuesday", "First session on or after: enter a date like 2026-03-09"),
        (
            "&day=1&time=any&from=2026-03-01",
            "First session on or after: choose a day from today to 400 days ahead",
        ),
        (
            "&day=1&time=any&from=9999-12-31",
            "First session on or after: choose a day from today to 400 days ahead",
        ),
        # Hostile answers: unicode, another case, a huge value, numbers that are not weekdays, a day that is not.
        ("&day=1&time=m%C3%B6rning", "Times of day you can come: choose a time of day from the list"),
        ("&day=1&time=MORNING", "Times of day you can come: choose a time of day from the list"),
        ("&day=1&time=" + "m" * 20000, "Times of day you can come: choose a time of day from the list"),
        ("&day=" + "9" * 5000 + "&time=morning", "Days you can come: choose days from the list"),
        ("&day=-1&time=morning", "Days you can come: choose days from the list"),
        ("&day=1.0&time=morning", "Days you can come: choose days from the list"),
        ("&day=1e0&time=morning", "Days you can come: choose days from the list"),
        ("&day=&time=morning", "Days you can come: choose days from the list"),
        ("&day=1&time=any&from=2026-02-30", "First session on or after: enter a date like 2026-03-09"),
        (
            "&day=1&time=any&from=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-%EF%BC%90%EF%BC%93-%EF%BC%91%EF%BC%90",
            "First session on or after: enter a date like 2026-03-09",
        ),
        (
            "&day=1&time=any&from=0001-01-01",
            "First session on or after: choose a day from today to 400 days ahead",
        ),
    ],
)
def test_bad_days_and_times_are_named_in_the_error_summary(
    pages_app: Flask, pages_client: FlaskClient, clock: object, query: str, message: str
) -> None:
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    _template(pages_client, setup)
    before = _counts(pages_app)
    page = pages_client.get(PAGE + query)
    assert page.status_code == 422
    assert 'class="error-summary"' in page.text
    assert message in text(page.text), text(page.text)[:600]
    # The summary's link leads to the field at fault, and the page still proposes the earliest schedule.
    field = message.split(":")[0]
    target = {
        "Days you can come": "day",
        "Times of day you can come": "time",
        "First session on or after": "from",
    }[field]
    assert f'href="#{target}"' in page.text
    assert f'id="{target}"' in page.text
    assert len(_schedule(page.text)) == 6
    assert _counts(pages_app) == before


def test_a_day_or_time_of_day_ticked_twice_counts_once(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    _template(pages_client, setup, within_days=21)
    once = pages_client.get(PAGE + "&day=1&day=3&time=afternoon")
    twice = pages_client.get(PAGE + "&day=3&day=1&day=1&time=afternoon&time=afternoon")
    assert twice.status_code == once.status_code == 200
    assert _schedule(twice.text) == _schedule(once.text)
    assert form_action(twice.text) == form_action(once.text)  # the links carry each answer once


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("&day=1&time=night", "Times of day you can come: choose a time of day from the list"),
        ("&day=9&time=morning", "Days you can come: choose days from the list"),
        ("&time=morning", "Days you can come: choose at least one day"),
        ("&day=1&time=any&from=tuesday", "First session on or after: enter a date like 2026-03-09"),
    ],
)
def test_a_booking_sent_with_bad_days_or_times_is_named_and_books_nothing(
    pages_app: Flask, pages_client: FlaskClient, clock: object, query: str, message: str
) -> None:
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    _template(pages_client, setup)
    page = pages_client.get(PAGE)
    before = _counts(pages_app)
    # The form's address carries the days and times: a tampered one is named, not ignored while booking.
    answer = pages_client.post(
        PAGE + query,
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "idempotency_key": hidden(page.text, "idempotency_key"),
            "s": _schedule(page.text),
            **FORM,
        },
    )
    assert answer.status_code == 422, text(answer.text)[:600]
    assert 'class="error-summary"' in answer.text
    assert message in text(answer.text)
    assert 'value="Jordan Example"' in answer.text  # the answers are kept
    assert _counts(pages_app) == before


BLOCKED = {
    "en": {
        "title": "We could not fit every session",
        "window": "Session 6 cannot be held within the course's 15 days.",
        "wishes": "Try more days of the week, another time of day, or a later first day.",
        "later": "Try a later first day, or contact the clinic.",
        "week": "Session 2 finds no week with room for it: this course allows 1 a week at most.",
        "free": "No provider and chair are free for session 1 before bookings close, 400 days ahead.",
        "times": "Try more days of the week or another time of day.",
    },
    "es": {
        "title": "No pudimos encajar todas las sesiones",
        "window": "La sesión 6 no cabe dentro de los 15 días del tratamiento.",
        "wishes": "Pruebe con más días de la semana, otro momento del día o un primer día más tarde.",
        "later": "Pruebe con un primer día más tarde o comuníquese con la clínica.",
        "week": "La sesión 2 no encuentra una semana con lugar: este tratamiento permite como máximo 1 por semana.",
        "free": "No hay profesional ni sillón libres para la sesión 1 antes del cierre de las reservas, con 400 "
        "días de anticipación.",
        "times": "Pruebe con más días de la semana u otro momento del día.",
    },
}


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_course_that_cannot_fit_says_which_rule_blocks_and_what_to_try(
    pages_app: Flask, pages_client: FlaskClient, clock: object, language: str
) -> None:
    words = BLOCKED[language]
    headers = {"Accept-Language": language}
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    _template(pages_client, setup, within_days=15)  # 6 sessions within 15 days, at most 3 a week
    before = _counts(pages_app)

    def blocked(query: str, slug: str = "induction") -> str:
        page = pages_client.get(PAGE.replace("induction", slug) + query, headers=headers)
        assert page.status_code == 422, text(page.text)
        assert '<form method="post"' not in page.text  # nothing to book
        assert 'id="blocked" role="alert"' in page.text
        assert 'class="wishes" open' in page.text  # the days and times are at hand to try again
        body = text(page.text)
        assert words["title"] in body
        # Never the planner's English sentence from the API.
        assert "cannot be held within the course's window" not in body
        assert "within the booking horizon" not in body
        return body

    # Tuesdays and Thursdays only: two a week cannot hold six sessions within 15 days.
    narrow = blocked("&day=1&day=3&time=any")
    assert words["window"] in narrow
    assert words["wishes"] in narrow
    # Evenings: no provider works then, so no first session at all.
    evening = blocked("&day=0&day=1&day=2&day=3&day=4&time=evening")
    assert words["free"] in evening
    assert words["times"] in evening
    # Without wishes the window can still be too short for the clinic's free times.
    _template(pages_client, setup, slug="short", within_days=5, max_per_week=None)
    assert words["later"] in blocked("", slug="short")
    # One a week, with bookings open only four days ahead: no week has room for session 2.
    pages_client.patch(f"/api/v1/appointment-types/{setup.type_id}", json={"horizon_days": 4}, headers=STAFF)
    _template(pages_client, setup, slug="weekly", max_per_week=1, within_days=None)
    assert words["week"] in blocked("", slug="weekly")
    after = _counts(pages_app)
    assert [after[t] for t in ("courses", "bookings", "patients")] == [
        before[t] for t in ("courses", "bookings", "patients")
    ]


@pytest.mark.parametrize("language", ["en", "es"])
def test_mornings_or_evenings_tick_two_times_of_day_and_none_is_named(
    pages_app: Flask, pages_client: FlaskClient, clock: object, language: str
) -> None:
    headers = {"Accept-Language": language}
    setup = make_chair_setup(pages_app, providers=1, chairs=1)
    _template(pages_client, setup, within_days=21)
    first = pages_client.get(PAGE, headers=headers)
    # At first every part of the day is ticked: any time.
    for part in ("morning", "afternoon", "evening"):
        assert f'value="{part}" checked' in first.text
    label = {"en": "Morning (starting before 12:00)", "es": "Mañana (empezando antes de las 12:00)"}[language]
    assert label in text(first.text)
    page = pages_client.get(PAGE + "&day=1&day=3&time=morning&time=evening&from=", headers=headers)
    assert page.status_code == 200, text(page.text)
    starts = [_local(s) for s in _schedule(page.text)]
    assert len(starts) == 6
    assert all(s.hour < 12 or s.hour >= 17 for s in starts), starts
    assert 'value="morning" checked' in page.text
    assert 'value="evening" checked' in page.text
    assert 'value="afternoon">' in page.text
    swap = next(link for link in page_links(page.text, "alt") if link.endswith("#session-6"))
    assert parse_qs(urlsplit(swap).query)["time"] == ["morning", "evening"]
    # None ticked: the form names the field, in the page's language, and still proposes a schedule.
    none = pages_client.get(PAGE + "&day=1", headers=headers)
    assert none.status_code == 422
    message = {
        "en": "Times of day you can come: choose at least one time of day",
        "es": "Momentos del día en que puede venir: elija al menos un momento del día",
    }[language]
    assert message in text(none.text)
    assert len(_schedule(none.text)) == 6
    # A link from the single-choice page ("any") still opens, every part of the day ticked.
    old = pages_client.get(PAGE + "&day=1&day=2&day=3&time=any", headers=headers)
    assert old.status_code == 200
    assert 'value="afternoon" checked' in old.text
