"""A patient's timeline for their provider: sessions, scores over time, latest answers, flags and alerts.

Charts are drawn on the server as SVG coordinates (no script, no outside asset); each chart has a table of the
same figures beside it for screen readers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.checkins.instruments import INSTRUMENTS
from services.checkins.models import (
    COMPLETED,
    CONFIRMED,
    Alert,
    AlertAck,
    Answer,
    Checkin,
    Flag,
    Patient,
    SessionCopy,
)

WIDTH, HEIGHT, PAD = 640, 180, 32
CHARTED = ("mood", "pain", "phq9", "gad7")


@dataclass
class Chart:
    """One instrument's scores as SVG coordinates, with the sessions as markers."""

    key: str
    title: str
    max_value: int
    points: list[tuple[float, float, str, int]] = field(default_factory=list)
    markers: list[float] = field(default_factory=list)
    gridlines: list[tuple[float, int]] = field(default_factory=list)

    @property
    def polyline(self) -> str:
        """The ``points`` attribute of the chart's line."""
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in self.points)


def _x(at: datetime, start: datetime, span: float) -> float:
    return PAD + (WIDTH - 2 * PAD) * ((at - start).total_seconds() / span)


def _y(value: int, max_value: int) -> float:
    return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value / max_value)


def chart(key: str, points: list[tuple[datetime, int]], sessions: list[datetime], zone_label: Any) -> Chart:
    """The SVG geometry of one instrument's series over the span of the points and sessions."""
    instrument = INSTRUMENTS[key]
    top = instrument.max_total
    moments = [at for at, _ in points] + sessions
    start = min(moments) - timedelta(hours=12) if moments else datetime.now()
    end = max(moments) + timedelta(hours=12) if moments else start + timedelta(days=1)
    span = max((end - start).total_seconds(), 1.0)
    result = Chart(key=key, title=instrument.title, max_value=top)
    result.points = [(_x(at, start, span), _y(v, top), zone_label(at), v) for at, v in points]
    result.markers = [_x(at, start, span) for at in sessions]
    result.gridlines = [(_y(v, top), v) for v in sorted({0, top // 2, top})]
    return result


def build(session: Session, patient: Patient, zone_label: Any) -> dict[str, Any]:
    """Everything the timeline page and the staff API show for ``patient``."""
    sessions = list(
        session.scalars(
            select(SessionCopy).where(SessionCopy.patient_id == patient.id).order_by(SessionCopy.start_at)
        )
    )
    done = list(
        session.scalars(
            select(Checkin)
            .where(Checkin.patient_id == patient.id, Checkin.status == COMPLETED)
            .order_by(Checkin.completed_at)
        )
    )
    series: dict[str, list[tuple[datetime, int]]] = {k: [] for k in CHARTED}
    for c in done:
        if c.completed_at is not None and c.score is not None:
            series[c.instrument].append((c.completed_at, c.score))
    starts = [s.start_at for s in sessions if s.status == CONFIRMED]
    return {
        "patient": patient,
        "sessions": sessions,
        "series": series,
        "charts": [chart(k, series[k], starts, zone_label) for k in CHARTED],
        "latest": latest_answers(session, done),
        "flags": list(
            session.scalars(
                select(Flag).where(Flag.patient_id == patient.id).order_by(Flag.created_at.desc()).limit(50)
            )
        ),
        "alerts": alerts_with_acks(session, patient_id=patient.id),
    }


def latest_answers(session: Session, done: list[Checkin]) -> list[dict[str, Any]]:
    """The newest completed check-in of each instrument, with each question and the answer given."""
    newest: dict[str, Checkin] = {}
    for c in done:
        newest[c.instrument] = c
    found = []
    for key, c in sorted(newest.items()):
        instrument = INSTRUMENTS[key]
        labels = dict(instrument.options)
        answers = {a.item: a.value for a in session.scalars(select(Answer).where(Answer.checkin_id == c.id))}
        found.append(
            {
                "instrument": instrument.title,
                "completed_at": c.completed_at,
                "score": c.score,
                "band": c.band,
                "answers": [
                    {"question": text, "answer": labels.get(answers.get(n, -1), ""), "value": answers.get(n)}
                    for n, text in enumerate(instrument.items, start=1)
                ],
            }
        )
    return found


def alerts_with_acks(
    session: Session, *, patient_id: uuid.UUID | None = None, only_open: bool = False
) -> list[dict[str, Any]]:
    """Alerts (of one patient, or all), newest first, each with its acknowledgement trail."""
    query = select(Alert).order_by(Alert.created_at.desc()).limit(200)
    if patient_id is not None:
        query = query.where(Alert.patient_id == patient_id)
    if only_open:
        query = query.where(Alert.acknowledged_at.is_(None))
    alerts = list(session.scalars(query))
    acks: dict[uuid.UUID, list[AlertAck]] = {a.id: [] for a in alerts}
    if alerts:
        for ack in session.scalars(
            select(AlertAck).where(AlertAck.alert_id.in_(list(acks))).order_by(AlertAck.at)
        ):
            acks[ack.alert_id].append(ack)
    return [
        {
            "id": a.id,
            "patient_id": a.patient_id,
            "booking_id": a.booking_id,
            "created_at": a.created_at,
            "published_at": a.published_at,
            "acknowledged_at": a.acknowledged_at,
            "acks": acks[a.id],
        }
        for a in alerts
    ]
