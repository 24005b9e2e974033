"""PHQ-9, GAD-7 and 0-10 ratings scored as published, on worked examples."""

from __future__ import annotations

import pytest

from services.checkins.instruments import GAD7, INSTRUMENTS, MOOD, PAIN, PHQ9, reports_self_harm, score


def _answers(*values: int) -> dict[int, int]:
    return dict(enumerate(values, start=1))


# Worked examples: (answers item 1..9, total, band). The bands are Kroenke, Spitzer & Williams (2001).
PHQ9_EXAMPLES = [
    ((0, 0, 0, 0, 0, 0, 0, 0, 0), 0, "minimal"),
    ((1, 1, 1, 1, 0, 0, 0, 0, 0), 4, "minimal"),
    ((1, 1, 1, 1, 1, 0, 0, 0, 0), 5, "mild"),
    ((2, 2, 1, 1, 1, 1, 1, 0, 0), 9, "mild"),
    ((2, 2, 2, 1, 1, 1, 1, 0, 0), 10, "moderate"),
    ((2, 2, 2, 2, 2, 2, 1, 1, 0), 14, "moderate"),
    ((2, 2, 2, 2, 2, 2, 2, 1, 0), 15, "moderately severe"),
    ((3, 3, 3, 2, 2, 2, 2, 2, 0), 19, "moderately severe"),
    ((3, 3, 3, 3, 2, 2, 2, 2, 0), 20, "severe"),
    ((3, 3, 3, 3, 3, 3, 3, 3, 3), 27, "severe"),
]
GAD7_EXAMPLES = [
    ((0, 0, 0, 0, 0, 0, 0), 0, "minimal"),
    ((1, 1, 1, 1, 0, 0, 0), 4, "minimal"),
    ((1, 1, 1, 1, 1, 0, 0), 5, "mild"),
    ((2, 2, 2, 1, 1, 1, 0), 9, "mild"),
    ((2, 2, 2, 1, 1, 1, 1), 10, "moderate"),
    ((2, 2, 2, 2, 2, 2, 2), 14, "moderate"),
    ((3, 2, 2, 2, 2, 2, 2), 15, "severe"),
    ((3, 3, 3, 3, 3, 3, 3), 21, "severe"),
]


@pytest.mark.parametrize(("values", "total", "band"), PHQ9_EXAMPLES)
def test_phq9_totals_and_bands(values: tuple[int, ...], total: int, band: str) -> None:
    result = score(INSTRUMENTS[PHQ9], _answers(*values))
    assert (result.total, result.band) == (total, band)


@pytest.mark.parametrize(("values", "total", "band"), GAD7_EXAMPLES)
def test_gad7_totals_and_bands(values: tuple[int, ...], total: int, band: str) -> None:
    result = score(INSTRUMENTS[GAD7], _answers(*values))
    assert (result.total, result.band) == (total, band)


def test_the_ranges_are_the_published_ones() -> None:
    assert INSTRUMENTS[PHQ9].max_total == 27
    assert INSTRUMENTS[GAD7].max_total == 21
    assert [INSTRUMENTS[PHQ9].band(t) for t in (4, 5, 9, 10, 14, 15, 19, 20)] == [
        "minimal", "mild", "mild", "moderate", "moderate", "moderately severe", "moderately severe", "severe"
    ]  # fmt: skip
    assert [INSTRUMENTS[GAD7].band(t) for t in (4, 5, 9, 10, 14, 15)] == [
        "minimal", "mild", "mild", "moderate", "moderate", "severe"
    ]  # fmt: skip


@pytest.mark.parametrize("key", [MOOD, PAIN])
def test_ratings_score_their_number_from_0_to_10(key: str) -> None:
    instrument = INSTRUMENTS[key]
    assert [score(instrument, {1: v}).total for v in (0, 7, 10)] == [0, 7, 10]
    assert score(instrument, {1: 7}).band is None
    assert instrument.max_total == 10
    assert not instrument.valid(11)
    assert not instrument.valid(-1)


def test_incomplete_or_out_of_range_answers_are_not_scored() -> None:
    with pytest.raises(ValueError, match="not answered"):
        score(INSTRUMENTS[PHQ9], _answers(1, 1, 1))
    with pytest.raises(ValueError, match="not one of the options"):
        score(INSTRUMENTS[GAD7], _answers(4, 0, 0, 0, 0, 0, 0))


def test_the_wording_is_the_instruments_own() -> None:
    phq9, gad7 = INSTRUMENTS[PHQ9], INSTRUMENTS[GAD7]
    assert len(phq9.items) == 9
    assert len(gad7.items) == 7
    assert (
        phq9.stem
        == "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
    )
    assert phq9.items[8] == "Thoughts that you would be better off dead or of hurting yourself in some way"
    assert gad7.items[0] == "Feeling nervous, anxious or on edge"
    assert [label for _, label in phq9.options] == [
        "Not at all", "Several days", "More than half the days", "Nearly every day"
    ]  # fmt: skip


def test_only_phq9_item_9_above_0_reports_self_harm() -> None:
    assert reports_self_harm(PHQ9, 9, 1)
    assert reports_self_harm(PHQ9, 9, 3)
    assert not reports_self_harm(PHQ9, 9, 0)
    assert not reports_self_harm(PHQ9, 8, 3)
    assert not reports_self_harm(GAD7, 7, 3)
