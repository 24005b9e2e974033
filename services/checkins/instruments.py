"""The instruments a check-in can ask, word for word, and their published scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

PHQ9 = "phq9"
GAD7 = "gad7"
MOOD = "mood"
PAIN = "pain"

FREQUENCY = (
    (0, "Not at all"),
    (1, "Several days"),
    (2, "More than half the days"),
    (3, "Nearly every day"),
)
# PHQ-9 item 9 (1-based): thoughts that you would be better off dead or of hurting yourself.
SELF_HARM_ITEM = 9


@dataclass(frozen=True)
class Wording:
    """What a patient reads of an instrument in one language."""

    language: str
    title: str
    stem: str
    items: tuple[str, ...]
    options: tuple[tuple[int, str], ...]
    low_label: str = ""
    high_label: str = ""


@dataclass(frozen=True)
class Instrument:
    """A questionnaire or a rating: stem, items, options and severity bands (English), and translations."""

    key: str
    title: str
    stem: str
    items: tuple[str, ...]
    options: tuple[tuple[int, str], ...]
    bands: tuple[tuple[int, int, str], ...] = ()
    low_label: str = ""
    high_label: str = ""
    # Only a published translation of a published instrument (docs/checkins.md#languages); else English.
    translations: dict[str, Wording] = field(default_factory=dict)

    def wording(self, language: str) -> Wording:
        """The instrument in ``language`` if it has that translation, else in English."""
        found = self.translations.get(language)
        if found is not None:
            return found
        return Wording("en", self.title, self.stem, self.items, self.options, self.low_label, self.high_label)

    @property
    def max_total(self) -> int:
        """The highest total this instrument can score."""
        return len(self.items) * max(value for value, _ in self.options)

    def band(self, total: int) -> str | None:
        """The severity band of ``total`` (None for a rating)."""
        for low, high, name in self.bands:
            if low <= total <= high:
                return name
        return None

    def valid(self, value: int) -> bool:
        """Whether ``value`` is one of the item's answer options."""
        return any(value == option for option, _ in self.options)


RATING = tuple((n, str(n)) for n in range(11))

INSTRUMENTS: dict[str, Instrument] = {
    PHQ9: Instrument(
        key=PHQ9,
        title="PHQ-9",
        stem="Over the last 2 weeks, how often have you been bothered by any of the following problems?",
        items=(
            "Little interest or pleasure in doing things",
            "Feeling down, depressed, or hopeless",
            "Trouble falling or staying asleep, or sleeping too much",
            "Feeling tired or having little energy",
            "Poor appetite or overeating",
            "Feeling bad about yourself \u2014 or that you are a failure or have let yourself or your family "
            "down",
            "Trouble concentrating on things, such as reading the newspaper or watching television",
            "Moving or speaking so slowly that other people could have noticed? Or the opposite \u2014 being "
            "so fidgety or restless that you have been moving around a lot more than usual",
            "Thoughts that you would be better off dead or of hurting yourself in some way",
        ),
        options=FREQUENCY,
        bands=(
            (0, 4, "minimal"),
            (5, 9, "mild"),
            (10, 14, "moderate"),
            (15, 19, "moderately severe"),
            (20, 27, "severe"),
        ),
    ),
    GAD7: Instrument(
        key=GAD7,
        title="GAD-7",
        stem="Over the last 2 weeks, how often have you been bothered by the following problems?",
        items=(
            "Feeling nervous, anxious or on edge",
            "Not being able to stop or control worrying",
            "Worrying too much about different things",
            "Trouble relaxing",
            "Being so restless that it is hard to sit still",
            "Becoming easily annoyed or irritable",
            "Feeling afraid as if something awful might happen",
        ),
        options=FREQUENCY,
        bands=((0, 4, "minimal"), (5, 9, "mild"), (10, 14, "moderate"), (15, 21, "severe")),
    ),
    MOOD: Instrument(
        key=MOOD,
        title="Mood",
        stem="On a scale from 0 to 10:",
        items=("How is your mood today?",),
        options=RATING,
        low_label="0 = the worst it has been",
        high_label="10 = the best it has been",
        # The clinic's own question (not a published instrument), in the Spanish of its other messages.
        translations={
            "es": Wording(
                "es",
                "Estado de ánimo",
                "En una escala del 0 al 10:",
                ("¿Cómo está su estado de ánimo hoy?",),
                RATING,
                "0 = el peor que ha tenido",
                "10 = el mejor que ha tenido",
            )
        },
    ),
    PAIN: Instrument(
        key=PAIN,
        title="Pain",
        stem="On a scale from 0 to 10:",
        items=("How much pain do you have today?",),
        options=RATING,
        low_label="0 = no pain",
        high_label="10 = the worst pain you can imagine",
        translations={
            "es": Wording(
                "es",
                "Dolor",
                "En una escala del 0 al 10:",
                ("¿Cuánto dolor tiene hoy?",),
                RATING,
                "0 = ningún dolor",
                "10 = el peor dolor que pueda imaginar",
            )
        },
    ),
}


@dataclass(frozen=True)
class Score:
    """A completed check-in's total and severity band."""

    total: int
    band: str | None


def score(instrument: Instrument, answers: dict[int, int]) -> Score:
    """Score a complete set of answers (items 1..n); raise ``ValueError`` if one is missing or invalid."""
    missing = [n for n in range(1, len(instrument.items) + 1) if n not in answers]
    if missing:
        raise ValueError(f"items not answered: {missing}")
    if not all(instrument.valid(v) for v in answers.values()):
        raise ValueError("an answer is not one of the options")
    total = sum(answers[n] for n in range(1, len(instrument.items) + 1))
    return Score(total=total, band=instrument.band(total))


def reports_self_harm(instrument_key: str, item: int, value: int) -> bool:
    """Whether this answer is a PHQ-9 item 9 above 0: never only stored (crisis page, on-call alert)."""
    return instrument_key == PHQ9 and item == SELF_HARM_ITEM and value > 0
