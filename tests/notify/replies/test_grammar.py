"""The reply keywords, whatever the case, spacing, accents, punctuation or emoji around them; and the 0-10
number that answers a rating asked by SMS."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.replies.grammar import CHANGE, CONFIRM, OTHER, Reply, parse, rating

CONFIRM_WORDS = ["C", "YES", "Y", "CONFIRM", "SI", "SÍ", "CONFIRMAR", "CONFIRMADO"]
CHANGE_WORDS = ["R", "CHANGE", "CAMBIAR"]
# What phones add around a word: spaces, line breaks, punctuation, emoji (with skin tones and joiners).
NOISE = st.text(alphabet=" \t\n.,!?¡¿'\"👍✅🙏🏽\u200d😀", max_size=4)


def _cased(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: "".join(c.lower() if f else c for c, f in zip(word, flips, strict=True))
    )


@given(word=st.sampled_from(CONFIRM_WORDS).flatmap(_cased), before=NOISE, after=NOISE)
def test_every_confirm_word_confirms_in_any_dress(word: str, before: str, after: str) -> None:
    assert parse(before + word + after) == Reply(CONFIRM)


@given(word=st.sampled_from(CHANGE_WORDS).flatmap(_cased), before=NOISE, after=NOISE)
def test_every_change_word_changes(word: str, before: str, after: str) -> None:
    assert parse(before + word + after) == Reply(CHANGE)


@given(
    word=st.sampled_from(CONFIRM_WORDS + CHANGE_WORDS),
    day=st.integers(1, 31),
    gap=st.sampled_from(["", " ", "  "]),
)
def test_a_day_of_the_month_may_follow(word: str, day: int, gap: str) -> None:
    assert parse(f"{word}{gap}{day}").day == day


@given(st.text(max_size=40))
def test_any_text_reads_as_one_intent_and_never_raises(body: str) -> None:
    found = parse(body)
    assert found.intent in (CONFIRM, CHANGE, OTHER)
    assert found.day is None or 1 <= found.day <= 31


@pytest.mark.parametrize(
    "body",
    [
        "Can I come at 4 instead?",
        "C U there",
        "yes please",
        "confirm 0",
        "C 32",
        "CC",
        "no",
        "",
        "🙂",
        "sí sí",
    ],
)
def test_sentences_and_near_misses_are_not_understood(body: str) -> None:
    assert parse(body) == Reply(OTHER)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Sí", Reply(CONFIRM)),
        ("sí, confirmo", Reply(OTHER)),  # a sentence is for staff to read
        ("YES 👍🏽", Reply(CONFIRM)),
        ("Confirmado.", Reply(CONFIRM)),
        ("yes please", Reply(OTHER)),
        ("S I", Reply(OTHER)),
    ],
)
def test_an_escorts_answers(body: str, expected: Reply) -> None:
    assert parse(body) == expected


SPACE = st.text(alphabet=" \t\n", max_size=3)


@given(
    value=st.integers(0, 10),
    zero=st.booleans(),
    out_of=st.sampled_from(["", "/10", " / 10", "/ 10"]),
    punctuation=st.text(alphabet=".!?,;", max_size=3),
    before=SPACE,
    after=SPACE,
)
def test_a_rating_reads_in_any_dress(
    value: int, zero: bool, out_of: str, punctuation: str, before: str, after: str
) -> None:
    digits = f"0{value}" if zero and value < 10 else str(value)
    assert rating(f"{before}{digits}{out_of}{punctuation}{after}") == value


@given(st.text(max_size=12))
def test_any_text_is_a_rating_from_0_to_10_or_none_and_never_raises(body: str) -> None:
    found = rating(body)
    assert found is None or 0 <= found <= 10
    # A rating is never also a keyword (a number answers a rating, C or R a visit).
    assert found is None or parse(body).intent == OTHER


@given(st.integers(11, 99))
def test_a_number_out_of_range_is_no_rating(value: int) -> None:
    assert rating(str(value)) is None


@pytest.mark.parametrize(
    "body",
    ["seven", "7 8", "-1", "7/5", "7 out of 10", "about 7", "7 😊", "1.5", "100", "", "C 7", "10/10/10"],
)
def test_words_other_numbers_and_sentences_are_no_rating(body: str) -> None:
    assert rating(body) is None
