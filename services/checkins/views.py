"""Staff API of the checkins service: a patient's timeline, safety alerts and their acknowledgement.

Views are thin: a schema loads the request, one service function does the work, a schema dumps the result.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from services.checkins import fhir, links, service, timeline
from services.checkins import schemas as s
from services.checkins.models import Alert, Patient
from services.checkins.runtime import get_runtime
from shared.api import API_PREFIX, ProblemSchema
from shared.db import get_session, unit_of_work
from shared.links import current_signer
from shared.problems import NotFound
from shared.timeutil import utcnow

staff = Blueprint(
    "checkins",
    __name__,
    url_prefix=f"{API_PREFIX}",
    description="Check-in timelines and safety alerts (staff)",
)


@staff.route("/patients/<uuid:patient_id>/timeline")
class PatientTimeline(MethodView):
    @staff.response(200, s.TimelineOut)
    @staff.alt_response(404, schema=ProblemSchema, description="No check-ins known for this patient")
    def get(self, patient_id: uuid.UUID) -> Any:
        """A patient's sessions, scores over time, latest answers, flags and alerts, and a timeline link."""
        session = get_session()
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise NotFound("No check-ins are known for this patient.")
        data = timeline.build(session, patient, str)
        return {
            "patient_id": patient.id,
            "stopped_at": patient.stopped_at,
            "timeline_url": links.timeline_url(
                current_signer(), get_runtime().config.checkins_public_url, patient, utcnow()
            ),
            "sessions": data["sessions"],
            "history": data["history"],
            "series": {k: [{"at": at, "value": v} for at, v in pts] for k, pts in data["series"].items()},
            "latest": data["latest"],
            "flags": data["flags"],
            "alerts": data["alerts"],
        }


@staff.route("/patients/<uuid:patient_id>/fhir")
class PatientFhir(MethodView):
    @staff.response(200, s.FhirBundleOut)
    @staff.alt_response(404, schema=ProblemSchema, description="No check-ins known for this patient")
    def get(self, patient_id: uuid.UUID) -> Any:
        """Every completed check-in of the patient as FHIR R4 QuestionnaireResponse and Observations."""
        session = get_session()
        if session.get(Patient, patient_id) is None:
            raise NotFound("No check-ins are known for this patient.")
        completed = service.completed_with_answers(session=session, patient_id=patient_id)
        return fhir.bundle(completed, get_runtime().config.checkins_public_url)


@staff.route("/alerts")
class Alerts(MethodView):
    @staff.arguments(s.AlertQuery, location="query")
    @staff.response(200, s.AlertOut(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """The staff list of safety alerts, newest first (by default only those nobody acknowledged)."""
        return timeline.alerts_with_acks(get_session(), only_open=query["open"])


@staff.route("/alerts/<uuid:alert_id>/acks")
class AlertAcks(MethodView):
    @staff.arguments(s.AckForm)
    @staff.response(201, s.AckOut)
    @staff.alt_response(404, schema=ProblemSchema, description="No such alert")
    def post(self, data: dict[str, Any], alert_id: uuid.UUID) -> Any:
        """Acknowledge an alert: who is handling it, and a note (the trail keeps every acknowledgement)."""
        with unit_of_work() as session:
            alert = session.get(Alert, alert_id, with_for_update=True)
            if alert is None:
                raise NotFound("No such alert.")
            return service.acknowledge_alert(
                session=session, alert=alert, by=data["by"], via="staff-api", note=data["note"], now=utcnow()
            )
