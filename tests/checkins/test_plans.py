"""Check-in plans as data: the demo clinic's loads, and a bad plan names the step and field at fault."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.checkins.plans import BEFORE_BOOSTER, load_plans

STEP = """
slug = "p"
version = 1
types = ["t"]
[[steps]]
key = "s"
instrument = "phq9"
anchor = "{anchor}"
from = "end"
offset = "7d"
window = "{window}"
{extra}
"""


def test_the_demo_plan_is_the_issues() -> None:
    (plan,) = load_plans().plans.values()
    steps = {s.key: s for s in plan.steps}
    assert (steps["mood-day-after"].every, steps["mood-day-after"].times) == (timedelta(days=1), 3)
    assert (steps["pain-day-after"].every, steps["pain-day-after"].times) == (timedelta(days=1), 3)
    weekly = steps["phq9-weekly-before-booster"]
    assert (weekly.anchor, weekly.instrument, weekly.every) == (BEFORE_BOOSTER, "phq9", timedelta(days=7))
    assert steps["mood-day-after"].occurrence_key(1) == "mood-day-after"
    assert steps["mood-day-after"].occurrence_key(3) == "mood-day-after-3"


@pytest.mark.parametrize(
    ("anchor", "window", "extra", "fault"),
    [
        ("before-booster", "3d", "", "every"),
        ("each", "3d", 'every = "-1d"', "every"),
        ("each", "0h", "", "window"),
        ("each", "3d", "times = 0", "times"),
        ("sometimes", "3d", "", "anchor"),
    ],
)
def test_a_bad_step_is_refused_naming_its_field(
    tmp_path: Path, anchor: str, window: str, extra: str, fault: str
) -> None:
    (tmp_path / "p.toml").write_text(STEP.format(anchor=anchor, window=window, extra=extra))
    with pytest.raises(ValueError, match=fault):
        load_plans(tmp_path)
