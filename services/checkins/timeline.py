"""A patient's timeline for their provider: sessions, scores over time, latest answers, flags and alerts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
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
    SessionChange,
    SessionCopy,
)

WIDTH, HEIGHT, PAD = 640, 180, 32
CHARTED = ("mood", "pain", "phq9", "gad7")
RECENT = 14  # figures listed under each chart, newest last


@dataclass
class Chart:
    """One instrument's scores as SVG coordinates, with the sessions as markers."""

    key: str
    title: str
    max_value: int
    points: list[tuple[float, float, int]] = field(default_factory=list)
    markers: list[float] = field(default_factory=list)
    gridlines: list[tuple[float, int]] = field(default_factory=list)
    recent: list[tuple[str, int]] = field(default_factory=list)

    @property
    def polyline(self) -> str:
        """The ``points`` attribute of the chart's line."""
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in self.points)


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
    result.points = [(_x(at, start, span), _y(v, top), v) for at, v in points]
    # The figures table lists the most recent only: a year of daily ratings is a line, not a table.
    result.recent = [(zone_label(at), v) for at, v in points[-RECENT:]]
    result.markers = [_x(at, start, span) for at in sessions]
    result.gridlines = [(_y(v, top), v) for v in sorted({0, top // 2, top})]
    return result


def revision(session: Session, patient: Patient) -> tuple[Any, ...]:
    """What the patient's timeline depends on, in one query: a changed page has a changed revision."""
    of_patient = Checkin.patient_id == patient.id
    row = session.execute(
        select(
            select(func.max(Checkin.updated_at)).where(of_patient).scalar_subquery(),
            select(func.count()).select_from(Answer).join(Checkin).where(of_patient).scalar_subquery(),
            select(func.max(SessionCopy.updated_at))
            .where(SessionCopy.patient_id == patient.id)
            .scalar_subquery(),
            select(func.count()).select_from(Flag).where(Flag.patient_id == patient.id).scalar_subquery(),
            select(func.count())
            .select_from(AlertAck)
            .join(Alert)
            .where(Alert.patient_id == patient.id)
            .scalar_subquery(),
            select(func.count()).select_from(Alert).where(Alert.patient_id == patient.id).scalar_subquery(),
            select(func.count())
            .select_from(SessionChange)
            .where(SessionChange.patient_id == patient.id)
            .scalar_subquery(),
        )
    ).one()
    return (*row, patient.stopped_at, patient.time_zone)


def build(session: Session, patient: Patient, zone_label: Any) -> dict[str, Any]:
    """Everything the timeline page and the staff API show for ``patient``."""
    sessions = list(
        session.scalars(
            select(SessionCopy).where(SessionCopy.patient_id == patient.id).order_by(SessionCopy.start_at)
        )
    )
    # Columns, not objects: a year of daily ratings is hundreds of rows.
    done = session.execute(
        select(Checkin.id, Checkin.instrument, Checkin.completed_at, Checkin.score)
        .where(Checkin.patient_id == patient.id, Checkin.status == COMPLETED)
        .order_by(Checkin.completed_at)
    ).all()
    series: dict[str, list[tuple[datetime, int]]] = {k: [] for k in CHARTED}
    newest: dict[str, uuid.UUID] = {}
    for checkin_id, instrument, completed_at, score in done:
        if completed_at is not None and score is not None:
            series[instrument].append((completed_at, score))
            newest[instrument] = checkin_id
    starts = [s.start_at for s in sessions if s.status == CONFIRMED]
    return {
        "patient": patient,
        "sessions": sessions,
        "series": series,
        "charts": [chart(k, series[k], starts, zone_label) for k in CHARTED],
        "latest": latest_answers(session, list(newest.values())),
        "flags": list(
            session.scalars(
                select(Flag).where(Flag.patient_id == patient.id).order_by(Flag.created_at.desc()).limit(50)
            )
        ),
        "alerts": alerts_with_acks(session, patient_id=patient.id),
        "history": history(session, patient.id),
    }


def history(session: Session, patient_id: uuid.UUID, limit: int = 200) -> list[SessionChange]:
    """The patient's session history from booking events, newest first: booked, moved, cancelled, escort."""
    return list(
        session.scalars(
            select(SessionChange)
            .where(SessionChange.patient_id == patient_id)
            .order_by(SessionChange.occurred_at.desc(), SessionChange.version.desc())
            .limit(limit)
        )
    )


def latest_answers(session: Session, checkin_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """These completed check-ins (the newest of each instrument), each question with the answer given."""
    found = []
    newest = {c.instrument: c for c in session.scalars(select(Checkin).where(Checkin.id.in_(checkin_ids)))}
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
